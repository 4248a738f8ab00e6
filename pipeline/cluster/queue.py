"""DVC's experiment queue on this machine: :class:`DvcQueue`, what the grid's and the search's
``local`` backends run.

Each entry is ``dvc exp run --queue -n <name> [-S ...] <stage>``; ``dvc queue start -j N`` runs
them, each in its own temporary copy of the repository (``.dvc/tmp/exps``), with this workspace's
DVC cache (so its run-cache). The queue is the repository's: experiments queued by hand while a
command runs are run along with it.

DVC's workers are meant to exit when the queue is empty, but with dvc 3.67 one often stays alive
after "shutting down due to empty queue"; :meth:`DvcQueue.stop` therefore ends the workers this
object started: ``dvc queue stop``, a grace period, then SIGTERM and SIGKILL by pid, only for the
pids it started and only while they are still queue workers (a recycled pid is never signalled).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pipeline.cluster.dvc import Dvc
from pipeline.errors import ScaleoutError

POLL_ATTEMPTS = 3
ACTIVE = ("Queued", "Running")  # the states of an entry that has not ended


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


def parse_experiments(shown: list[dict]) -> dict[str, dict]:
    """``dvc exp show --json`` as experiment name -> ``{"state": ..., "metrics": ..., "log": ...}``."""
    found: dict[str, dict] = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            executor = exp.get("executor") or {}
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                if not name:
                    continue
                found[name] = {
                    "state": executor.get("state") or ("failed" if rev.get("error") else "success"),
                    "metrics": (rev.get("data") or {}).get("metrics") or {},
                    "log": (executor.get("local") or {}).get("log"),
                }
    return found


class DvcQueue:
    """The experiment queue of one repository, and the workers this object started.

    ``log`` receives progress lines, each starting with ``label``.
    """

    def __init__(
        self,
        dvc: Dvc,
        jobs: int,
        log: Callable[[str], None] = print,
        label: str = "queue",
        poll_s: float = 5.0,
        poll_attempts: int = POLL_ATTEMPTS,
        retry_pause_s: float = 1.0,
    ):
        if poll_attempts < 1:
            raise ValueError("poll_attempts must be >= 1")
        self.dvc, self.jobs, self.log, self.label = dvc, jobs, log, label
        self.poll_s, self.poll_attempts, self.retry_pause_s = poll_s, poll_attempts, retry_pause_s
        self.started_workers: set[int] = set()
        self._before: set[int] = set()
        self._started = False

    # ------------------------------------------------------------------ entries

    def experiments(self) -> dict[str, dict]:
        """The experiments of the current baseline by name (:func:`parse_experiments`)."""
        return parse_experiments(json.loads(self.dvc.run("exp", "show", "--json").stdout or "[]"))

    def remove_experiments(self, names: Sequence[str]) -> None:
        """Remove the experiments of these names that exist: ``dvc exp run -n`` refuses a name taken,
        e.g. by an interrupted earlier attempt. One ``dvc exp show`` (seconds), not one per name."""
        existing = self.experiments()
        stale = [n for n in names if n in existing]
        if not stale:
            return
        self.log(f"{self.label}: removing {len(stale)} earlier experiment(s) of the same names")
        for _ in range(3):  # a name can be both a finished and a failed entry; remove until gone
            self.dvc.run("exp", "remove", *stale, check=False)
            existing = self.experiments()
            stale = [n for n in stale if n in existing]
            if not stale:
                return

    def add(self, name: str, stage: str, set_args: Sequence[str] = ()) -> None:
        self.dvc.run("exp", "run", "--queue", "-n", name, *set_args, stage)

    def logs(self, name: str) -> str:
        """What ``dvc queue logs`` has of an entry (its stage output), or DVC's error."""
        proc = self.dvc.run("queue", "logs", name, check=False)
        return proc.stdout + proc.stderr

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """``dvc queue start -j jobs``; the workers it starts are recorded, to be stopped."""
        self._before = worker_pids(self.dvc.repo)
        self._started = True
        self.dvc.run("queue", "start", "-j", str(self.jobs), leaves_daemons=True)
        self._note_workers()

    def _note_workers(self) -> None:
        self.started_workers |= worker_pids(self.dvc.repo) - self._before

    def states(self) -> dict[str, str]:
        """Entry name -> Queued | Running | Success | Failed | ... from ``dvc queue status``.

        The command reads the files the workers are writing, and catching one empty or
        half-written fails it ("unexpected error - Expecting value: line 1 column 1 (char 0)",
        seen in CI with dvc 3.67), so a failed poll is retried, ``poll_attempts`` in all.
        """
        for attempt in range(1, self.poll_attempts + 1):
            proc = self.dvc.run("queue", "status", check=False)
            if proc.returncode == 0:
                return parse_queue_status(proc.stdout)
            if attempt < self.poll_attempts:
                time.sleep(self.retry_pause_s)
        raise ScaleoutError(
            f"`dvc queue status` failed (exit {proc.returncode}) {self.poll_attempts} times in a row: "
            f"{(proc.stderr + proc.stdout).strip()[-2000:]}"
        )

    def wait(self, names: Sequence[str], timeout_s: float | None = None) -> dict[str, str]:
        """Poll until no entry of ``names`` is queued or running; returns the last states. After
        ``timeout_s`` the entries still going are killed and removed (they count as failed)."""
        start = time.monotonic()
        last = None
        while True:
            states = self.states()
            self._note_workers()
            pending = sorted(n for n in names if states.get(n, "Missing") in ACTIVE)
            done = len(names) - len(pending)
            if done != last:
                self.log(f"{self.label}: {done}/{len(names)} finished")
                last = done
            if not pending:
                return states
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                self.log(f"{self.label}: timed out after {timeout_s:.0f}s; stopping {len(pending)} run(s)")
                self.dvc.run("queue", "kill", *pending, check=False)
                self.dvc.run("queue", "remove", *pending, check=False)  # those still queued
                return states
            time.sleep(self.poll_s)

    def stop(self, grace_s: float = 15.0) -> None:
        """``dvc queue stop``, then end the workers this object started that are still alive
        after ``grace_s``; never raises (it runs while another error may be on its way)."""
        if not self._started:
            return
        try:
            self.dvc.run("queue", "stop", check=False)
        except ScaleoutError as exc:
            self.log(f"{self.label}: {exc}; ending the workers by pid")
        self._note_workers()
        end_processes(self.started_workers & worker_pids(self.dvc.repo), grace_s=grace_s)


# ---------------------------------------------------------------------------- worker processes


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


def end_processes(pids: Iterable[int], grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``pids`` to exit, then SIGTERM, then SIGKILL the queue workers left."""
    pids = set(pids)
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
