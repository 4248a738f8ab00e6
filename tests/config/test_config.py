"""params.yaml validation: bad values fail before any work, with an error naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline import config
from tests.stage_cli import run_stage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def params() -> dict:
    return config.load_params(REPO / "params.yaml")


def test_repository_params_are_valid(params):
    config.validate(params)
    cfg = config.run_config(params, "ptb-baseline-300-40")
    assert cfg.training.init_scale == 0.2 and cfg.training.lr == 0.8  # preset + override
    assert config.run_config(params, "ptb-baseline-40-10").training.init_scale == 0.3


@pytest.mark.parametrize(
    "path, value, key, expected",
    [
        (["profile"], "fast", "profile", "expected one of quick, paper"),
        (["data", "on_missing"], "ignore", "data.on_missing", "expected one of error, skip"),
        (
            ["runs", "ptb-baseline-40-10", "training", "lr"],
            -1,
            "runs.ptb-baseline-40-10.training.lr",
            "expected a number",
        ),
        (["runs", "ptb-baseline-40-10", "model", "alpha"], 1.0, "runs.ptb-baseline-40-10.model.alpha", "[0.0, 1.0)"),
        (["runs", "ptb-baseline-40-10", "model", "hidden"], "40", "runs.ptb-baseline-40-10.model.hidden", "integer"),
        (["runs", "ptb-baseline-40-10", "training", "lrr"], 1, "runs.ptb-baseline-40-10.training.lrr", "unknown key"),
        (
            ["runs", "ptb-baseline-40-10", "training", "preset"],
            "nope",
            "runs.ptb-baseline-40-10.training.preset",
            "no preset",
        ),
        (["profiles", "quick", "max_epochs"], 0, "profiles.quick.max_epochs", "integer or null >= 1"),
        # a value from a preset is reported at the preset, not at the run that names it
        (
            ["training_presets", "baseline-ours", "lr_schedule"],
            "cosine",
            "training_presets.baseline-ours.lr_schedule",
            "expected one of plateau, after",
        ),
        (["model_presets", "scrn-small", "alpha"], 1.5, "model_presets.scrn-small.alpha", "[0.0, 1.0)"),
        (["training_presets", "baseline-ours", "lr"], "1e-3", "training_presets.baseline-ours.lr", "write 0.001"),
        (
            ["runs", "ptb-baseline-40-10", "training", "preset"],
            ["baseline-ours"],
            "runs.ptb-baseline-40-10.training.preset",
            "no preset",
        ),
        (["runs", "ptb-baseline-40-10", "seed"], 2**70, "runs.ptb-baseline-40-10.seed", "in [0, 4294967295]"),
        # a token cap below one 20 x 35 window, in the active profile or the other one
        (["profiles", "quick", "max_train_tokens"], 10, "profiles.quick.max_train_tokens", "cannot fill one window"),
        (["profiles", "paper", "max_eval_tokens"], 719, "profiles.paper.max_eval_tokens", "at least 720"),
        (["data", "corpora"], ["ptb"], ".corpus", "wikitext-2 is not in data.corpora (ptb)"),
    ],
)
def test_bad_value_names_the_key(params, path, value, key, expected):
    bad = copy.deepcopy(params)
    node = bad
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(config.ParamsError) as err:
        config.validate(bad)
    assert key in str(err.value) and expected in str(err.value)


def test_after_schedule_requires_decay_after(params):
    bad = copy.deepcopy(params)
    bad["training_presets"]["baseline-ours"]["lr_schedule"] = "after"
    with pytest.raises(config.ParamsError, match="decay_after: required"):
        config.validate(bad)


def test_params_hash_tracks_what_changes_numbers(params):
    base = config.run_config(params, "ptb-baseline-40-10")
    assert base.params_hash == config.run_config(copy.deepcopy(params), "ptb-baseline-40-10").params_hash
    changed = copy.deepcopy(params)
    changed["runs"]["ptb-baseline-40-10"]["training"]["seed"] = 2
    assert config.run_config(changed, "ptb-baseline-40-10").params_hash != base.params_hash
    assert config.run_config(params, "ptb-baseline-40-10", profile="paper").params_hash != base.params_hash


@pytest.mark.parametrize(
    "edit",
    [
        {"alpha": 0.85},
        {"hidden": 250},
        {"context": 30},
        {"tie": True},
        {"context_in_softmax": False},
        {"dropout": {"regime": "variational", "p_i": 0.15, "p_h": 0.2, "p_o": 0.15}},
        {"dropout": {"regime": "variational", "p_i": 0.15, "p_h": 0.15, "p_o": 0.15, "vd_h_mask": "independent"}},
        {"sobolev": {"beta": 0.1}},
    ],
)
def test_params_hash_changes_with_every_model_setting(params, edit):
    """Checkpoints live under <run>-<params_hash>/: a model edited after a kill must not resume
    the old model's checkpoint."""
    base = config.run_config(params, "ptb-small-scrn-vd")
    edited = copy.deepcopy(params)
    edited["runs"]["ptb-small-scrn-vd"]["model"].update(edit)
    assert config.run_config(edited, "ptb-small-scrn-vd").params_hash != base.params_hash


