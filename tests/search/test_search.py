"""Section 5's random search: the shrink rule, sampling, the space per regime, settings, the
driver (with an in-memory backend), and one real 2-round search through DVC's queue."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import ParamsError, SearchError
from pipeline.search import core
from pipeline.search.core import Outcome
from pipeline.search.driver import run_search
from tests.dvc_queue import FakeDvc, end_queue_workers, queue_worker_pids
from tests.scratch import commit_all, copy_project, git_env, sh, trim_runs

REPO = Path(__file__).resolve().parents[2]


def params():
    return config.load_params(REPO / "params.yaml")


# ---------------------------------------------------------------------------- the rule


def test_shrink_by_hand():
    original = {"lr": (0.5, 0.99), "p_i": (0.01, 0.6)}
    samples = [
        {"lr": 0.6, "p_i": 0.30},
        {"lr": 0.9, "p_i": 0.05},
        {"lr": 0.7, "p_i": 0.50},
        {"lr": 0.8, "p_i": 0.20},
        {"lr": 0.55, "p_i": 0.40},
        {"lr": 0.95, "p_i": 0.58},
        {"lr": 0.65, "p_i": 0.10},
        {"lr": 0.75, "p_i": 0.35},
    ]
    ppls = [120.0, 90.0, 300.0, 100.0, 110.0, 500.0, 400.0, 350.0]
    # best quarter of 8 = 2 samples: #1 (90) and #3 (100): lr in [0.8, 0.9], p_i in [0.05, 0.2]
    assert core.best_quarter(ppls) == [1, 3]
    new = core.shrink(original, original, samples, ppls)
    # lr: widen by 0.1 * 0.49 = 0.049 each side; p_i: 0.1 * 0.59 = 0.059, clipped below at 0.01
    assert new["lr"] == pytest.approx((0.8 - 0.049, 0.9 + 0.049))
    assert new["p_i"] == pytest.approx((0.01, 0.2 + 0.059))


def test_shrink_widens_by_the_original_width_not_the_current_one():
    original = {"lr": (0.5, 0.99)}
    current = {"lr": (0.7, 0.72)}  # already narrow: the pad stays 10% of 0.49
    new = core.shrink(original, current, [{"lr": 0.71}], [100.0])
    assert new["lr"] == pytest.approx((0.71 - 0.049, 0.71 + 0.049))


def test_shrink_clips_to_the_original_range():
    original = {"init_scale": (0.05, 0.3)}
    new = core.shrink(original, original, [{"init_scale": 0.29}, {"init_scale": 0.06}], [1.0, 2.0])
    assert new["init_scale"] == pytest.approx((0.29 - 0.025, 0.3))


def test_infinity_and_nan_never_count_among_the_best():
    ppls = [math.inf, float("nan"), 200.0, 150.0]
    assert core.best_quarter(ppls) == [3]
    samples = [{"lr": 0.98}, {"lr": 0.97}, {"lr": 0.6}, {"lr": 0.7}]
    assert core.shrink({"lr": (0.5, 0.99)}, {"lr": (0.5, 0.99)}, samples, ppls)["lr"] == pytest.approx((0.651, 0.749))
    # a round where everything diverged keeps its ranges
    assert core.best_quarter([math.inf] * 4) == []
    assert core.shrink({"lr": (0.5, 0.99)}, {"lr": (0.6, 0.7)}, samples, [math.inf] * 4) == {"lr": (0.6, 0.7)}
    # fewer finite samples than a quarter: those that finished
    assert core.best_quarter([math.inf] * 7 + [5.0]) == [7]
    assert core.best_quarter([3.0, 1.0, 2.0, 4.0, 5.0]) == [1, 2]  # ceil(5/4) = 2


def test_space_per_regime_has_p_h_under_variational_dropout_only():
    assert list(core.search_space("variational")) == ["p_i", "p_h", "p_o", "lr", "lr_decay", "init_scale"]
    assert list(core.search_space("naive")) == ["p_i", "p_o", "lr", "lr_decay", "init_scale"]
    assert list(core.search_space("none")) == ["lr", "lr_decay", "init_scale"]
    space = core.search_space("variational")
    assert space["p_h"] == (0.01, 0.6) and space["lr"] == (0.5, 0.99)
    assert space["lr_decay"] == (0.5, 0.89) and space["init_scale"] == (0.05, 0.3)
    assert core.param_path("ptb-small-scrn-nd", "p_o") == "runs.ptb-small-scrn-nd.model.dropout.p_o"
    assert core.param_path("ptb-small-scrn-nd", "lr_decay") == "runs.ptb-small-scrn-nd.training.lr_decay"


def test_sampling_is_seeded_and_within_the_ranges():
    ranges = {"lr": (0.7, 0.75), "p_i": (0.01, 0.6)}
    draws = core.sample_round(ranges, 200, seed=3, round_no=2)
    assert all(0.7 <= d["lr"] <= 0.75 and 0.01 <= d["p_i"] <= 0.6 for d in draws)
    assert draws == core.sample_round(ranges, 200, seed=3, round_no=2)
    assert draws != core.sample_round(ranges, 200, seed=3, round_no=1)
    assert max(d["lr"] for d in draws) - min(d["lr"] for d in draws) > 0.04  # covers the range


def test_every_sample_is_a_valid_run_of_the_base_configuration():
    p = params()
    for regime_run in ("ptb-small-scrn-nd", "ptb-small-scrn-vd"):
        space = core.search_space(config.run_config(p, regime_run).model.dropout.regime)
        for draw in core.sample_round(space, 20, seed=1, round_no=1):
            overrides = {core.param_path(regime_run, k): core.format_value(v) for k, v in draw.items()}
            cfg = config.run_config(core.with_overrides(p, overrides), regime_run)
            assert cfg.training.lr == draw["lr"] and cfg.model.dropout.p_i == draw["p_i"]


def test_settings_errors_name_the_key():
    p = params()
    assert core.search_settings(p).base_run == "ptb-small-scrn-vd"
    with pytest.raises(ParamsError, match=r"search\.rounds \(--rounds\): expected an integer >= 1, got 0"):
        core.search_settings(p, {"rounds": 0})
    with pytest.raises(ParamsError, match=r"search\.base_run \(--base-run\): no such run 'nope'"):
        core.search_settings(p, {"base_run": "nope"})
    with pytest.raises(ParamsError, match=r"search\.name \(--name\)"):
        core.search_settings(p, {"name": "bad name"})
    with pytest.raises(ParamsError, match=r"search\.backend: expected one of local"):
        core.search_settings({**p, "search": {**p["search"], "backend": "slurm"}})
    with pytest.raises(ParamsError, match=r"search\.sample: unknown key"):
        core.search_settings({**p, "search": {**p["search"], "sample": 3}})
    with pytest.raises(ParamsError, match="--sample-set"):
        core.parse_forced("0:1:a=b")


def test_failure_log_is_diverged_or_failed():
    diverged = core.failure_outcome(
        "> python -m stages.train --run x\nerror: x: non-finite loss (nan) at epoch 1, step 2/2\n"
        "ERROR: failed to reproduce 'train@x': failed to run"
    )
    assert diverged.status == "diverged" and math.isinf(diverged.valid_ppl) and "non-finite loss" in diverged.message
    failed = core.failure_outcome("error: data/prepared/ptb: No such file\nERROR: failed to reproduce 'train@x'")
    assert failed.status == "failed" and math.isinf(failed.valid_ppl)
    assert Outcome.from_metrics({"status": "ok", "best_valid_ppl": 123.0, "test_ppl": 120.0}).valid_ppl == 123.0
    assert Outcome.from_metrics({"status": "data_missing", "reason": "no PTB"}).status == "failed"


def test_array_task_record_becomes_an_outcome(tmp_path):
    """The slurm/debug backends' mapping of an experiment task's status record (never raises)."""
    from pipeline.search.backends import record_outcome

    metrics = "results/quick/r/metrics.json"
    ok = {"status": "ok", "metrics": {metrics: {"status": "ok", "best_valid_ppl": 141.5, "test_ppl": 133.0}}}
    assert record_outcome(ok, metrics) == Outcome(141.5, "ok", test_ppl=133.0)
    diverged_log = tmp_path / "d.log"
    diverged_log.write_text(
        "=== r1-3 exp task\n$ dvc exp run --pull -n s-r1-3 -S ++runs.r.training.lr=100 train@r\n"
        "error: r: non-finite loss (nan) at epoch 1, step 2/2\n"
        "ERROR: failed to reproduce 'train@r': failed to run\n=== s-r1-3: failed at step exp run\n"
    )
    diverged = record_outcome(
        {
            "status": "failed",
            "failed_step": "exp run",
            "log": str(diverged_log),
            "error": "`dvc exp run ...` exited with 1",
        },
        metrics,
    )
    assert diverged.status == "diverged" and diverged.valid_ppl == math.inf
    assert diverged.message.startswith("error: r: non-finite loss") and str(diverged_log) in diverged.message
    other_log = tmp_path / "f.log"
    other_log.write_text("$ git clone ...\nfatal: repository '/nowhere' does not exist\n")
    failed = record_outcome(
        {
            "status": "failed",
            "failed_step": "clone",
            "log": str(other_log),
            "error": "`git clone` exited with 128: fatal: repository '/nowhere' does not exist",
        },
        metrics,
    )
    assert failed.status == "failed" and failed.valid_ppl == math.inf and "step clone" in failed.message
    # a Slurm-level failure whose log was never written, and a missing record
    killed = record_outcome(
        {
            "status": "failed",
            "failed_step": "job",
            "log": str(tmp_path / "none.log"),
            "error": "UncompletedJobError: job 42_3 timed out",
        },
        metrics,
    )
    assert killed.status == "failed" and "timed out" in killed.message
    assert record_outcome(None, metrics).status == "failed"
    assert record_outcome({"status": "ok", "metrics": {metrics: None}}, metrics).status == "failed"


def test_search_backends_include_the_arrays():
    from pipeline.cluster.config import ScaleoutSettings
    from pipeline.search.backends import BACKENDS, make_backend

    assert {"local", "slurm", "debug"} <= set(BACKENDS)
    backend = make_backend(
        "slurm",
        REPO,
        jobs=7,
        timeout_s=None,
        log=lambda _: None,
        scaleout=ScaleoutSettings(partition="gpu", array_parallelism=16),
    )
    assert backend.name == "slurm" and backend.settings.array_parallelism == 7 and backend.settings.partition == "gpu"
    assert make_backend("debug", REPO, jobs=1, timeout_s=None, log=lambda _: None).settings.git_remote == "origin"


# ---------------------------------------------------------------------------- the driver


class FakeBackend:
    """PPL = a function of the sampled lr; sample names listed in ``diverge`` diverge."""

    name = "fake"

    def __init__(self, diverge=()):
        self.diverge = set(diverge)
        self.rounds = []
        self.closed = False

    def execute_round(self, samples):
        self.rounds.append(samples)
        out = {}
        for s in samples:
            lr = float(next(v for k, v in s.params.items() if k.endswith("training.lr")))
            out[s.name] = (
                Outcome(math.inf, "diverged", message="non-finite loss")
                if s.name in self.diverge
                else Outcome(100 + 1000 * abs(lr - 0.7), "ok", test_ppl=99.0)
            )
        return out

    def close(self):
        self.closed = True


def search(out_dir, settings, backend, **kwargs):
    """``run_search`` on the repository's params, quietly, into ``<out_dir>/<settings name>.json``."""
    p = params()
    return run_search(
        p,
        core.search_settings(p, settings),
        backend,
        out_dir / f"{settings['name']}.json",
        log=lambda _: None,
        **kwargs,
    )


