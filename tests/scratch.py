"""Scratch repositories for the end-to-end tests that drive DVC itself (test_dvc_pipeline.py,
test_scaleout.py): the committed project plus the working-tree versions of its files."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def sh(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 3600) -> subprocess.CompletedProcess:
    """Run ``cmd``; a whole-DAG `dvc exp run` (about 60 stages) takes minutes on a 2-core CPU."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_project(dest: Path) -> Path:
    """The tracked and untracked (not ignored) files of this checkout, copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def git_env() -> dict:
    return {**os.environ, **GIT_IDENTITY}


def commit_all(repo: Path, message: str = "scratch") -> None:
    env = git_env()
    if not (repo / ".git").exists():
        sh(["git", "init", "-q"], repo, env)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", message]):
        sh(cmd, repo, env)
