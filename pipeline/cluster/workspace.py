"""What array tasks need of the submitting workspace: its commit on the git remote they clone
from, the DVC remote they push to, and the checkpoint folder they share with it.

Each check raises :class:`~pipeline.errors.ScaleoutError` saying what to do, before anything
is submitted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.cluster.config import ScaleoutSettings
from pipeline.cluster.dvc import tool_env
from pipeline.errors import ScaleoutError


def git(repo: Path, *args: str, check: bool = True) -> str:
    """``git <args>`` in ``repo``; its stdout, stripped."""
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=tool_env())
    if check and proc.returncode != 0:
        raise ScaleoutError(f"`git {' '.join(args)}` failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def dvc_outputs(repo: Path) -> list[str]:
    """Workspace-relative paths of every stage output (their changes are results, not sources)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return [os.path.relpath(out.fs_path, dvc_repo.root_dir) for out in dvc_repo.index.outs]


def git_preflight(repo: Path, git_remote: str) -> tuple[str, str]:
    """(commit, clone URL): refuses a workspace whose sources differ from its commit, or a commit
    that is not on ``git_remote``; the tasks clone that commit from there, not this workspace."""
    url = git(repo, "remote", "get-url", git_remote, check=False)
    if not url:
        raise ScaleoutError(
            f"no git remote {git_remote!r}: the tasks clone the repository from it. Add one the "
            f"nodes can reach (`git remote add {git_remote} <url>`, a bare repository on the shared "
            "filesystem will do) or set scaleout.git_remote / --git-remote"
        )
    commit = git(repo, "rev-parse", "HEAD")
    outputs = dvc_outputs(repo)
    dirty = []
    status = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=no"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for entry in filter(None, status.split("\0")):
        if len(entry) < 4 or entry[2] != " ":
            continue  # the source path of a rename (-z puts it in its own field)
        path = entry[3:]
        if path == "dvc.lock" or any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs):
            continue  # results of earlier fan-ins: the tasks do not need them
        dirty.append(path)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise ScaleoutError(
            f"uncommitted changes to {shown}: the tasks run the commit, not this workspace. "
            f"Commit them and push (`git commit -am '...' && git push {git_remote} HEAD`), "
            "then submit again"
        )
    git(repo, "fetch", "--quiet", git_remote)
    if not git(repo, "for-each-ref", "--contains", commit, f"refs/remotes/{git_remote}/"):
        raise ScaleoutError(
            f"commit {commit[:12]} is not on the git remote {git_remote!r} ({url}), so the tasks "
            f"cannot clone it: `git push {git_remote} HEAD` (or push the branch), then submit again"
        )
    return commit, url


def default_dvc_remote(repo: Path) -> str:
    """URL of the workspace's default DVC remote: the tasks push to it and the fan-in
    (``dvc repro --pull``, which only knows the default remote) pulls from it."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        name = dvc_repo.config["core"].get("remote")
        remotes = dvc_repo.config.get("remote", {})
    if not name or name not in remotes:
        raise ScaleoutError(
            "no default DVC remote: the tasks push their results to it and `dvc repro --pull` "
            "brings them back. Add one that the nodes and this workspace can both reach, e.g. "
            "`dvc remote add -d shared /shared/fs/scrn-dvc-remote` (or an s3:// URL)"
        )
    return str(remotes[name]["url"])


def shared_checkpoint_dir(repo: Path, settings: ScaleoutSettings) -> str:
    """Where the tasks keep resumable checkpoints, shared with this workspace (absolute)."""
    return str((repo / (settings.checkpoint_dir or "checkpoints")).resolve())