def test_profile_caps_epochs(params):
    quick = config.run_config(params, "ptb-baseline-40-10", profile="quick")
    paper = config.run_config(params, "ptb-baseline-40-10", profile="paper")
    assert quick.epochs == params["profiles"]["quick"]["max_epochs"] and quick.budget.is_reduced
    assert paper.epochs == 120 and not paper.budget.is_reduced


def test_stage_reports_bad_params_without_traceback(params, tmp_path):
    bad = copy.deepcopy(params)
    bad["runs"]["ptb-baseline-40-10"]["training"]["batch_size"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = run_stage("train", "--run", "ptb-baseline-40-10", "--params", tmp_path / "params.yaml", timeout=120)
    assert proc.returncode == 1
    assert "runs.ptb-baseline-40-10.training.batch_size" in proc.stderr and "Traceback" not in proc.stderr


STAGE_MODULES = sorted(p.stem for p in (REPO / "stages").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("stage", STAGE_MODULES)
def test_every_stage_documents_itself(stage):
    proc = run_stage(stage, "--help", timeout=120)
    assert proc.returncode == 0 and f"python -m stages.{stage}" in proc.stdout


@pytest.mark.parametrize(
    "model, key, expected",
    [
        (
            {"preset": "scrn-small", "dropout": {"regime": "naive", "p_h": 0.2}},
            "model.dropout.p_h",
            "never drops the recurrence",
        ),
        (
            {"preset": "scrn-small", "dropout": {"p_i": 0.2}},
            "model.dropout.regime",
            "is none but dropout rates are set",
        ),
        (
            {"preset": "scrn-small", "dropout": {"regime": "variational", "vd_h_mask": "loose"}},
            "model.dropout.vd_h_mask",
            "tied, independent",
        ),
        ({"preset": "scrn-small", "sobolev": {"beta": 0.1, "layers": [3]}}, "model.sobolev.layers", "has 2 layer(s)"),
        ({"preset": "lstm-small", "context": 10}, "model.arch", "no context state"),
        ({"preset": "lstm-small", "sobolev": {"beta": 0.1}}, "model.sobolev", "SCRN layers only"),
        (
            {"arch": "scrn-baseline", "hidden": 40, "context": 10, "alpha": 0.95, "tie": True},
            "model.arch",
            "unregularised",
        ),
        ({"preset": "scrn-huge"}, "model.preset", "no preset 'scrn-huge'"),
        (
            {"preset": "scrn-small", "recurrence_impl": "cudnn"},
            "model.recurrence_impl",
            "auto, loop, scan, tanh-rnn, triton",
        ),
        ({"preset": "lstm-small", "recurrence_impl": "loop"}, "model.recurrence_impl", "SCRN only"),
        (
            {
                "preset": "scrn-small",
                "recurrence_impl": "scan",
                "dropout": {"regime": "variational", "p_h": 0.2, "vd_mask_scope": "sequence"},
            },
            "model.recurrence_impl",
            "per-sequence h mask",
        ),
    ],
)
def test_bad_model_settings_name_the_key(params, model, key, expected):
    bad = copy.deepcopy(params)
    bad["runs"]["ptb-small-scrn-nd"]["model"] = model
    with pytest.raises(config.ParamsError) as err:
        config.run_config(bad, "ptb-small-scrn-nd")
    assert f"runs.ptb-small-scrn-nd.{key}" in str(err.value) and expected in str(err.value)


def test_presets_merge_with_overrides(params):
    cfg = config.run_config(params, "ptb-medium-scrn-vd-wt")
    assert (cfg.model.arch, cfg.model.hidden, cfg.model.context, cfg.model.alpha, cfg.model.tie) == (
        "scrn",
        750,
        120,
        0.9,
        True,
    )
    assert cfg.model.dropout == config.DropoutConfig(regime="variational", p_i=0.4, p_h=0.4, p_o=0.4)
    assert (cfg.training.lr, cfg.training.lr_decay, cfg.training.lr_schedule, cfg.training.decay_after) == (
        0.6,
        0.9,
        "after",
        25,
    )


# ---------------------------------------------------------------------------- seeds, Table 7, Section 7


def _without(cfg: config.RunConfig, *paths: tuple[str, ...]) -> dict:
    """The run's resolved configuration without its name and the fields at ``paths``."""
    d = cfg.to_dict()
    d.pop("name")
    for path in paths:
        node = d
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1])
    return d