LR = "runs.ptb-small-scrn-vd.training.lr"


def test_driver_records_rounds_shrinks_and_resumes(tmp_path):
    two_rounds = {"name": "t", "rounds": 2, "samples": 8, "seed": 5}
    one_epoch_lr_forced = {"sets": {"profiles.quick.max_epochs": "1"}, "forced": {(1, 2): {LR: "99"}}}
    backend = FakeBackend(diverge={"t-r1-2"})
    results = search(tmp_path, two_rounds, backend, **one_epoch_lr_forced)
    assert backend.closed and [len(r) for r in backend.rounds] == [8, 8]
    first = backend.rounds[0][1]
    assert first.stage == "train@ptb-small-scrn-vd" and first.metrics == "results/quick/ptb-small-scrn-vd/metrics.json"
    assert first.params[LR] == "99" and first.params["profiles.quick.max_epochs"] == "1"
    assert "runs.ptb-small-scrn-vd.model.dropout.p_h" in first.params  # variational: p_h is searched
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved == json.loads(json.dumps(results))
    r1, r2 = saved["rounds"]
    space = core.search_space("variational")
    assert r1["ranges"] == {k: list(v) for k, v in space.items()}
    assert r1["samples"][1]["valid_ppl"] == math.inf and r1["samples"][1]["status"] == "diverged"
    assert r1["samples"][1]["forced"] == {LR: "99"}
    expected = core.shrink(space, space, [s["params"] for s in r1["samples"]], [s["valid_ppl"] for s in r1["samples"]])
    assert r2["ranges"] == r1["next_ranges"] == core.ranges_to_json(expected)
    assert saved["best"]["valid_ppl"] == min(s["valid_ppl"] for r in (r1, r2) for s in r["samples"])

    # the same settings with more rounds resume after round 2, with the same draws as before
    three_rounds = {**two_rounds, "rounds": 3}
    resumed = FakeBackend()
    again = search(tmp_path, three_rounds, resumed, **one_epoch_lr_forced)
    assert len(resumed.rounds) == 1 and resumed.rounds[0][0].name == "t-r3-1" and len(again["rounds"]) == 3
    uninterrupted = FakeBackend(diverge={"t-r1-2"})
    search(tmp_path / "fresh", three_rounds, uninterrupted, **one_epoch_lr_forced)
    assert uninterrupted.rounds[2] == resumed.rounds[0]  # a resumed search draws what it would have drawn
    # other settings under the same name are refused, naming what differs
    with pytest.raises(SearchError, match="seed"):
        search(tmp_path, {**three_rounds, "seed": 6}, FakeBackend(), sets={"profiles.quick.max_epochs": "1"})


