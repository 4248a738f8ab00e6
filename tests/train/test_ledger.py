"""The reproduction ledger: its order, skip/stale/resume standing, budgets, the LR floor and its
paired check, the deadline pause, and the command end to end on a synthetic corpus."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline import config, ledger
from pipeline.errors import RunInProgress
from pipeline.fsutil import write_missing_marker
from pipeline.train import checkpoint as ckpt
from pipeline.train import loop
from pipeline.train.loop import Numerics, Paused
from tests.stage_cli import flags, run_stage
from tests.train.test_train import params_with, tiny_prepared, train_on_cpu

REPO = Path(__file__).resolve().parents[2]


def repo_params() -> dict:
    return config.load_params(REPO / "params.yaml")


# ---------------------------------------------------------------------------- order and selection


def test_table2_comes_first_in_the_papers_order_then_ptb_small_then_medium_then_wikitext2():
    order = ledger.ordered_runs(repo_params())
    assert order[:4] == ["ptb-baseline-40-10", "ptb-baseline-90-10", "ptb-baseline-100-40", "ptb-baseline-300-40"]
    groups = [ledger.group_of(r) for r in order]
    assert groups == sorted(groups, key=ledger.GROUPS.index)  # each group contiguous, in priority order
    table4_small = ("scrn-nd", "scrn-vd", "scrn-nd-wt", "scrn-vd-wt", "lstm-nd-kim", "lstm-vd-inan", "lstm-vd-wt-inan")
    assert set(order[4:11]) == {f"ptb-small-{model}" for model in table4_small}
    assert (
        order.index("ptb-small-scrn-noreg")
        < order.index("ptb-small-scrn-sob1pct")
        < order.index("ptb-small-scrn-nd-wt-seed2")
        < order.index("ptb-medium-scrn-nd")
        < order.index("wt2-small-scrn-nd")
    )
    assert ledger.group_of("ptb-baseline-40-10-seed2") == "seeds-small"  # a seed repeat is not a Table 2 cell
    assert ledger.group_of("fr-medium-scrn-nd-wt") == "other"
    assert sorted(order) == sorted(config.run_names(repo_params()))  # every run, once


def test_only_takes_runs_and_groups_and_names_what_it_does_not_know():
    params = repo_params()
    assert ledger.select_runs(params, ["table5-small", "ptb-baseline-90-10"]) == [
        "ptb-baseline-90-10",
        "ptb-small-scrn-noreg",
        "ptb-small-scrn-nd-wt-no-ctx-dropout",
        "ptb-small-scrn-nd-wt-no-ctx-softmax",
    ]
    with pytest.raises(ValueError, match="ptb-basline-40-10 is neither a run"):
        ledger.select_runs(params, ["ptb-basline-40-10"])


@pytest.mark.parametrize(
    "text, seconds", [("2h30m", 9000), ("45m", 2700), ("90s", 90), ("1.5h", 5400), ("1h0m5s", 3605)]
)
def test_budgets_parse(text, seconds):
    assert ledger.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "30", "h", "1m2h"])
def test_a_budget_that_is_not_a_duration_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="write it like 2h30m"):
        ledger.parse_duration(text)


# ---------------------------------------------------------------------------- standing


def _ledger_params(lr: float = 0.8) -> dict:
    """One Table 2-named run on a synthetic corpus; the paper profile capped to seconds of CPU."""
    params = params_with({"max_epochs": 2, "max_train_tokens": 1440, "max_eval_tokens": 720}, lr=lr)
    params["profiles"]["paper"] = params["profiles"]["quick"]
    params["runs"] = {"ptb-baseline-8-4": params["runs"]["tiny"]}
    return params


def _standing(params, tmp_path):
    return ledger.standing(params, "ptb-baseline-8-4", tmp_path / "results", tmp_path / "ck", tmp_path / "prepared")


def test_standing_is_done_only_for_a_result_of_the_runs_current_params_hash(tmp_path):
    params = _ledger_params()
    tiny_prepared(tmp_path / "prepared" / "ptb")
    assert _standing(params, tmp_path).status == "todo"
    cfg = config.run_config(params, "ptb-baseline-8-4", "paper")
    out = tmp_path / "results" / "paper" / "ptb-baseline-8-4"
    out.mkdir(parents=True)
    result = {"status": "ok", "profile": "paper", "params_hash": cfg.params_hash, "test_ppl": 12.3, "epochs": 2}
    (out / "metrics.json").write_text(json.dumps(result))
    entry = _standing(params, tmp_path)
    assert entry.status == "done" and "skipped" in entry.detail and cfg.params_hash in entry.detail

    edited = _standing(_ledger_params(lr=0.5), tmp_path)
    assert edited.status == "stale" and cfg.params_hash in edited.detail

    (tmp_path / "ck" / f"ptb-baseline-8-4-{edited.cfg.params_hash}").mkdir(parents=True)
    (tmp_path / "ck" / f"ptb-baseline-8-4-{edited.cfg.params_hash}" / "last.pt").write_bytes(b"x")
    assert _standing(_ledger_params(lr=0.5), tmp_path).status == "resumable"


def test_a_run_trained_by_another_process_is_busy_and_cannot_start_twice(tmp_path):
    params = _ledger_params()
    prepared = tiny_prepared(tmp_path / "prepared" / "ptb")
    cfg = config.run_config(params, "ptb-baseline-8-4", "paper")
    with ckpt.exclusive(ckpt.checkpoint_dir(tmp_path / "ck", cfg)):
        entry = _standing(params, tmp_path)
        assert entry.status == "busy" and f"pid {os.getpid()}" in entry.detail
        with pytest.raises(RunInProgress, match=r"ptb-baseline-8-4-\w+ is being trained by pid \d+ since"):
            train_on_cpu(cfg, prepared, tmp_path / "out", tmp_path / "ck")
    assert _standing(params, tmp_path).status == "todo"  # the lock dies with its holder's hold


def test_a_run_whose_corpus_is_missing_or_unprepared_has_no_data(tmp_path):
    params = _ledger_params()
    assert _standing(params, tmp_path).status == "no-data"
    write_missing_marker(tmp_path / "prepared" / "ptb", "no mirror")
    assert _standing(params, tmp_path).status == "no-data"


def test_a_metrics_file_that_does_not_parse_is_named(tmp_path):
    tiny_prepared(tmp_path / "prepared" / "ptb")
    out = tmp_path / "results" / "paper" / "ptb-baseline-8-4"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text('{"status": "ok", "test')
    with pytest.raises(ValueError, match=r"ptb-baseline-8-4/metrics.json: not readable JSON"):
        _standing(_ledger_params(), tmp_path)


def test_runs_of_one_step_shape_share_a_probe_and_measured_epochs_win(tmp_path, monkeypatch):
    params = repo_params()
    entries = [
        ledger.standing(params, r, tmp_path, tmp_path, REPO / "data" / "prepared")
        for r in ("ptb-small-scrn-nd-wt", "ptb-small-scrn-nd-wt-seed2")
    ]
    entries = [e for e in entries if e.status != "no-data"]
    if not entries:
        entries = [
            ledger.Entry(r, config.run_config(params, r, "paper"), "todo", "")
            for r in ("ptb-small-scrn-nd-wt", "ptb-small-scrn-nd-wt-seed2")
        ]
    probes = []
    monkeypatch.setattr(
        ledger,
        "probe_epoch_seconds",
        lambda cfg, prepared, device, bf16=False: probes.append((cfg.name, bf16)) or 10.0,
    )
    out = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu")
    assert probes == [("ptb-small-scrn-nd-wt", False)] and {p.source for p in out.values()} == {"probe"}
    assert out["ptb-small-scrn-nd-wt-seed2"].full_seconds(entries[1]) == 600.0

    measured = tmp_path / "paper" / "ptb-small-scrn-nd-wt-seed2"
    measured.mkdir(parents=True)
    (measured / "epochs.csv").write_text("epoch,lr,train_ppl,valid_ppl,seconds\n1,0.8,1,1,4.0\n2,0.8,1,1,6.0\n")
    for code in (None, "other code"):  # epochs of other (or unrecorded) training code are stale
        metrics = {"provenance": {"device_name": "this cpu"}, "code_fingerprint": code}
        (measured / "metrics.json").write_text(json.dumps(metrics))
        out = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu")
        assert out["ptb-small-scrn-nd-wt-seed2"].source == "probe"
    metrics["code_fingerprint"] = ckpt.code_fingerprint()
    (measured / "metrics.json").write_text(json.dumps(metrics))
    out = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu")
    assert out["ptb-small-scrn-nd-wt-seed2"] == ledger.Projection(5.0, "measured")
    other_device = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "another cpu")
    assert other_device["ptb-small-scrn-nd-wt-seed2"].source == "probe"

    # a result that recorded where an LR floor stops it projects that many epochs, for that floor only
    metrics |= {"numerics": {"lr_floor": 0.001}, "lr_floor_stop": {"epoch": 3, "best_epoch": 2}}
    (measured / "metrics.json").write_text(json.dumps(metrics))
    seed2 = entries[1]
    for floor, epochs in ((0.001, 3), (0.01, None), (None, None)):
        p = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu", lr_floor=floor)
        assert p["ptb-small-scrn-nd-wt-seed2"].epochs == epochs
        assert p["ptb-small-scrn-nd-wt-seed2"].full_seconds(seed2) == 5.0 * (epochs or seed2.cfg.epochs)
        assert p["ptb-small-scrn-nd-wt"].epochs is None
    # a bf16 plan also reads the floor stop of the run's bf16 paired check
    check = ledger.precision_check_root(tmp_path, "bf16") / "paper" / "ptb-small-scrn-nd-wt"
    check.mkdir(parents=True)
    (check / "metrics.json").write_text(json.dumps({"numerics": {"lr_floor": 0.001}, "lr_floor_stop": {"epoch": 53}}))
    for precision, epochs in (("bf16", 53), ("fp32", None)):
        p = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu", precision, lr_floor=0.001)
        assert p["ptb-small-scrn-nd-wt"].epochs == epochs

    # fp32 epochs say nothing of bf16 ones: a bf16 plan probes, and probes in bf16
    probes.clear()
    bf16 = ledger.project(entries, tmp_path, tmp_path, torch.device("cpu"), "this cpu", "bf16")
    assert bf16["ptb-small-scrn-nd-wt-seed2"] == ledger.Projection(10.0, "probe")
    assert probes == [("ptb-small-scrn-nd-wt", True)]


def test_the_wall_time_probe_trains_in_the_precision_asked_for(tmp_path, monkeypatch):
    """A bf16 plan must time bf16 steps: the probe runs its forward under autocast exactly then."""
    from pipeline.data.batching import make_layout
    from pipeline.data.prepare import load_prepared
    from pipeline.models import build_model

    cfg = config.run_config(params_with({"max_epochs": 1, "max_train_tokens": 1440, "max_eval_tokens": 720}), "tiny")
    prepared = tiny_prepared(tmp_path / "data")
    vocab, arrays = load_prepared(prepared)
    layout = make_layout(arrays["train"], cfg.training.batch_size, cfg.training.bptt, None)
    model = build_model(cfg.model, len(vocab))
    seen = []
    embedding = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding))
    embedding.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    for bf16 in (False, True):
        loop.project_wall_time(model, layout, 1, 1, torch.device("cpu"), 0.1, 5.0, warmup=1, timed=1, bf16=bf16)
    assert seen == [False, False, True, True]


# ---------------------------------------------------------------------------- LR floor and deadline


def _plateau_run(tmp_path, tag, numerics, epochs=8):
    # a plateau threshold no epoch but the first beats: the LR halves after every later epoch
    params = params_with(
        {"max_epochs": epochs, "max_train_tokens": 1440, "max_eval_tokens": 720}, lr=0.8, plateau_threshold=1e5
    )
    cfg = config.run_config(params, "tiny")
    prepared = tmp_path / "data"
    if not prepared.exists():
        tiny_prepared(prepared)
    return train_on_cpu(cfg, prepared, tmp_path / f"out-{tag}", tmp_path / f"ck-{tag}", numerics=numerics)


def test_the_lr_floor_stops_a_run_and_its_check_mode_records_the_same_result(tmp_path, monkeypatch):
    """Check mode trains every epoch but records what the floor's stop would report; on a CPU the
    two are the same computation, so they agree exactly."""
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    full = _plateau_run(tmp_path, "full", Numerics())
    stopped = _plateau_run(tmp_path, "stopped", Numerics(lr_floor=0.05))
    checked = _plateau_run(tmp_path, "checked", Numerics(lr_floor=0.05, check_floor=True))

    stop = stopped["lr_floor_stop"]
    # epoch 1 beats the infinite best, then every epoch halves the LR: after epoch 6 the next LR is
    # 0.8 / 2**5 = 0.025 < 0.05 x 0.8; after epoch 5 it was 0.05, not below
    assert stop == {
        "epoch": 6,
        "next_lr": 0.025,
        "best_epoch": stopped["best_epoch"],
        "best_valid_ppl": stopped["best_valid_ppl"],
    }
    assert stopped["epochs"] == 6 and full["epochs"] == 8 and stopped["final_lr"] == 0.025
    assert checked["epochs"] == 8 and checked["test_ppl"] == full["test_ppl"]
    assert checked["lr_floor_stop"]["test_ppl"] == stopped["test_ppl"]
    assert checked["lr_floor_stop"]["epoch"] == stop["epoch"]
    assert stopped["numerics"] == {"precision": "fp32", "lr_floor": 0.05, "check_floor": False}
    assert full["numerics"]["lr_floor"] is None and full["lr_floor_stop"] is None
    assert not any(p.is_dir() for p in (tmp_path / "ck-stopped").iterdir())  # only the run's lock file is left


def test_numerics_refuse_what_the_trainer_does_not_do():
    with pytest.raises(config.ParamsError, match="precision 'fp16'"):
        Numerics(precision="fp16")
    with pytest.raises(config.ParamsError, match="lr_floor 2"):
        Numerics(lr_floor=2)


def pause_after_epoch_1(monkeypatch, cfg, prepared: Path, out: Path, checkpoints: Path) -> None:
    """Train ``cfg`` (3 epochs) until a deadline pauses it at its checkpoint after epoch 1: from then
    on the clock reads a day later; it reads true again on return."""
    real_time = time.time

    def late_after_epoch_1(line: str):
        if "epoch 1/3" in line:
            monkeypatch.setattr(loop.time, "time", lambda: real_time() + 86400)

    with pytest.raises(Paused, match="paused before epoch 2/3"):
        train_on_cpu(cfg, prepared, out, checkpoints, log=late_after_epoch_1, deadline=real_time() + 3600)
    monkeypatch.setattr(loop.time, "time", real_time)


def test_a_deadline_pauses_at_the_checkpoint_and_the_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    params = params_with({"max_epochs": 3, "max_train_tokens": 1440, "max_eval_tokens": 720})
    cfg = config.run_config(params, "tiny")
    prepared = tiny_prepared(tmp_path / "data")
    straight = train_on_cpu(cfg, prepared, tmp_path / "a", tmp_path / "ck-a")

    pause_after_epoch_1(monkeypatch, cfg, prepared, tmp_path / "b", tmp_path / "ck-b")
    saved = torch.load(ckpt.checkpoint_dir(tmp_path / "ck-b", cfg) / ckpt.CHECKPOINT_NAME, weights_only=False)
    assert saved["run"].epoch == 1 and not (tmp_path / "b" / "metrics.json").exists()

    resumed = train_on_cpu(cfg, prepared, tmp_path / "b", tmp_path / "ck-b", deadline=time.time() + 3600)
    drop = {"wall_time_s", "tokens_per_s", "provenance"}
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in straight.items() if k not in drop}


def test_a_checkpoint_refuses_to_resume_in_another_precision(tmp_path, monkeypatch):
    """Resuming fp32 epochs in bf16 would record a run of mixed numerics as bf16."""
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    cfg = config.run_config(params_with({"max_epochs": 3, "max_train_tokens": 1440, "max_eval_tokens": 720}), "tiny")
    prepared = tiny_prepared(tmp_path / "data")
    pause_after_epoch_1(monkeypatch, cfg, prepared, tmp_path / "b", tmp_path / "ck")
    with pytest.raises(config.ParamsError, match=r"trained in fp32, this run asks for bf16.*--precision fp32"):
        train_on_cpu(cfg, prepared, tmp_path / "b", tmp_path / "ck", numerics=Numerics(precision="bf16"))
    resumed = train_on_cpu(cfg, prepared, tmp_path / "b", tmp_path / "ck")
    assert resumed["epochs"] == 3 and resumed["numerics"]["precision"] == "fp32"


def test_metrics_carry_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    metrics = _plateau_run(tmp_path, "p", Numerics(), epochs=1)
    p = metrics["provenance"]
    assert len(p["git_rev"]) == 40 and isinstance(p["git_dirty"], bool)
    assert p["torch"] == torch.__version__ and p["device"] == "cpu" and "threads" in p["device_name"]
    assert p["wall_time_s"] >= 0 and p["started"] <= p["finished"]


# ---------------------------------------------------------------------------- the command


def _paths(tmp_path) -> list[str]:
    """The ledger's params, results, checkpoints and prepared data, all under ``tmp_path``."""
    return flags(
        params=tmp_path / "params.yaml",
        results=tmp_path / "results",
        checkpoints=tmp_path / "ck",
        prepared=tmp_path / "prepared",
    )