def test_seed_groups_repeat_a_run_with_only_the_seed_changed(params):
    groups = config.seed_groups(params)
    assert set(groups) == {
        "ptb-small-scrn-nd-wt",
        "ptb-small-scrn-vd-wt",
        "ptb-small-lstm-nd-kim",
        "ptb-baseline-40-10",
        "ptb-small-lstm-vd-wt-inan",
        "ptb-small-scrn-noreg",
    }
    for base, members in groups.items():
        assert members == [base, f"{base}-seed2", f"{base}-seed3"]
        cfgs = [config.run_config(params, m) for m in members]
        assert [c.training.seed for c in cfgs] == [1, 2, 3]
        assert all(_without(c, ("training", "seed")) == _without(cfgs[0], ("training", "seed")) for c in cfgs)
        assert len({c.params_hash for c in cfgs}) == 3  # distinct results and checkpoints
    # a run-level seed equal to the preset's changes nothing, not even the hash
    same = copy.deepcopy(params)
    same["runs"]["ptb-small-scrn-nd-wt"] = {**same["runs"]["ptb-small-scrn-nd-wt"], "seed": 1}
    assert (
        config.run_config(same, "ptb-small-scrn-nd-wt").params_hash
        == config.run_config(params, "ptb-small-scrn-nd-wt").params_hash
    )


@pytest.mark.parametrize(
    "change, key, expected",
    [
        (lambda r: r.update(seed=3), "runs.ptb-small-scrn-nd-wt-seed2.seed", "expected 2"),
        (lambda r: r["model"].update(tie=False), "runs.ptb-small-scrn-nd-wt-seed2", "more than the seed"),
        (lambda r: r.update(corpus="wikitext-2"), "runs.ptb-small-scrn-nd-wt-seed2", "more than the seed"),
    ],
)
def test_a_seed_run_that_drifts_from_its_base_is_rejected(params, change, key, expected):
    bad = copy.deepcopy(params)
    bad["runs"]["ptb-small-scrn-nd-wt-seed2"] = copy.deepcopy(bad["runs"]["ptb-small-scrn-nd-wt-seed2"])
    change(bad["runs"]["ptb-small-scrn-nd-wt-seed2"])
    with pytest.raises(config.ParamsError) as err:
        config.validate(bad)
    assert key in str(err.value) and expected in str(err.value)


def test_a_seed_run_without_its_base_is_rejected(params):
    bad = copy.deepcopy(params)
    bad["runs"]["ptb-small-scrn-nd-seed2"] = {**bad["runs"]["ptb-small-scrn-nd-wt"], "seed": 2}
    del bad["runs"]["ptb-small-scrn-nd"]
    with pytest.raises(config.ParamsError, match="seed 2 of run 'ptb-small-scrn-nd', which does not exist"):
        config.seed_groups(bad)


