"""Faults a long reproduction meets: `dvc repro` killed in the middle of a train stage, two runs
training at once, and the disk filling up while a result is written."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline import config, fsutil
from pipeline.train import checkpoint as ckpt
from tests.scratch import commit_all, copy_project, sh, tool_env, trim_runs
from tests.stage_cli import flags
from tests.train.test_train import params_with, tiny_prepared, train_on_cpu

REPO = Path(__file__).resolve().parents[2]
# what differs between two runs of the same numbers: timings, and the commit they ran at
NOT_NUMBERS = {"wall_time_s", "tokens_per_s", "provenance", "git_rev"}


def numbers(out: Path) -> tuple[dict, list[dict]]:
    """A run's metrics and per-epoch log without the fields that are no numbers of the model."""
    metrics = {k: v for k, v in json.loads((out / "metrics.json").read_text()).items() if k not in NOT_NUMBERS}
    with open(out / "epochs.csv") as f:
        epochs = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return metrics, epochs


# ---------------------------------------------------------------------------- disk full


class DiskFull:
    """A file whose writes stop half-way with ENOSPC, as on a full disk."""

    def __init__(self, f):
        self._f = f

    def write(self, data: bytes) -> int:
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk_on(monkeypatch, name_part: str) -> None:
    """Make every write to a file whose name holds ``name_part`` (the file itself, or fsutil's
    temporary sibling of it) hit a full disk."""
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return DiskFull(f) if name_part in Path(os.readlink(f"/proc/self/fd/{fd}")).name else f

    monkeypatch.setattr(fsutil.os, "fdopen", fdopen)


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")


def test_a_full_disk_during_a_result_write_leaves_the_old_file_and_no_half_written_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    fsutil.atomic_write_json(path, {"status": "ok", "test_ppl": 140.0})
    before = path.read_bytes()
    fill_disk_on(monkeypatch, "metrics.json")
    with pytest.raises(OSError) as err:
        fsutil.atomic_write_json(path, {"status": "ok", "test_ppl": 120.0, "history": list(range(1000))})
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_full_disk_while_a_run_writes_its_results_leaves_none_and_the_run_resumes(tmp_path, monkeypatch):
    cfg = config.run_config(params_with({"max_epochs": 2, "max_train_tokens": None, "max_eval_tokens": None}), "tiny")
    prepared, out, ck = tiny_prepared(tmp_path / "data"), tmp_path / "out", tmp_path / "ck"
    fill_disk_on(monkeypatch, "metrics.json")
    with pytest.raises(OSError, match="No space left on device"):
        train_on_cpu(cfg, prepared, out, ck)
    assert not (out / "metrics.json").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left behind
    assert (ckpt.checkpoint_dir(ck, cfg) / ckpt.CHECKPOINT_NAME).is_file()  # kept until the results are written

    monkeypatch.undo()  # space freed: the same call finishes from the checkpoint
    lines: list[str] = []
    metrics = train_on_cpu(cfg, prepared, out, ck, log=lines.append)
    assert metrics["status"] == "ok" and any("resuming from" in line for line in lines)
    assert json.loads((out / "metrics.json").read_text())["test_ppl"] == metrics["test_ppl"]


# ---------------------------------------------------------------------------- two runs at once


def test_two_runs_training_at_once_clobber_nothing_shared(tmp_path):
    """Different runs share the results and checkpoint roots (and the code, params and data they
    read): run together, each must end exactly as it does alone."""
    params = params_with({"max_epochs": 2, "max_train_tokens": None, "max_eval_tokens": None})
    params["runs"]["tiny-b"] = {**params["runs"]["tiny"], "seed": 7}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    prepared = tiny_prepared(tmp_path / "data")
    shared = flags(
        params=params_path, prepared=prepared, results=tmp_path / "results", checkpoints=tmp_path / "ck", device="cpu"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train", "--run", run, "--no-progress", *shared],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for run in ("tiny", "tiny-b")
    ]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    assert sorted(p.name for p in (tmp_path / "results" / "quick").iterdir()) == ["tiny", "tiny-b"]
    assert not list((tmp_path / "ck").iterdir())  # each removed its own checkpoint, and only its own
    for run in ("tiny", "tiny-b"):
        alone = tmp_path / "alone" / run
        train_on_cpu(config.run_config(params, run), prepared, alone, tmp_path / "ck-alone")
        assert numbers(tmp_path / "results" / "quick" / run) == numbers(alone)
    assert numbers(tmp_path / "alone" / "tiny") != numbers(tmp_path / "alone" / "tiny-b")  # two different runs


# ---------------------------------------------------------------------------- dvc repro killed


RUN = "ptb-baseline-40-10"
# (40, 10) on real PTB, 60 windows an epoch: seconds per epoch on a 2-core CPU, long enough to be
# killed inside epoch 2 once epoch 1's checkpoint appears
KILL_PROFILE = {"max_epochs": 3, "max_train_tokens": 42700, "max_eval_tokens": 7000}


@pytest.mark.dvc
def test_dvc_repro_killed_during_a_train_stage_completes_with_the_same_metrics(mirror, tmp_path):
    clone = copy_project(tmp_path / "clone")
    trim_runs(clone, (RUN,), profile=KILL_PROFILE)
    commit_all(clone)
    env = tool_env(SCRN_DATA_MIRROR=str(mirror), SCRN_OFFLINE="1")
    sh(["dvc", "repro", "prepare@ptb", "run-specs"], clone, env, timeout=3600)

    repro = subprocess.Popen(
        ["dvc", "repro", f"train@{RUN}"],
        cwd=clone,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = clone / "checkpoints"
    while repro.poll() is None and not list(checkpoints.glob(f"{RUN}-*/{ckpt.CHECKPOINT_NAME}")):
        time.sleep(0.02)  # the event: epoch 1's checkpoint is on disk, epoch 2 is training
    assert repro.poll() is None, "dvc repro ended before epoch 1's checkpoint appeared"
    os.killpg(repro.pid, signal.SIGKILL)  # dvc and the stage it runs, as a killed terminal or node would
    repro.wait()
    assert not (clone / "results" / "quick" / RUN / "metrics.json").exists(), (
        "the run finished before it was killed; make its epochs longer"
    )

    again = sh(["dvc", "repro", f"train@{RUN}"], clone, env, timeout=3600)
    assert "resuming from" in again.stdout
    assert not list(checkpoints.glob(f"{RUN}-*"))  # finished: its checkpoint is gone

    params = config.load_params(clone / "params.yaml")
    straight = tmp_path / "straight"
    train_on_cpu(config.run_config(params, RUN), clone / "data" / "prepared" / "ptb", straight, tmp_path / "ck")
    killed_metrics, killed_epochs = numbers(clone / "results" / "quick" / RUN)
    assert (killed_metrics, killed_epochs) == numbers(straight) and len(killed_epochs) == 3
    status = sh(["dvc", "status", f"train@{RUN}"], clone, env).stdout
    assert "changed" not in status  # dvc.lock records the resumed run as complete