def _ledger(tmp_path, *args) -> subprocess.CompletedProcess:
    return run_stage("ledger", *_paths(tmp_path), "--device", "cpu", "--threads", "1", *args)


def test_the_ledger_trains_then_skips_then_retrains_an_edited_run(tmp_path):
    tiny_prepared(tmp_path / "prepared" / "ptb")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_ledger_params()))

    first = _ledger(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ptb-baseline-8-4: finished" in first.stdout and "1 finished" in first.stdout
    out = tmp_path / "results" / "paper" / "ptb-baseline-8-4"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["provenance"]["threads"] == 1
    assert "== ledger" in (out / "train.log").read_text() and "best valid ppl" in (out / "train.log").read_text()

    second = _ledger(tmp_path)
    assert "ptb-baseline-8-4: result with params hash" in second.stdout and "skipped" in second.stdout
    assert "0 finished" in second.stdout

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_ledger_params(lr=0.5)))
    third = _ledger(tmp_path)
    assert "re-run" in third.stdout and "1 finished" in third.stdout
    assert json.loads((out / "metrics.json").read_text())["params_hash"] != metrics["params_hash"]


def test_a_budget_too_small_for_one_epoch_starts_nothing_and_the_plan_lists_every_run(tmp_path):
    tiny_prepared(tmp_path / "prepared" / "ptb")
    params = _ledger_params()
    params["runs"]["wt2-small-x"] = copy.deepcopy(params["runs"]["ptb-baseline-8-4"]) | {"corpus": "wikitext-2"}
    params["data"]["corpora"] = ["ptb", "wikitext-2"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    none = _ledger(tmp_path, "--budget", "1s", "--only", "table2")
    assert none.returncode == 0 and "not started" in none.stdout and "1 not started" in none.stdout
    assert not (tmp_path / "results" / "paper" / "ptb-baseline-8-4" / "metrics.json").exists()

    plan = _ledger(tmp_path, "--plan")
    assert plan.returncode == 0, plan.stderr
    assert "ptb-baseline-8-4" in plan.stdout and "probe" in plan.stdout
    assert "wt2-small-x" in plan.stdout and "no-data" in plan.stdout
    assert "whole paper on this device: 1 runs with data" in plan.stdout
    assert "Times assume every epoch" in plan.stdout

    floored = _ledger(tmp_path, "--plan", "--lr-floor", "0.001")
    assert "paper, fp32, LR floor 0.001, projected" in floored.stdout
    assert "epochs*: where LR floor 0.001 stopped the run's own result" in floored.stdout


def test_a_run_another_ledger_took_after_this_one_started_is_skipped_not_failed(tmp_path, monkeypatch, capsys):
    """Two ledgers on one machine: each looks again just before it starts a run."""
    from stages import ledger as ledger_stage

    tiny_prepared(tmp_path / "prepared" / "ptb")
    params = _ledger_params()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = config.run_config(params, "ptb-baseline-8-4", "paper")
    started = []
    monkeypatch.setattr(ledger_stage, "start_run", lambda *a, **k: started.append(a) or pytest.fail("started"))
    args = ledger_stage.build_parser().parse_args(_paths(tmp_path))
    entries = [_standing(params, tmp_path)]
    assert entries[0].status == "todo"
    with ckpt.exclusive(ckpt.checkpoint_dir(tmp_path / "ck", cfg)):  # the other ledger's run
        assert ledger_stage.run_ledger(args, entries, torch.device("cpu"), "cpu", 1, None) == 0
    assert not started and "ptb-baseline-8-4: being trained by pid" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_ledger_params()))
    bad = _ledger(tmp_path, "--only", "tabel2")
    assert bad.returncode == 2 and "tabel2 is neither a run" in bad.stderr and "Traceback" not in bad.stderr
    assert "write it like 2h30m" in _ledger(tmp_path, "--budget", "soon").stderr
    assert "give --lr-floor too" in _ledger(tmp_path, "--check-floor").stderr
    assert "give --precision bf16 too" in _ledger(tmp_path, "--check-precision").stderr