def test_table7_runs_change_only_alpha_of_each_corpus_configuration(params):
    from pipeline.report.results import load_paper

    paper = load_paper()
    by_corpus = {c["corpus"]: [] for c in paper["table7"]["columns"]}
    for row in paper["table7"]["rows"]:
        for corpus, cell in row["cells"].items():
            cfg = config.run_config(params, cell["run"])
            assert cfg.corpus == corpus and cfg.model.alpha == pytest.approx(row["alpha"]), cell["run"]
            by_corpus[corpus].append(cfg)
    for corpus, cfgs in by_corpus.items():
        reference = next(c for c in cfgs if c.model.alpha == 0.9)
        # alpha 0.9 is the Table 4 / Table 6 run itself, not a second copy of it
        assert reference.name in {
            cell.get("run") for t in ("table4", "table6") for r in paper[t]["rows"] for cell in r["cells"].values()
        }
        assert all(_without(c, ("model", "alpha")) == _without(reference, ("model", "alpha")) for c in cfgs), corpus
        assert (reference.model.arch, reference.model.hidden, reference.model.tie, reference.model.dropout.regime) == (
            "scrn",
            750,
            True,
            "naive",
        )


def test_sobolev_runs_add_only_the_penalty_to_their_run_without(params):
    from pipeline.report.results import load_paper

    rows = load_paper()["sobolev"]["rows"]
    assert [r["without"] for r in rows] == ["ptb-small-scrn-noreg", "ptb-small-scrn-nd-wt", "ptb-small-scrn-vd-wt"]
    for row in rows:
        without = config.run_config(params, row["without"])
        assert without.model.sobolev.beta == 0
        betas = []
        for run in row["runs"]:
            cfg = config.run_config(params, run)
            assert _without(cfg, ("model", "sobolev")) == _without(without, ("model", "sobolev")), run
            assert cfg.model.sobolev.layers is None  # both layers
            betas.append(cfg.model.sobolev.beta)
        assert betas == [0.0013, 0.0041, 0.013]


def test_beta_grid_spans_one_to_ten_percent_of_the_loss():
    from pipeline.analysis.sobolev_init import beta_grid, round_significant

    grid = beta_grid(7.7149)  # P / L measured for the unregularised small SCRN (reports/sobolev-grid.json)
    assert grid["grid"] == [0.0013, 0.0041, 0.013]
    low, mid, high = grid["beta_exact"]
    assert (
        low * 7.7149 == pytest.approx(0.01)
        and high * 7.7149 == pytest.approx(0.1)
        and mid == pytest.approx((low * high) ** 0.5)
    )
    assert round_significant(0.004098, 2) == 0.0041 and round_significant(123.4, 1) == 100


def test_penalty_at_init_is_measured_with_beta_one_whatever_the_run_sets(params):
    import numpy as np

    from pipeline.analysis.sobolev_init import penalty_and_loss_at_init

    tiny = copy.deepcopy(params)
    tiny["runs"]["t"] = {
        "corpus": "ptb",
        "model": {"arch": "scrn", "layers": 2, "hidden": 8, "context": 4, "alpha": 0.9},
        "training": {"preset": "scrn-nd-small", "batch_size": 2, "bptt": 5},
    }
    tiny["runs"]["t-beta"] = copy.deepcopy(tiny["runs"]["t"])
    tiny["runs"]["t-beta"]["model"]["sobolev"] = {"beta": 0.5}
    ids = np.random.default_rng(0).integers(0, 30, size=200)
    a = penalty_and_loss_at_init(config.run_config(tiny, "t"), ids, 30, windows=3)
    b = penalty_and_loss_at_init(config.run_config(tiny, "t-beta"), ids, 30, windows=3)
    assert a["windows"] == 3 and a["penalty_beta1"] == pytest.approx(b["penalty_beta1"]) and a["penalty_beta1"] > 0
    assert a["ratio"] == pytest.approx(a["penalty_beta1"] / a["loss"])
    # the loss is a window's cross-entropy summed over its 5 steps: about 5 ln 30 at init
    assert 0.5 * 5 * np.log(30) < a["loss"] < 2 * 5 * np.log(30)
