"""End-of-epoch checkpoints from which a killed run resumes to the same result.

They live in ``checkpoints/<run>-<params hash>/`` at the repository root, outside every DVC
output: DVC never deletes them when it re-runs a stage, and the stage stays cacheable by the
run-cache. A checkpoint also records a fingerprint of the code the run executes (the files of
the ``code`` stage's results/code/train.json); one written by other code is set aside rather than
resumed, so a code change never mixes two implementations.
Once a run has written its results, its checkpoint directory is deleted: the best model is in
the results, and a medium WikiText-2 checkpoint alone is ~450 MB (the quick DAG left 7 GB).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.config import RunConfig
from pipeline.errors import RunInProgress
from pipeline.fingerprint import digest, fingerprint, stage_code
from pipeline.fsutil import atomic_write_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "last.pt"


def code_fingerprint(root: Path = REPO_ROOT) -> str:
    """A short digest of every project file that ``python -m stages.train`` can load."""
    return digest(fingerprint(stage_code("stages.train", root), root))[:12]


def checkpoint_dir(root: Path, cfg: RunConfig) -> Path:
    return Path(root) / f"{cfg.name}-{cfg.params_hash}"


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(directory: Path, payload: dict) -> Path:
    """Write ``payload`` atomically: a kill during the write leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(directory) / CHECKPOINT_NAME
    atomic_write_bytes(path, buffer.getvalue())
    return path


def discard_checkpoints(directory: Path) -> bool:
    """Delete a finished run's checkpoint directory (set-aside stale ones included); True if one was there."""
    directory = Path(directory)
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True


def load_checkpoint(directory: Path, fingerprint: str) -> dict | None:
    """The last checkpoint of this run, or None if there is none usable."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("code_fingerprint") != fingerprint:
        stale = path.with_name(f"stale-{payload.get('code_fingerprint', 'unknown')}.pt")
        path.rename(stale)
        print(f"checkpoint {path} was written by other code; set aside as {stale.name}, starting afresh", flush=True)
        return None
    return payload


def lock_path(directory: Path) -> Path:
    """The lock beside a run's checkpoint directory (it outlives the directory, which is deleted
    once the run has written its results)."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".lock")


def holder(directory: Path) -> str | None:
    """Who trains the run now ("pid N since T"), or None if nobody does."""
    path = lock_path(directory)
    if not path.exists():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            return f.read().strip() or "another process"
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def exclusive(directory: Path):
    """Hold the run's lock while it trains: two processes of one run would write the same
    checkpoint and results. The kernel releases it when the process ends, however it ends; a run
    that ends normally also removes the lock file, so a finished run leaves nothing behind."""
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise RunInProgress(
                f"{Path(directory).name} is being trained by {who} (lock {path}); wait for it to "
                "finish or stop it, then run this again"
            ) from None
        if _still_linked(f, path):
            break
        f.close()  # its holder removed the file between our open and our lock: lock the new one
    with f:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        f.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
            fcntl.flock(f, fcntl.LOCK_UN)


def _still_linked(f, path: Path) -> bool:
    """Whether the open file `f` is still the one at `path` (not unlinked by a finishing holder)."""
    try:
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False
