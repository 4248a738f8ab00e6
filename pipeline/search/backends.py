"""How one round of the random search is executed.

A backend receives the round's :class:`~pipeline.search.core.Sample` list (a unique name, the one
DVC stage to run, its ``-S`` overrides, the metrics file to read) and returns an
:class:`~pipeline.search.core.Outcome` per sample name. It never raises for a sample that
diverged or failed: that sample is PPL ∞. It raises :class:`~pipeline.errors.SearchError` only
when the machinery itself fails (the queue cannot be reached, a command times out).

Backends register in :data:`BACKENDS`; ``python -m stages.search --backend NAME`` picks one.

``local``: DVC's experiment queue on this machine. Each sample becomes
``dvc exp run --queue -n <name> -S ... train@<base run>``; ``dvc queue start -j N`` runs them,
each in its own temporary copy of the repository (``.dvc/tmp/exps``), outputs such as
``data/prepared/ptb`` checked out from the DVC cache; the results are DVC experiments
(``dvc exp show``, ``dvc exp apply <name>``). The queue is the repository's: experiments queued
by hand while the search runs are run along with it.

``slurm`` / ``debug``: each round is one array of experiment tasks (pipeline/search/cluster.py,
on pipeline/scaleout): one ``sbatch`` array through submitit, or the same tasks in this process.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

from pipeline.dvc_queue import end_processes, queue_states, run_leaving_daemons, worker_pids
from pipeline.errors import SearchError
from pipeline.search.core import Outcome, Sample, failure_outcome


class Backend(Protocol):
    name: str

    def execute_round(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        """Run every sample; one Outcome per ``sample.name`` (PPL ∞ for diverged or failed)."""

    def close(self) -> None:
        """Release what the backend started (workers, ...). Called once, after the last round."""


Log = Callable[[str], None]


class LocalQueueBackend:
    """DVC's experiment queue: ``dvc exp run --queue`` per sample, ``dvc queue start -j N``."""

    name = "local"

    def __init__(self, repo: Path, jobs: int, timeout_s: float | None = None, log: Log = print,
                 poll_s: float = 5.0, command_timeout_s: float = 600.0, dvc: str | None = None):
        self.repo = Path(repo)
        self.jobs = jobs
        self.timeout_s = timeout_s
        self.log = log
        self.poll_s = poll_s
        self.command_timeout_s = command_timeout_s
        self.dvc = dvc or _dvc_executable()
        self._started_workers: set[int] = set()
        self._queue_started = False

    # -------------------------------------------------------------- dvc commands

    def _dvc(self, *args: str, check: bool = True, leaves_daemons: bool = False) -> subprocess.CompletedProcess:
        cmd = [self.dvc, *args]
        run = run_leaving_daemons if leaves_daemons else subprocess.run  # `queue start` forks its workers
        try:
            proc = run(cmd, cwd=self.repo, capture_output=True, text=True, timeout=self.command_timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise SearchError(f"`{' '.join(cmd)}` did not finish within {self.command_timeout_s:.0f}s") from exc
        except FileNotFoundError as exc:
            raise SearchError(f"`{self.dvc}` not found: run the search from the project's environment (.venv)") from exc
        if check and proc.returncode != 0:
            raise SearchError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}")
        return proc

    def _experiments(self) -> dict[str, dict]:
        """Experiments of the current baseline by name: ``{"state": ..., "metrics": ..., "log": ...}``."""
        data = json.loads(self._dvc("exp", "show", "--json").stdout or "[]")
        found: dict[str, dict] = {}
        for baseline in data:
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

    def _queue_states(self) -> dict[str, str]:
        """``dvc queue status`` as name -> Queued | Running | Success | Failed | ... (cheap to poll)."""
        return queue_states(lambda: self._dvc("queue", "status", check=False), SearchError)

    def _worker_pids(self) -> set[int]:
        return worker_pids(self.repo)

    # -------------------------------------------------------------- the round

    def execute_round(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        names = [s.name for s in samples]
        # a name left by an interrupted run of this search: `dvc exp run -n` refuses it
        existing = self._experiments()  # one `dvc exp show` (seconds), not one per sample
        stale = [n for n in names if n in existing]
        if stale:
            self.log(f"search: removing {len(stale)} earlier experiment(s) of the same names")
            for _ in range(3):  # a name can be both a finished and a failed entry; remove until gone
                self._dvc("exp", "remove", *stale, check=False)
                existing = self._experiments()
                stale = [n for n in stale if n in existing]
                if not stale:
                    break
        for s in samples:
            self._dvc("exp", "run", "--queue", "-n", s.name, *s.set_args(), s.stage)
        self.log(f"search: queued {len(samples)} experiment(s); running {self.jobs} at a time")
        before = self._worker_pids()
        self._queue_started = True
        self._dvc("queue", "start", "-j", str(self.jobs), leaves_daemons=True)
        self._started_workers |= self._worker_pids() - before
        self._wait(names)
        self._started_workers |= self._worker_pids() - before
        return self._collect(samples)

    def _wait(self, names: list[str]) -> None:
        start = time.monotonic()
        pending = set(names)
        last = None
        while True:
            states = self._queue_states()
            pending = {n for n in names if states.get(n, "Missing") in ("Queued", "Running")}
            done = len(names) - len(pending)
            if done != last:
                self.log(f"search: {done}/{len(names)} finished")
                last = done
            if not pending:
                return
            if self.timeout_s is not None and time.monotonic() - start > self.timeout_s:
                self.log(f"search: round timed out after {self.timeout_s:.0f}s; stopping {len(pending)} run(s)")
                self._dvc("queue", "kill", *sorted(pending), check=False)
                self._dvc("queue", "remove", *sorted(pending), check=False)  # those still queued
                return
            time.sleep(self.poll_s)

    def _collect(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        exps = self._experiments()
        outcomes = {}
        for s in samples:
            exp = exps.get(s.name)
            if exp is None:
                outcomes[s.name] = Outcome(math.inf, "failed", message="no experiment (stopped or timed out)")
            elif exp["state"] == "success":
                metrics = (exp["metrics"].get(s.metrics) or {}).get("data")
                outcomes[s.name] = Outcome.from_metrics(metrics)
            else:
                outcomes[s.name] = failure_outcome(self._log_text(s.name, exp.get("log")))
        return outcomes

    def _log_text(self, name: str, path: str | None) -> str:
        if path and Path(path).is_file():
            return Path(path).read_text(errors="replace")
        return self._dvc("queue", "logs", name, check=False).stdout

    # -------------------------------------------------------------- cleanup

    def close(self) -> None:
        """Stop the queue workers this search started. DVC's workers are meant to exit when the
        queue is empty, but with dvc 3.67 one often stays alive after "shutting down due to
        empty queue"; those still alive after `dvc queue stop` and a grace period are ended by
        pid (only the ones started here)."""
        if not self._queue_started:
            return
        self._dvc("queue", "stop", check=False)
        end_processes(self._started_workers & self._worker_pids(), grace_s=15.0)


def _dvc_executable() -> str:
    """The dvc of the running interpreter's environment (.venv/bin/dvc), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.is_file() else "dvc"


def _array_backend(executor: str) -> Callable[..., Backend]:
    def factory(repo: Path, jobs: int, timeout_s: float | None, log: Log = print, scaleout=None) -> Backend:
        from pipeline.search.cluster import ArrayBackend  # submitit only when asked for

        return ArrayBackend(repo, jobs, timeout_s, log, executor=executor, scaleout=scaleout)

    factory.__doc__ = f"One {executor} array of experiment tasks per round (pipeline/search/cluster.py)."
    return factory


def _local_backend(repo: Path, jobs: int, timeout_s: float | None, log: Log = print, scaleout=None) -> Backend:
    return LocalQueueBackend(repo=repo, jobs=jobs, timeout_s=timeout_s, log=log)  # scaleout: not used here


BACKENDS: dict[str, Callable[..., Backend]] = {
    "local": _local_backend,
    "slurm": _array_backend("slurm"),
    "debug": _array_backend("debug"),
}


def make_backend(name: str, repo: Path, jobs: int, timeout_s: float | None, log: Log = print,
                 scaleout=None) -> Backend:
    """The backend registered as ``name``; every factory takes (repo, jobs, timeout_s, log, scaleout),
    ``scaleout`` being the :class:`~pipeline.scaleout.config.ScaleoutSettings` of the array
    backends (None: the ``scaleout:`` section of the repository's params.yaml)."""
    if name not in BACKENDS:
        raise SearchError(f"unknown search backend {name!r} (have: {', '.join(BACKENDS)})")
    return BACKENDS[name](repo=repo, jobs=jobs, timeout_s=timeout_s, log=log, scaleout=scaleout)
