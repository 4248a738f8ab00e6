"""Scratch repositories for the end-to-end tests that drive DVC itself (test_dvc_pipeline.py,
test_scaleout.py, test_search.py): the committed project plus the working-tree versions of its
files, and a "cluster" around one (a bare git origin and a DVC remote directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)  # dvc and the stages' python come from this environment
# the quick profile of a cluster workspace: the DAG and the machinery, not the numbers
TINY = {"max_epochs": 1, "max_train_tokens": 1440, "max_eval_tokens": 720}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def sh_may_fail(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run ``cmd``, its output captured, whatever its exit status."""
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sh(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run ``cmd``, which must succeed; a whole-DAG `dvc exp run` (about 60 stages) takes minutes on a 2-core CPU."""
    proc = sh_may_fail(cmd, cwd, env, timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_project(dest: Path) -> Path:
    """The tracked and untracked (not ignored) files of this checkout, copied to ``dest``."""
    files = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


# Runs that other stages or settings name (figure2's models, sobolev-grid's bases, the search's
# default base run): every trimmed workspace keeps them.
ANCHOR_RUNS = (
    "ptb-small-lstm-nd-kim",
    "ptb-small-scrn-nd-wt",
    "ptb-small-scrn-noreg",
    "ptb-small-scrn-vd-wt",
    "ptb-small-scrn-vd",
)


def trim_runs(workspace: Path, keep: tuple[str, ...], profile: dict | None = None) -> None:
    """Shrink a copied workspace's params.yaml to the runs ``keep`` (plus ANCHOR_RUNS), optionally
    with the quick profile replaced by ``profile``, and its dvc.lock to the stages that remain.

    The DVC wiring of a ``train@<run>`` stage is the same for every run, but every DVC command
    parses all of them and rewrites dvc.lock (about 300 KB for the 106 runs) after each stage:
    5 to 8 s per stage on a 2-core CPU, most of what these tests cost with the whole grid."""
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    wanted = set(keep) | set(ANCHOR_RUNS)
    unknown = wanted - set(params["runs"])
    assert not unknown, f"no such runs in params.yaml: {sorted(unknown)}"
    params["runs"] = {name: run for name, run in params["runs"].items() if name in wanted}
    if profile is not None:
        params["profiles"]["quick"] = dict(profile)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    lock_path = workspace / "dvc.lock"
    if lock_path.is_file():
        lock = yaml.safe_load(lock_path.read_text())
        lock["stages"] = {
            name: entry
            for name, entry in lock["stages"].items()
            if not name.startswith("train@") or name.split("@", 1)[1] in wanted
        }
        lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))


def git_env() -> dict:
    return {**os.environ, **GIT_IDENTITY}


def commit_all(repo: Path, message: str = "scratch") -> None:
    env = git_env()
    if not (repo / ".git").exists():
        sh(["git", "init", "-q"], repo, env)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", message]):
        sh(cmd, repo, env)


def tool_env(**extra: str) -> dict:
    """Git identity, and this environment's dvc and python first on PATH."""
    env = git_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env.update(extra)
    return env


# the train code that make_cluster edits after the last `dvc repro`
STALE_CODE = "pipeline/train/__init__.py"
# the runs the cluster tests submit (tests/cluster/test_scaleout.py; the search's base is an anchor run)
CLUSTER_RUNS = ("ptb-baseline-40-10", "ptb-baseline-90-10", "ptb-baseline-100-40", "ptb-baseline-300-40")


def make_cluster(root: Path, mirror: Path) -> dict:
    """A workspace (the quick profile shrunk to ``TINY``, the runs to CLUSTER_RUNS, STALE_CODE
    edited, PTB prepared and pushed), its bare git origin and a DVC remote directory, as a
    cluster's shared filesystem would provide them.

    Returns {"main", "origin", "remote", "clones" (where task clones go), "env"}."""
    main, origin, remote = root / "main", root / "origin.git", root / "dvc-remote"
    copy_project(main)
    trim_runs(main, CLUSTER_RUNS, profile=TINY)
    # a code change committed without `dvc repro`, as users submit them: preparing PTB below
    # rebuilds the code fingerprints (stage `code`, upstream of prepare@ptb), but the run specs,
    # which carry the train code's digest, stay stale, and every task rebuilds them in its clone
    with (main / STALE_CODE).open("a") as f:
        f.write("# edited after the last dvc repro\n")
    commit_all(main)
    env = tool_env(SCRN_DATA_MIRROR=str(mirror), SCRN_OFFLINE="1")
    sh(["git", "init", "-q", "--bare", str(origin)], root, env)
    sh(["git", "remote", "add", "origin", str(origin)], main, env)
    sh(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], main, env)
    # the prepared corpus goes to the remote once, so the task clones pull it instead of preparing it
    sh(["dvc", "repro", "prepare@ptb"], main, env, timeout=900)
    sh(["dvc", "push", "--run-cache", "download@ptb", "prepare@ptb"], main, env, timeout=900)
    if subprocess.run(["git", "diff", "--quiet"], cwd=main).returncode:
        commit_all(main, "prepared PTB")
    sh(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], main, env)
    return {"main": main, "origin": origin, "remote": remote, "clones": root / "clones", "env": env}