def test_driver_stops_when_every_sample_fails_for_another_reason(tmp_path):
    class Broken(FakeBackend):
        def execute_round(self, samples):
            return {s.name: Outcome(math.inf, "failed", message="error: no data") for s in samples}

    backend = Broken()
    with pytest.raises(SearchError, match="every sample of round 1 failed"):
        search(tmp_path, {"name": "b", "rounds": 2, "samples": 4}, backend)
    assert backend.closed and len(json.loads((tmp_path / "b.json").read_text())["rounds"]) == 1


def test_a_set_on_a_searched_parameter_is_refused(tmp_path):
    backend = FakeBackend()
    with pytest.raises(SearchError, match=r"--set runs\.ptb-small-scrn-vd\.training\.lr: lr is searched"):
        search(tmp_path, {"name": "t", "rounds": 1, "samples": 4}, backend, sets={LR: "0.8"})
    assert backend.rounds == []


def test_a_sample_whose_searched_value_was_forced_never_shapes_the_ranges(tmp_path):
    forced = {(1, 1): {LR: "0.7"}}  # the fake backend's best lr: PPL 100
    results = search(tmp_path, {"name": "f", "rounds": 1, "samples": 8, "seed": 5}, FakeBackend(), forced=forced)
    (r1,) = results["rounds"]
    assert r1["samples"][0]["valid_ppl"] == 100.0  # recorded as trained, beside its override
    draws, ppls = [s["params"] for s in r1["samples"]], [s["valid_ppl"] for s in r1["samples"]]
    space = core.search_space("variational")
    assert r1["next_ranges"] == core.ranges_to_json(core.shrink(space, space, draws, [math.inf] + ppls[1:]))
    assert r1["next_ranges"] != core.ranges_to_json(core.shrink(space, space, draws, ppls))


