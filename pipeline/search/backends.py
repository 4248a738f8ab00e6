"""How one round of the random search is executed: short clients of pipeline/cluster.

A backend receives the round's :class:`~pipeline.search.core.Sample` list (a unique name, the one
DVC stage to run, its ``-S`` overrides, the metrics file to read) and returns an
:class:`~pipeline.search.core.Outcome` per sample name. It never raises for a sample that
diverged or failed: that sample is PPL ∞. It raises :class:`~pipeline.errors.ScaleoutError` only
when the machinery itself fails (the queue cannot be reached, a command times out, a preflight
check of the workspace).

Backends register in :data:`BACKENDS`; ``python -m stages.search --backend NAME`` picks one.

- ``local``: DVC's experiment queue on this machine (:class:`~pipeline.cluster.queue.DvcQueue`):
  each sample is ``dvc exp run --queue -n <name> -S ... train@<base run>``, and ``dvc queue start
  -j N`` runs them; the results are DVC experiments (``dvc exp show``, ``dvc exp apply <name>``).
- ``slurm`` / ``debug``: each round is one array of experiment tasks
  (:func:`pipeline.cluster.experiments.run_experiment_round`): one ``sbatch`` array through
  submitit, or the same tasks in this process. Each task clones the pushed commit, runs the
  sample's exact ``-S`` arguments, pushes the experiment and returns its metrics; the round ends
  with ``dvc exp pull`` here. Resources come from ``scaleout:`` in params.yaml; ``jobs`` is the
  array's throttle (``sbatch --array=0-N%jobs``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from pipeline.cluster.config import ScaleoutSettings, scaleout_settings
from pipeline.cluster.dvc import Dvc
from pipeline.cluster.experiments import run_experiment_round
from pipeline.cluster.queue import DvcQueue
from pipeline.config import load_params
from pipeline.errors import SearchError
from pipeline.search.core import Outcome, Sample, failure_outcome

Log = Callable[[str], None]


class Backend(Protocol):
    name: str

    def execute_round(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        """Run every sample; one Outcome per ``sample.name`` (PPL ∞ for diverged or failed)."""

    def close(self) -> None:
        """Release what the backend started (workers, ...). Called once, after the last round."""


class LocalQueueBackend:
    """DVC's experiment queue: ``dvc exp run --queue`` per sample, ``dvc queue start -j N``."""

    name = "local"

    def __init__(
        self,
        repo: Path,
        jobs: int,
        timeout_s: float | None = None,
        log: Log = print,
        poll_s: float = 5.0,
        dvc: str | None = None,
    ):
        self.queue = DvcQueue(Dvc(repo, dvc), jobs, log=log, label="search", poll_s=poll_s)
        self.jobs, self.timeout_s, self.log = jobs, timeout_s, log

    def execute_round(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        names = [s.name for s in samples]
        self.queue.remove_experiments(names)  # left by an interrupted run of this search
        for s in samples:
            self.queue.add(s.name, s.stage, s.set_args())
        self.log(f"search: queued {len(samples)} experiment(s); running {self.jobs} at a time")
        self.queue.start()
        self.queue.wait(names, self.timeout_s)
        return self.outcomes(samples)

    def outcomes(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        """Each sample's Outcome from ``dvc exp show``, its log when it failed."""
        exps = self.queue.experiments()
        outcomes = {}
        for s in samples:
            exp = exps.get(s.name)
            if exp is None:
                outcomes[s.name] = Outcome(math.inf, "failed", message="no experiment (stopped or timed out)")
            elif exp["state"] == "success":
                metrics = (exp["metrics"].get(s.metrics) or {}).get("data")
                outcomes[s.name] = Outcome.from_metrics(metrics)
            else:
                log = exp.get("log")
                text = Path(log).read_text(errors="replace") if log and Path(log).is_file() else self.queue.logs(s.name)
                outcomes[s.name] = failure_outcome(text)
        return outcomes

    def close(self) -> None:
        """Stop the queue workers this search started (dvc 3.67 often leaves one alive)."""
        self.queue.stop()


def record_outcome(record: Mapping[str, Any] | None, metrics_file: str) -> Outcome:
    """The Outcome of one experiment task's status record: ``ok`` -> its metrics; ``failed`` ->
    ``diverged`` or ``failed`` (PPL ∞) from the task's log (the trainer's NaN guard writes
    "non-finite loss" / "diverged" there), else from the record's error."""
    if not record:
        return Outcome(math.inf, "failed", message="the array returned no record for this sample")
    if record.get("status") == "ok":
        return Outcome.from_metrics((record.get("metrics") or {}).get(metrics_file))
    text = ""
    log = record.get("log")
    if log and Path(log).is_file():
        text = Path(log).read_text(errors="replace")
    if record.get("error"):
        text += f"\nerror: {record['error']}"  # a Slurm-level failure (time limit, node) is only here
    outcome = failure_outcome(text)
    step = record.get("failed_step")
    return (
        dataclasses.replace(outcome, message=f"{outcome.message} (step {step}; log {log})"[:500]) if step else outcome
    )


class ArrayBackend:
    """One array of experiment tasks per round (``executor``: ``slurm`` or ``debug``)."""

    def __init__(
        self,
        repo: Path,
        jobs: int,
        timeout_s: float | None = None,
        log: Log = print,
        *,
        executor: str,
        scaleout: ScaleoutSettings | None = None,
    ):
        self.name = executor
        self.repo = Path(repo)
        settings = scaleout or scaleout_settings(load_params(self.repo / "params.yaml"))
        self.settings = dataclasses.replace(settings, array_parallelism=jobs)
        self.log = log
        if timeout_s is not None:
            log(
                f"search: --timeout-s does not apply to the {executor} backend; each task is bounded by "
                f"scaleout.time_min ({self.settings.time_min} min, --time-min)"
            )

    def execute_round(self, samples: Sequence[Sample]) -> dict[str, Outcome]:
        if not samples:
            return {}
        stages = {(s.stage, s.metrics) for s in samples}
        if len(stages) != 1:
            raise SearchError(f"a round runs one stage, got {sorted(stages)}")
        ((stage, metrics_file),) = stages
        round_name = samples[0].name.rsplit("-", 1)[0]  # <search>-r<round>
        records = run_experiment_round(
            {s.name: tuple(s.set_args()[1::2]) for s in samples},  # exactly the search's `-S ++key=value`
            stage=stage,
            metrics_file=metrics_file,
            backend=self.name,
            settings=self.settings,
            repo=self.repo,
            round_name=round_name,
            pull=True,
            echo=self.log,
        )
        return {s.name: record_outcome(records.get(s.name), metrics_file) for s in samples}

    def close(self) -> None:
        """Nothing to release: the array has ended when execute_round returns."""


def _local(repo: Path, jobs: int, timeout_s: float | None, log: Log = print, scaleout=None) -> Backend:
    return LocalQueueBackend(repo=repo, jobs=jobs, timeout_s=timeout_s, log=log)  # scaleout: not used here


def _array(executor: str) -> Callable[..., Backend]:
    def factory(repo: Path, jobs: int, timeout_s: float | None, log: Log = print, scaleout=None) -> Backend:
        return ArrayBackend(repo, jobs, timeout_s, log, executor=executor, scaleout=scaleout)

    factory.__doc__ = f"One {executor} array of experiment tasks per round."
    return factory


BACKENDS: dict[str, Callable[..., Backend]] = {
    "local": _local,
    "slurm": _array("slurm"),
    "debug": _array("debug"),
}


def make_backend(name: str, repo: Path, jobs: int, timeout_s: float | None, log: Log = print, scaleout=None) -> Backend:
    """The backend registered as ``name``; every factory takes (repo, jobs, timeout_s, log, scaleout),
    ``scaleout`` being the :class:`~pipeline.cluster.config.ScaleoutSettings` of the array
    backends (None: the ``scaleout:`` section of the repository's params.yaml)."""
    if name not in BACKENDS:
        raise SearchError(f"unknown search backend {name!r} (have: {', '.join(BACKENDS)})")
    return BACKENDS[name](repo=repo, jobs=jobs, timeout_s=timeout_s, log=log, scaleout=scaleout)