def test_a_precision_check_retrains_a_finished_run_beside_its_fp32_result(tmp_path):
    tiny_prepared(tmp_path / "prepared" / "ptb")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_ledger_params()))
    assert _ledger(tmp_path).returncode == 0
    fp32 = tmp_path / "results" / "paper" / "ptb-baseline-8-4" / "metrics.json"
    before = fp32.read_text()

    check = _ledger(tmp_path, "--precision", "bf16", "--check-precision")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 finished" in check.stdout
    checked = json.loads((tmp_path / "results/checks/bf16/paper/ptb-baseline-8-4/metrics.json").read_text())
    assert checked["numerics"]["precision"] == "bf16" and fp32.read_text() == before


def test_the_gpu_script_packs_finished_runs_with_the_given_commit_and_no_weights(tmp_path):
    """scripts/ledger-gpu.sh as a dry run on the CPU: what comes back from a lent GPU."""
    import tarfile

    tiny_prepared(tmp_path / "prepared" / "ptb")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_ledger_params()))
    env = {
        "PATH": "/usr/bin:/bin",
        "SCRN_GIT_REV": "0123456789abcdef0123456789abcdef01234567",
        "DEVICE": "cpu",
        "PYTHON": sys.executable,
        "PARAMS": str(tmp_path / "params.yaml"),
        "PREPARED": str(tmp_path / "prepared"),
        "ONLY": "table2",
        "BUDGET": "10m",
        "PARALLEL": "1",
        "OUT": str(tmp_path / "out"),
    }
    done = subprocess.run(
        ["bash", "scripts/ledger-gpu.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 finished" in (tmp_path / "out" / "ledger.log").read_text()
    with tarfile.open(tmp_path / "out" / "ledger-results.tar.gz") as tar:
        names = tar.getnames()
        metrics = json.load(tar.extractfile("results/paper/ptb-baseline-8-4/metrics.json"))
    assert "results/paper/ptb-baseline-8-4/train.log" in names and not any("/model" in n for n in names)
    assert metrics["git_rev"] == env["SCRN_GIT_REV"] and metrics["provenance"]["git_dirty"] is None

    missing = subprocess.run(
        ["bash", "scripts/ledger-gpu.sh"], cwd=REPO, env={**env, "SCRN_GIT_REV": ""}, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "set SCRN_GIT_REV" in missing.stderr


def test_finish_only_starts_no_run_whose_remaining_epochs_do_not_fit(tmp_path):
    tiny_prepared(tmp_path / "prepared" / "ptb")
    params = _ledger_params()
    params["profiles"]["paper"]["max_epochs"] = 100000  # ~forever at any speed
    params["runs"]["ptb-baseline-8-4"]["training"]["epochs"] = 100000
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = _ledger(tmp_path, "--budget", "3m", "--finish-only")
    assert run.returncode == 0, run.stderr
    assert "not started: its remaining epochs take" in run.stdout
    assert "--budget too" in _ledger(tmp_path, "--finish-only").stderr


def test_bf16_runs_the_training_forward_in_bfloat16_and_evaluates_in_fp32(tmp_path, monkeypatch):
    """The recorded precision is what ran: bf16 matrix products in the training step only."""
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    seen = {"train": set(), "eval": set()}
    real = torch.nn.functional.cross_entropy

    def spy(logits, *args, **kwargs):
        seen["train" if torch.is_grad_enabled() else "eval"].add(logits.dtype)
        return real(logits, *args, **kwargs)

    monkeypatch.setattr("pipeline.train.softmax_loss.F.cross_entropy", spy)
    monkeypatch.setattr("pipeline.train.evaluate.F.cross_entropy", spy)
    bf16 = _plateau_run(tmp_path, "bf16", Numerics(precision="bf16"), epochs=2)
    assert seen == {"train": {torch.bfloat16}, "eval": {torch.float32}}
    fp32 = _plateau_run(tmp_path, "fp32", Numerics(), epochs=2)
    assert bf16["numerics"]["precision"] == "bf16" and bf16["test_ppl"] != fp32["test_ppl"]
    assert abs(bf16["test_ppl"] - fp32["test_ppl"]) < 0.05 * fp32["test_ppl"]


def test_a_finished_figure2_model_leaves_its_figure2_numbers_behind(tmp_path):
    """Figure 2 needs the weights of its two models, which git does not keep: the ledger records
    the figure's numbers as soon as either model finishes."""
    prepared = tiny_prepared(tmp_path / "prepared" / "ptb", vocab_size=300)  # more types than the top 100
    (prepared / "vocab.txt").write_text("<eos>\n" + "".join(f"w{i}\n" for i in range(1, 300)))
    params = _ledger_params()
    params["runs"] = {
        "ptb-small-lstm-nd-kim": {
            "corpus": "ptb",
            "model": {"arch": "lstm", "layers": 2, "hidden": 8},
            "training": {"preset": "baseline-ours"},
        }
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = _ledger(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    record = json.loads((tmp_path / "results" / "paper" / "figure2" / "ptb-small-lstm-nd-kim.json").read_text())
    assert record["model"] == "LSTM + ND" and record["tokens"] == 1500
    metrics = json.loads((tmp_path / "results" / "paper" / "ptb-small-lstm-nd-kim" / "metrics.json").read_text())
    assert record["trained"] == {
        "precision": "fp32",
        "test_ppl": metrics["test_ppl"],
        "git_rev": metrics["git_rev"],
        "device_name": metrics["provenance"]["device_name"],
    }
    assert record["top_tokens"] + record["rest_tokens"] == 1499  # the first token, read from the zero state, left out
    assert record["ratio"] == pytest.approx(record["rest_mean"] / record["top_mean"]) and record["top_mean"] > 0