def test_an_invalid_sample_is_refused_before_anything_runs(tmp_path):
    backend = FakeBackend()
    with pytest.raises(SearchError, match=r"t-r1-1: .*training\.lr"):
        search(tmp_path, {"name": "t", "rounds": 1, "samples": 4}, backend, forced={(1, 1): {LR: "-1"}})
    assert backend.rounds == []


def test_local_backend_reads_queue_status_and_experiments(tmp_path):
    """The parsing of `dvc queue status` and `dvc exp show --json` (dvc 3.67's layouts)."""
    from pipeline.search.backends import LocalQueueBackend

    log = tmp_path / "x.out"
    log.write_text(
        "error: r: diverged: training perplexity exp(1e27) overflows at epoch 1\n"
        "ERROR: failed to reproduce 'train@r': failed to run\n"
    )
    metrics = "results/quick/r/metrics.json"
    shown = [
        {"rev": "workspace", "experiments": None},
        {
            "rev": "abc",
            "experiments": [
                {
                    "name": "s-r1-1",
                    "executor": {"state": "success", "local": {"log": None}},
                    "revs": [
                        {
                            "name": "s-r1-1",
                            "data": {
                                "metrics": {
                                    metrics: {"data": {"status": "ok", "best_valid_ppl": 140.5, "test_ppl": 130.25}}
                                }
                            },
                            "error": None,
                        }
                    ],
                },
                {
                    "name": "s-r1-2",
                    "executor": {"state": "failed", "local": {"log": str(log)}},
                    "revs": [{"name": "s-r1-2", "data": {"metrics": {}}, "error": {"msg": "Experiment run failed"}}],
                },
            ],
        },
    ]
    status = (
        "Task     Name    Created    Status\nf1e2d3c  s-r1-2  10:25 AM   Failed\nd7a1b2c  s-r1-1  10:25 AM   Success\n"
        "c9f0e1d  s-r1-2  10:26 AM   Running\n\nWorker status: 1 active, 0 idle\n"
    )
    answers = {
        args: subprocess.CompletedProcess(args, 0, out, "")
        for args, out in ((("exp", "show", "--json"), json.dumps(shown)), (("queue", "status"), status))
    }
    backend = LocalQueueBackend(tmp_path, jobs=2, log=lambda _: None, dvc="dvc")
    backend.queue.dvc = FakeDvc(tmp_path, answers)
    assert backend.queue.states() == {"s-r1-1": "Success", "s-r1-2": "Running"}  # the newest task of a name
    samples = [core.Sample(f"s-r1-{i}", "train@r", {}, metrics) for i in (1, 2, 3)]
    out = backend.outcomes(samples)
    assert out["s-r1-1"] == Outcome(140.5, "ok", test_ppl=130.25)
    assert out["s-r1-2"].status == "diverged" and out["s-r1-2"].valid_ppl == math.inf
    assert out["s-r1-2"].message.startswith("error: r: diverged")
    assert out["s-r1-3"].status == "failed" and out["s-r1-3"].valid_ppl == math.inf


