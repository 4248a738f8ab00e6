"""Helpers of the tests that run DVC itself in a scratch clone of the project."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def sh(cmd: list[str], cwd: Path, env: dict, timeout: float = 3600, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd``; a whole-DAG `dvc exp run` (about 60 stages) takes minutes on a 2-core CPU."""
    proc = subprocess.run(cmd, cwd=cwd, env={**env, **GIT_IDENTITY}, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def make_scratch_clone(repo: Path, clone: Path) -> Path:
    """The committed project plus the working-tree versions of its files, as a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (repo / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, clone / name)
    env = dict(os.environ)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "scratch"]):
        sh(cmd, clone, env)
    return clone


def queue_worker_pids(clone: Path) -> list[int]:
    """Pids of ``clone``'s DVC queue workers that are still running."""
    pids = []
    for info in (clone / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.json"):
        try:
            pids.append(int(json.loads(info.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            continue
    return [p for p in pids if _alive_worker(p)]


def _alive_worker(pid: int) -> bool:  # alive and still a queue worker, not a recycled pid
    try:
        os.kill(pid, 0)
        return (Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
                and b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes())
    except (OSError, IndexError):
        return False


def end_queue_workers(clone: Path, grace_s: float = 20.0) -> None:
    """Stop the DVC queue workers of ``clone`` (and only those): `dvc queue stop`, then their
    pids (from the clone's .dvc/tmp/exps/celery) if they outlive the grace period, as dvc 3.67's
    workers sometimes do."""
    dvc = str(Path(sys.executable).parent / "dvc")  # the project's environment, as the tests run it
    subprocess.run([dvc, "queue", "stop"], cwd=clone, capture_output=True, timeout=120)
    pids = queue_worker_pids(clone)
    for sig, wait in ((None, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        if sig is not None:
            for pid in pids:
                if _alive_worker(pid):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(_alive_worker(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.5)
