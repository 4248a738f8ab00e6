"""What one array task does, in its own clone of the repository at one commit.

Two kinds of task share the same frame (clone at the commit, point DVC at the shared remote,
run, push, report):

- a *repro task* (the table grid): ``dvc repro --pull train@<run>`` restores or rebuilds the
  upstream stages (from the shared remote when they were pushed there), trains, and
  ``dvc push --run-cache train@<run>`` sends the stage's run-cache entry and its outputs to the
  remote. The submitting workspace fans in with one ``dvc repro --pull``, which restores the
  stage from that entry instead of running it (see ``grid.py``).
- an *experiment task* (the random search): ``dvc exp run -n <name> -S key=value ... <stage>``
  followed by ``dvc exp push <git remote> <name>`` (the experiment's Git ref to the git remote,
  its outputs and run-cache to the DVC remote); the driver collects them with ``dvc exp pull``.

Why a clone per task: concurrent DVC processes in one workspace contend for its locks (DVC's
``rwlock``), and even ``dvc exp run --temp`` does Git operations in the workspace.

``run_task`` never raises: a failure becomes a status record naming the failed step and the
task's log. The record is also written to ``spec.status_path`` (first as ``running``, then as
``ok``/``failed``), so a task killed by Slurm (pre-emption, time limit, node failure) is seen as
``running`` with no end and resubmitted by the driver.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit

from pipeline.fsutil import atomic_write_json

KINDS = ("repro", "exp")
DVC_REMOTE_NAME = "scaleout"  # the name the shared DVC remote gets in each clone's .dvc/config.local


@dataclass(frozen=True)
class TaskSpec:
    """Everything one task needs; plain data, so that submitit can pickle it for the node."""

    kind: str  # repro | exp
    name: str  # the run (repro) or the experiment (exp): unique within one submission
    git_url: str  # the git remote the clone is made from
    commit: str  # the exact commit, pushed to git_url
    dvc_remote: str  # URL of the DVC remote shared by the nodes and the submitting workspace
    targets: tuple[str, ...]  # stage addresses, e.g. ("train@ptb-baseline-40-10",)
    log_path: str  # this task's log (every command and its output), on the shared filesystem
    status_path: str  # this task's status record (JSON), beside the log
    set_params: tuple[str, ...] = ()  # exp: ``-S`` values, "key=value"
    metrics_files: tuple[str, ...] = ()  # JSON files in the clone whose contents the record returns
    workdir: str | None = None  # parent of the clone; None: $SLURM_TMPDIR, $TMPDIR or /tmp
    checkpoint_dir: str | None = None  # shared checkpoints/ (resume after pre-emption); None: the clone's own
    keep_failed_clone: bool = True
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the task's commands

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task kind must be one of {KINDS}, got {self.kind!r}")


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


def task_steps(spec: TaskSpec) -> list[tuple[str, list[str]]]:
    """The DVC commands of a task after the clone is set up, as (step name, argv)."""
    if spec.kind == "repro":
        return [
            ("repro", ["dvc", "repro", "--pull", *spec.targets]),
            ("push", ["dvc", "push", "--run-cache", *spec.targets]),
            # the run-cache entry lists the cache: false outputs too, which dvc push leaves out
            ("push outputs", ["python", "-m", "pipeline.cluster.push_outputs", *spec.targets]),
        ]
    sets = [arg for value in spec.set_params for arg in ("-S", value)]
    return [
        ("exp run", ["dvc", "exp", "run", "--pull", "-n", spec.name, *sets, *spec.targets]),
        # --force: a resubmitted sample (a search resumed in the middle of a round) replaces its earlier attempt
        ("exp push", ["dvc", "exp", "push", "--force", "--run-cache", "origin", spec.name]),
    ]


_RAN = re.compile(r"Running stage '([^']+)'")
_RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")
_UNCHANGED = re.compile(r"Stage '([^']+)' didn't change, skipping")


def stage_outcomes(output: str) -> dict[str, list[str]]:
    """Which stages DVC ran, restored from the run-cache, or found unchanged, from its output."""
    return {"ran": _RAN.findall(output), "restored": _RESTORED.findall(output), "unchanged": _UNCHANGED.findall(output)}


def _clone_parent(spec: TaskSpec) -> Path:
    for candidate in (spec.workdir, os.environ.get("SLURM_TMPDIR"), tempfile.gettempdir()):
        if candidate:
            return Path(candidate)
    return Path("/tmp")


def _task_env(spec: TaskSpec) -> dict[str, str]:
    env = {**os.environ, **spec.env}
    # the task's dvc and the stages' `python` are the interpreter submitit runs the task with
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["GIT_TERMINAL_PROMPT"] = "0"
    for key in [k for k in env if k.startswith("SUBMITIT_")]:
        env.pop(key)  # a stage that imports submitit must not think it is the submitted job
    return env


def _run(step: str, argv: list[str], cwd: Path, env: dict, log) -> str:
    log.write(f"\n$ {' '.join(argv)}    # step: {step}, in {cwd}\n")
    log.flush()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(proc.stdout)
    log.flush()
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
        raise StepFailed(step, f"`{' '.join(argv)}` exited with {proc.returncode}: {tail}")
    return proc.stdout


def _prepare_clone(spec: TaskSpec, clone: Path, env: dict, log) -> None:
    _run("clone", ["git", "clone", "--quiet", "--no-checkout", spec.git_url, str(clone)], clone.parent, env, log)
    _run("checkout", ["git", "checkout", "--quiet", "--detach", spec.commit], clone, env, log)
    if spec.kind == "exp":  # `dvc exp run` commits; nodes often have no git identity
        for key, var in (("user.name", "GIT_AUTHOR_NAME"), ("user.email", "GIT_AUTHOR_EMAIL")):
            have = subprocess.run(["git", "config", key], cwd=clone, env=env, capture_output=True, text=True).stdout
            if not have.strip() and var not in env:
                _run(
                    "git identity",
                    ["git", "config", key, "scrn-scaleout" if key == "user.name" else "scaleout@localhost"],
                    clone,
                    env,
                    log,
                )
    _run(
        "dvc remote",
        ["dvc", "remote", "add", "--local", "--force", "--default", DVC_REMOTE_NAME, spec.dvc_remote],
        clone,
        env,
        log,
    )
    if spec.checkpoint_dir:  # resumable training state survives the clone (pre-emption, requeue)
        shared = Path(spec.checkpoint_dir)
        shared.mkdir(parents=True, exist_ok=True)
        (clone / "checkpoints").symlink_to(shared.resolve(), target_is_directory=True)


def _read_metrics(spec: TaskSpec, clone: Path) -> dict[str, Any]:
    metrics = {}
    for name in spec.metrics_files:
        path = clone / name
        metrics[name] = json.loads(path.read_text()) if path.is_file() else None
    return metrics


def run_task(spec: TaskSpec) -> dict[str, Any]:
    """Run one task to the end and return its status record (also written to ``spec.status_path``).

    Record keys: name, kind, status (ok | failed), commit, log, status_path, host, seconds,
    failed_step and error (failed only), clone (where a failed task's clone was kept),
    stages ({"ran": [...], "restored": [...], "unchanged": [...]}, from DVC's output) and
    metrics ({file: parsed JSON or None}).
    """
    start = time.time()
    log_path, status_path = Path(spec.log_path), Path(spec.status_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "status": "running",
        "commit": spec.commit,
        "targets": list(spec.targets),
        "log": str(log_path),
        "status_path": str(status_path),
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_ARRAY_JOB_ID", "")
        + ("_" + os.environ["SLURM_ARRAY_TASK_ID"] if "SLURM_ARRAY_TASK_ID" in os.environ else ""),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(status_path, record)
    parent = _clone_parent(spec)
    parent.mkdir(parents=True, exist_ok=True)
    clone = parent / f"scrn-{spec.name}-{uuid.uuid4().hex[:8]}"
    env = _task_env(spec)
    output = ""
    with log_path.open("a") as log:
        log.write(
            f"=== {record['started']} {spec.kind} task {spec.name} at {spec.commit} on {record['host']}"
            f"{' (' + record['job_id'] + ')' if record['job_id'] else ''}\n"
        )
        try:
            _prepare_clone(spec, clone, env, log)
            for step, argv in task_steps(spec):
                output += _run(step, argv, clone, env, log)
            record.update(status="ok", metrics=_read_metrics(spec, clone))
        except StepFailed as exc:
            record.update(status="failed", failed_step=exc.step, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a task reports every failure, it never raises
            log.write(traceback.format_exc())
            record.update(status="failed", failed_step="task", error=f"{type(exc).__name__}: {exc}")
        record["stages"] = stage_outcomes(output)
        record["seconds"] = round(time.time() - start, 1)
        if record["status"] == "failed" and spec.keep_failed_clone and clone.exists():
            record["clone"] = str(clone)
        elif clone.exists():
            shutil.rmtree(clone, ignore_errors=True)
        log.write(
            f"=== {spec.name}: {record['status']}"
            f"{' at step ' + record['failed_step'] if record['status'] == 'failed' else ''}"
            f" after {record['seconds']} s\n"
        )
    atomic_write_json(status_path, record)
    return record


class ScaleoutTask(submitit.helpers.Checkpointable):
    """The callable submitit runs on a node. Checkpointable: when Slurm pre-empts the job or it
    reaches its time limit, submitit requeues it with the same spec; the new attempt clones
    afresh and training resumes from the shared checkpoint directory."""

    def __call__(self, spec: TaskSpec) -> dict[str, Any]:
        return run_task(spec)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def spec_as_dict(spec: TaskSpec) -> dict[str, Any]:
    return asdict(spec)