# ---------------------------------------------------------------------------- through DVC's queue

BASE = "ptb-small-scrn-vd"
# one epoch of two 20 x 35 windows, one window of valid and of test, a 32/8 model: the queue, not the numbers
TINY = [
    "--set",
    "profiles.quick.max_epochs=1",
    "--set",
    "profiles.quick.max_train_tokens=1440",
    "--set",
    "profiles.quick.max_eval_tokens=720",
    "--set",
    f"runs.{BASE}.model.hidden=32",
    "--set",
    f"runs.{BASE}.model.context=8",
]
# lr 100 with init scale 10 and no clipping overflows the loss in the first epoch (TrainingDiverged)
DIVERGE = [f"--sample-set=1:3:runs.{BASE}.training.{k}" for k in ("lr=100", "init_scale=10", "clip_norm=1000000000")]


@pytest.mark.dvc
def test_two_round_search_through_the_dvc_queue(tmp_path, mirror):
    scratch_clone = copy_project(tmp_path / "clone")
    trim_runs(scratch_clone, (BASE,))
    commit_all(scratch_clone)
    env = {k: v for k, v in git_env().items() if not k.startswith("DVC_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # dvc and the stages run with this python
    env.update(SCRN_DATA_MIRROR=str(mirror), SCRN_OFFLINE="1")
    # PTB into the clone's DVC cache once; the queued experiments check it out from there
    sh(["dvc", "repro", "prepare@ptb"], scratch_clone, env, timeout=600)
    subprocess.run(
        ["git", "commit", "-qam", "PTB prepared"], cwd=scratch_clone, env=env, timeout=60
    )  # dvc.lock, if changed
    start = time.monotonic()
    try:
        proc = sh(
            [
                sys.executable,
                "-m",
                "stages.search",
                "--name",
                "t",
                "--base-run",
                BASE,
                "--rounds",
                "2",
                "--samples",
                "4",
                "--jobs",
                "2",
                "--seed",
                "7",
                "--timeout-s",
                "600",
                *TINY,
                *DIVERGE,
            ],
            scratch_clone,
            env,
            timeout=900,
        )
        assert queue_worker_pids(scratch_clone) == []  # the search stopped the workers it started
    finally:
        end_queue_workers(scratch_clone)
    elapsed = time.monotonic() - start
    results = json.loads((scratch_clone / "results" / "search" / "t.json").read_text())
    rounds = results["rounds"]
    samples = [s for r in rounds for s in r["samples"]]
    assert len(rounds) == 2 and len(samples) == 8, proc.stdout
    assert [s["name"] for s in samples] == [f"t-r{r}-{i}" for r in (1, 2) for i in range(1, 5)]
    diverged = [s for s in samples if s["valid_ppl"] == math.inf]
    assert [s["name"] for s in diverged] == ["t-r1-3"] and diverged[0]["status"] == "diverged", samples
    assert all(s["status"] == "ok" and math.isfinite(s["valid_ppl"]) for s in samples if s is not diverged[0])
    # round 2's ranges are the rule applied to round 1
    original = core.search_space("variational")
    assert rounds[0]["ranges"] == core.ranges_to_json(original)
    r1 = rounds[0]["samples"]
    expected = core.shrink(original, original, [s["params"] for s in r1], [s["valid_ppl"] for s in r1])
    assert rounds[1]["ranges"] == core.ranges_to_json(expected)
    best = min(r1, key=lambda s: s["valid_ppl"])  # 4 samples: the best quarter is the best one
    for name, (a, b) in original.items():
        pad = 0.1 * (b - a)
        assert rounds[1]["ranges"][name] == pytest.approx(
            [max(a, best["params"][name] - pad), min(b, best["params"][name] + pad)]
        )
    # round 2 drew inside the shrunk ranges
    for s in rounds[1]["samples"]:
        assert all(lo <= s["params"][k] <= hi for k, (lo, hi) in rounds[1]["ranges"].items())
    # each sample is a DVC experiment with its sampled values
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], scratch_clone, env).stdout)
    exps = {rev["name"]: rev for b in shown for e in (b.get("experiments") or []) for rev in e["revs"]}
    lr = exps["t-r2-1"]["data"]["params"]["params.yaml"]["data"]["runs"][BASE]["training"]["lr"]
    assert lr == rounds[1]["samples"][0]["params"]["lr"]
    # the report renders the search
    sh([sys.executable, "-m", "stages.report"], scratch_clone, env)
    report = (scratch_clone / "reports" / "tables.md").read_text()
    section = report.split("## Section 5: the random search")[1].split("\n## ")[0]
    assert "t-r1-3" not in section.split("### ")[0] and "| 1 " in section and "| 2 " in section
    print(f"search of 2 x 4 samples through the queue: {elapsed:.0f}s")


