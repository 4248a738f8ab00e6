"""The ``scaleout:`` section of params.yaml: Slurm resources and where clones, logs and
checkpoints go. Every error names its key (``scaleout.time_min``), through the checks of
pipeline/validation.py that pipeline/config.py uses too.

It lives here, not in pipeline/config.py, because that module is a dependency of every training
stage: editing it would invalidate every recorded run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pipeline.validation import as_bool, as_int, as_mapping, check_known, fail

BACKENDS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class ScaleoutSettings:
    # Slurm resources of every array task (submitit: slurm_partition, timeout_min, ...)
    partition: str | None = None
    account: str | None = None
    time_min: int = 120
    gpus_per_task: int = 1
    cpus_per_task: int = 4
    mem_gb: float | None = None
    array_parallelism: int = 16
    setup: tuple[str, ...] = ()  # shell lines run in the sbatch script before the task (module load ...)
    # what the tasks share with the submitting workspace
    git_remote: str = "origin"  # the git remote the tasks clone from (the commit must be pushed there)
    workdir: str | None = None  # where task clones go; null: $SLURM_TMPDIR, else $TMPDIR, else /tmp
    log_dir: str = "logs/scaleout"  # per-task logs and status records; must be visible to the nodes
    checkpoint_dir: str | None = None  # null: the workspace's checkpoints/ (on the shared filesystem)
    keep_failed_clones: bool = True  # leave a failed task's clone in place to inspect it
    # the local backend: dvc queue workers on this machine
    local_jobs: int = 1


_STR_OR_NULL = ("partition", "account", "workdir", "checkpoint_dir")
_POSITIVE_INT = ("time_min", "cpus_per_task", "array_parallelism", "local_jobs")


def _str(value: Any, where: str, allow_none: bool) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        raise fail(where, f"expected a non-empty string{' or null' if allow_none else ''}, got {value!r}")
    return value


def scaleout_settings(params: dict, overrides: dict | None = None) -> ScaleoutSettings:
    """The validated ``scaleout:`` section (absent: the defaults), with ``overrides`` (command-line
    flags; None values are ignored) applied on top and validated the same way."""
    section = dict(as_mapping(params.get("scaleout") or {}, "scaleout"))
    known = {f.name for f in fields(ScaleoutSettings)}
    check_known(section, known, "scaleout")
    section.update({k: v for k, v in (overrides or {}).items() if v is not None})
    check_known(section, known, "scaleout")
    out: dict[str, Any] = {}
    for key, value in section.items():
        where = f"scaleout.{key}"
        if key in _STR_OR_NULL:
            out[key] = _str(value, where, allow_none=True)
        elif key in ("git_remote", "log_dir"):
            out[key] = _str(value, where, allow_none=False)
        elif key in _POSITIVE_INT:
            out[key] = as_int(value, where)
        elif key == "gpus_per_task":
            out[key] = as_int(value, where, minimum=0)
        elif key == "mem_gb":
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise fail(where, f"expected a positive number of GB or null, got {value!r}")
            out[key] = value
        elif key == "setup":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(where, f"expected a list of shell lines, got {value!r}")
            out[key] = tuple(value)
        elif key == "keep_failed_clones":
            out[key] = as_bool(value, where)
    return ScaleoutSettings(**out)
