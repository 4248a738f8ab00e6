"""The search's ``slurm`` and ``debug`` backends: each round is one array of experiment tasks.

A round's samples become one :func:`pipeline.scaleout.experiments.run_experiment_round` call:
one ``sbatch`` job array (``slurm``, through submitit) or, with ``debug``, the same tasks run in
this process one after another. Each task clones the pushed commit, runs
``dvc exp run --pull -n <sample> -S ++key=value ... train@<base run>`` with exactly the sample's
``-S`` arguments (:meth:`Sample.set_args`), pushes the experiment (``dvc exp push``) and returns
its metrics; the round ends with ``dvc exp pull`` here, so ``dvc exp show`` lists the samples.

Resources come from ``scaleout:`` in params.yaml (partition, time limit, GPUs, the git remote,
where clones and logs go), with the search's command-line flags on top; ``jobs`` is the array's
throttle (``sbatch --array=0-N%jobs``). The preflight (a committed workspace whose commit is on
the git remote, a default DVC remote) raises :class:`~pipeline.errors.ScaleoutError` with what
to do; a sample that fails or diverges never raises: it is PPL ∞.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pipeline.config import load_params
from pipeline.errors import SearchError
from pipeline.scaleout.config import ScaleoutSettings, scaleout_settings
from pipeline.scaleout.experiments import run_experiment_round
from pipeline.search.core import Outcome, Sample, failure_outcome

Log = Callable[[str], None]


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
    return dataclasses.replace(outcome, message=f"{outcome.message} (step {step}; log {log})"[:500]) if step else outcome


class ArrayBackend:
    """One submitit array per round (``executor``: ``slurm`` or ``debug``)."""

    def __init__(self, repo: Path, jobs: int, timeout_s: float | None = None, log: Log = print, *,
                 executor: str, scaleout: ScaleoutSettings | None = None, params_file: str | Path = "params.yaml"):
        self.name = executor
        self.repo = Path(repo)
        settings = scaleout or scaleout_settings(load_params(self.repo / params_file))
        self.settings = dataclasses.replace(settings, array_parallelism=jobs)
        self.log = log
        if timeout_s is not None:
            log(f"search: --timeout-s does not apply to the {executor} backend; each task is bounded by "
                f"scaleout.time_min ({self.settings.time_min} min, --time-min)")

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
            stage=stage, metrics_file=metrics_file, backend=self.name, settings=self.settings, repo=self.repo,
            round_name=round_name, pull=True, echo=self.log)
        return {s.name: record_outcome(records.get(s.name), metrics_file) for s in samples}

    def close(self) -> None:
        """Nothing to release: the array has ended when execute_round returns."""