def test_report_renders_a_search_when_present(tmp_path):
    from pipeline.report.render import render_report

    p = params()
    cfgs = {name: config.run_config(p, name) for name in config.run_names(p)}
    results = tmp_path / "results"
    empty = render_report(results, "quick", cfgs, stats_dir=tmp_path / "stats")
    assert "No random search has been run yet" in empty.split("## Section 5: the random search")[1]
    search(results / "search", {"name": "t", "rounds": 2, "samples": 4, "seed": 5}, FakeBackend(diverge={"t-r1-2"}))
    (results / "search" / "broken.json").write_text("{")
    section = (
        render_report(results, "quick", cfgs, stats_dir=tmp_path / "stats")
        .split("## Section 5: the random search")[1]
        .split("\n## ")[0]
    )
    table = [line for line in section.split("### t")[1].splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table]
    assert cells[0] == [
        "round",
        "samples",
        "diverged / failed (∞)",
        "best valid PPL",
        "best sample",
        "p_i",
        "p_h",
        "p_o",
        "lr",
        "lr_decay",
        "init_scale",
    ]
    assert cells[2][:3] == ["1", "4", "1"] and cells[2][5] == "[0.01, 0.6]" and cells[3][0] == "2"
    assert "`results/search/broken.json`: unreadable" in section and "Best configuration: `t-r" in section
    assert "No random search has been run yet" not in section


