"""DVC's experiment-queue workers on this machine: find the ones a command started, end them.

Shared by the search's ``local`` backend (pipeline/search/backends.py) and the grid's ``local``
backend (pipeline/scaleout/grid.py). DVC's workers are meant to exit when the queue is empty,
but with dvc 3.67 one often stays alive after "shutting down due to empty queue"; a command that
started workers therefore stops them itself: ``dvc queue stop``, a grace period, then SIGTERM and
SIGKILL by pid, only for the pids it started and only while they are still queue workers (a
recycled pid is never signalled).

``dvc queue start`` itself must never write into a pipe of ours (:func:`run_leaving_daemons`): DVC
daemonises its workers by forking, the forks inherit the command's stdout and stderr, and a
worker that stays alive would keep the pipe open, so ``subprocess.run(capture_output=True)``
would wait for end-of-file forever.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable


def run_leaving_daemons(cmd: list[str], *, cwd=None, env: dict | None = None, timeout: float | None = None,
                        capture_output: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` for a command that forks daemons.

    Its stdout and stderr go to temporary files, not pipes: daemons it forks (``dvc queue
    start``'s workers) inherit them, and one that outlives the command would keep a pipe open and
    make the caller wait for end-of-file until it exits.
    """
    if not (capture_output and text):
        raise ValueError("run_leaving_daemons always captures text output")
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                              timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


POLL_ATTEMPTS = 3


def queue_states(run: Callable[[], subprocess.CompletedProcess], error: type[Exception],
                 attempts: int = POLL_ATTEMPTS, pause_s: float = 1.0) -> dict[str, str]:
    """Experiment name -> Queued | Running | Success | Failed | ... from ``dvc queue status``.

    ``run`` runs the command without raising. It reads the files the workers are writing, and
    catching one empty or half-written fails the whole command ("unexpected error - Expecting
    value: line 1 column 1 (char 0)", seen in CI with dvc 3.67), so a failed poll is retried
    ``attempts`` times in all before ``error`` is raised with DVC's message.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    for attempt in range(1, attempts + 1):
        proc = run()
        if proc.returncode == 0:
            return parse_queue_status(proc.stdout)
        if attempt < attempts:
            time.sleep(pause_s)
    raise error(f"`dvc queue status` failed (exit {proc.returncode}) {attempts} times in a row: "
                f"{(proc.stderr + proc.stdout).strip()[-2000:]}")


def parse_queue_status(text: str) -> dict[str, str]:
    """The task table of ``dvc queue status`` (dvc 3.67: ``Task Name Created Status``, the task id
    in hex, "Created" as two words such as ``10:25 AM``), newest last: a name queued again keeps
    its newest state. The header, blank lines and the ``Worker status`` line do not match."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 4 and re.fullmatch(r"[0-9a-f]{7,}", cols[0]):
            states[cols[1]] = cols[-1]
    return states


def worker_pids(repo: Path) -> set[int]:
    """Pids of ``repo``'s DVC queue workers that are alive (from .dvc/tmp/exps/celery)."""
    pids = set()
    for pid_file in (Path(repo) / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if alive(pid) and is_queue_worker(pid):
            pids.add(pid)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def is_queue_worker(pid: int) -> bool:
    """Guards against a recycled pid: the process must still be a DVC queue worker."""
    try:
        return b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()  # no procfs (macOS): trust the pid file


def end_processes(pids: set[int], grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``pids`` to exit, then SIGTERM, then SIGKILL the queue workers left."""
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        left = {p for p in pids if alive(p) and is_queue_worker(p)}
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.5)


def stop_workers(repo: Path, started: set[int], dvc: str = "dvc", env: dict | None = None,
                 grace_s: float = 15.0, command_timeout_s: float = 120.0) -> None:
    """``dvc queue stop`` in ``repo``, then end those of ``started`` still alive after ``grace_s``."""
    try:
        subprocess.run([dvc, "queue", "stop"], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=command_timeout_s)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        pass  # the pids below are ended regardless
    end_processes(set(started) & worker_pids(repo), grace_s=grace_s)
