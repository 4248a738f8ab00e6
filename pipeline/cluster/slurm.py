"""Slurm through submitit: submit a list of tasks as one array and wait for their status records.

- ``slurm``: submitit's ``AutoExecutor(cluster="slurm")``; ``map_array`` sends one ``sbatch``
  job array, its size the number of tasks and its ``%`` throttle ``scaleout.array_parallelism``.
- ``debug``: submitit's ``DebugExecutor`` (``cluster="debug"``): every task runs in this process,
  one after another, when its result is asked for. The tests use it.

(The ``local`` backends, DVC's own queue, need no executor: see queue.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import submitit

from pipeline.cluster.config import ScaleoutSettings
from pipeline.cluster.tasks import ScaleoutTask, TaskSpec, read_status
from pipeline.errors import ScaleoutError

EXECUTOR_BACKENDS = ("slurm", "debug")


def slurm_parameters(settings: ScaleoutSettings, job_name: str) -> dict[str, Any]:
    """The submitit ``AutoExecutor.update_parameters`` keywords for one array of tasks."""
    params: dict[str, Any] = {
        "name": job_name,
        "timeout_min": settings.time_min,
        "cpus_per_task": settings.cpus_per_task,
        "slurm_array_parallelism": settings.array_parallelism,
        # one task per array element, on one node; submitit's generic gpus_per_node would be
        # per node, the issue (and Slurm's --gpus-per-task) asks per task
        "nodes": 1,
        "tasks_per_node": 1,
    }
    if settings.gpus_per_task:
        params["slurm_gpus_per_task"] = settings.gpus_per_task
    if settings.partition:
        params["slurm_partition"] = settings.partition
    if settings.account:
        params["slurm_account"] = settings.account
    if settings.mem_gb is not None:
        params["mem_gb"] = settings.mem_gb
    if settings.setup:
        params["slurm_setup"] = list(settings.setup)
    return params


def make_executor(backend: str, settings: ScaleoutSettings, folder: Path, job_name: str) -> submitit.AutoExecutor:
    """The configured submitit executor; ``folder`` holds submitit's pickles and Slurm logs
    (``%j`` is replaced by the job id) and must be on a filesystem the nodes share."""
    if backend not in EXECUTOR_BACKENDS:
        raise ValueError(f"backend must be one of {EXECUTOR_BACKENDS}, got {backend!r}")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=backend)
    if backend == "slurm":
        executor.update_parameters(**slurm_parameters(settings, job_name))
    else:
        executor.update_parameters(name=job_name)
    return executor


def submit(
    specs: Sequence[TaskSpec], backend: str, settings: ScaleoutSettings, folder: Path, job_name: str
) -> list[submitit.Job]:
    """Submit ``specs`` as one array (one task per spec); returns submitit's jobs, in order."""
    executor = make_executor(backend, settings, folder, job_name)
    try:
        return executor.map_array(ScaleoutTask(), list(specs))
    except Exception as exc:  # submitit: FailedJobError (sbatch refused), RuntimeError (no Slurm here), ...
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ScaleoutError(
            f"submitting {len(specs)} task(s) to {backend} failed: {type(exc).__name__}: {first_line}. Run where "
            "sbatch works, and check the scaleout: section of params.yaml (partition, account, time_min, "
            "gpus_per_task) or its flags"
        ) from exc


def _failure_record(spec: TaskSpec, job: submitit.Job, exc: BaseException) -> dict[str, Any]:
    """The record of a task that died without writing its own end: pre-empted past its requeues,
    timed out, killed, node failure, or an error before run_task started.

    The stored record counts only while it says ``running`` (this attempt started); a finished one
    is an earlier attempt's, whose step and error are not this failure's.
    """
    stored = read_status(Path(spec.status_path))
    record = (
        stored
        if stored and stored.get("status") == "running"
        else {
            "name": spec.name,
            "kind": spec.kind,
            "log": spec.log_path,
            "status_path": spec.status_path,
            "commit": spec.commit,
        }
    )
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    record.update(status="failed", failed_step="job", error=f"{type(exc).__name__}: {first_line}")
    try:
        record["job_log"] = str(job.paths.stdout)
    except Exception:  # noqa: BLE001 - the path is a convenience
        pass
    return record


def collect(
    jobs: Sequence[submitit.Job], specs: Sequence[TaskSpec], on_record: Callable[[dict], None] | None = None
) -> list[dict[str, Any]]:
    """Wait for every job, in order; one status record per spec, never an exception."""
    records = []
    for job, spec in zip(jobs, specs):
        try:
            record = job.result()
            if not isinstance(record, dict):
                raise RuntimeError(f"task returned {record!r}, not a status record")
        except Exception as exc:  # noqa: BLE001 - reported by name, with its log
            record = _failure_record(spec, job, exc)
        try:
            record.setdefault("job_log", str(job.paths.stdout))
        except Exception:  # noqa: BLE001
            pass
        records.append(record)
        if on_record:
            on_record(record)
    return records


def execute(
    specs: Sequence[TaskSpec],
    backend: str,
    settings: ScaleoutSettings,
    folder: Path,
    job_name: str,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict[str, Any]]:
    """Submit ``specs`` as one array and wait for all of them."""
    if not specs:
        return []
    return collect(submit(specs, backend, settings, folder, job_name), specs, on_record)