# ---------------------------------------------------------------------------- as one array per round (debug)


@pytest.mark.dvc
def test_search_rounds_as_arrays_with_the_debug_backend(cluster):
    """The slurm backend's whole loop without a cluster: each round one array of experiment tasks
    (clone of the pushed commit, `dvc exp run -S ++...`, `dvc exp push`), run in-process by
    submitit's debug executor; then `dvc exp pull` into the workspace."""
    main, env = cluster["main"], cluster["env"]
    cmd = [
        sys.executable,
        "-m",
        "stages.search",
        "--backend",
        "debug",
        "--name",
        "t",
        "--base-run",
        BASE,
        "--rounds",
        "1",
        "--samples",
        "3",
        "--seed",
        "7",
        "--workdir",
        str(cluster["clones"]),
        *TINY,
        *[f.replace("=1:3:", "=1:2:") for f in DIVERGE],
    ]
    # the preflight's errors are one clear line, no traceback
    bad = subprocess.run(
        [*cmd, "--git-remote", "nowhere"], cwd=main, env=env, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: no git remote 'nowhere'"), bad.stderr
    assert "Traceback" not in bad.stderr

    start = time.monotonic()
    proc = sh(cmd, main, env, timeout=900)
    elapsed = time.monotonic() - start
    results = json.loads((main / "results" / "search" / "t.json").read_text())
    assert results["backend"] == "debug" and len(results["rounds"]) == 1
    samples = results["rounds"][0]["samples"]
    assert [s["name"] for s in samples] == ["t-r1-1", "t-r1-2", "t-r1-3"], proc.stdout
    assert samples[1]["status"] == "diverged" and samples[1]["valid_ppl"] == math.inf, samples[1]
    assert "non-finite" in samples[1]["message"] or "diverged" in samples[1]["message"]
    for s in (samples[0], samples[2]):
        assert s["status"] == "ok" and math.isfinite(s["valid_ppl"]) and s["test_ppl"], s
    # each task ran exactly the search's -S arguments (force-add) in its own clone
    log = next((main / "logs" / "scaleout").glob("*/exp/t-r1/t-r1-1.log")).read_text()
    assert f"-S ++runs.{BASE}.training.lr=" in log and f"-S ++runs.{BASE}.model.hidden=32" in log
    assert not list(cluster["clones"].glob("scrn-t-r1-1-*"))  # a finished task removes its clone
    # the finished experiments were pushed by the tasks and pulled here, with their sampled values
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], main, env).stdout)
    exps = {rev["name"]: rev for b in shown for e in (b.get("experiments") or []) for rev in e["revs"]}
    assert {"t-r1-1", "t-r1-3"} <= set(exps), sorted(exps)
    lr = exps["t-r1-3"]["data"]["params"]["params.yaml"]["data"]["runs"][BASE]["training"]["lr"]
    assert lr == samples[2]["params"]["lr"]
    # the same command again resumes: the round is done, nothing is submitted
    again = sh(cmd, main, env, timeout=300).stdout
    assert "1 round(s) already in" in again and "as one array" not in again
    print(f"search of 1 x 3 samples as a debug array: {elapsed:.0f}s")
