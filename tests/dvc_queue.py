"""DVC queue workers of a scratch repository (tests/scratch.py): find them, end them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


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
        return (
            Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
            and b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
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


class FakeDvc:
    """Stands in for :class:`pipeline.cluster.dvc.Dvc`: answers each command from ``answers``
    (``args -> CompletedProcess``, or a list of them, taken in turn) and records what it ran."""

    def __init__(self, repo: Path, answers: dict):
        self.repo, self.answers, self.ran = Path(repo), answers, []

    def run(
        self, *args: str, check: bool = True, leaves_daemons: bool = False, merge_output: bool = False
    ) -> subprocess.CompletedProcess:
        self.ran.append(args)
        answer = self.answers[args]
        return answer.pop(0) if isinstance(answer, list) else answer
