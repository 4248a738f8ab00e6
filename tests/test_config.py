"""params.yaml validation: bad values fail before any work, with an error naming the key."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config

REPO = Path(__file__).resolve().parents[1]


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
        (["runs", "ptb-baseline-40-10", "training", "lr"], -1, "runs.ptb-baseline-40-10.training.lr", "expected a number"),
        (["runs", "ptb-baseline-40-10", "model", "alpha"], 1.0, "runs.ptb-baseline-40-10.model.alpha", "[0.0, 1.0)"),
        (["runs", "ptb-baseline-40-10", "model", "hidden"], "40", "runs.ptb-baseline-40-10.model.hidden", "integer"),
        (["runs", "ptb-baseline-40-10", "training", "lrr"], 1, "runs.ptb-baseline-40-10.training.lrr", "unknown key"),
        (["runs", "ptb-baseline-40-10", "training", "preset"], "nope", "runs.ptb-baseline-40-10.training.preset", "no preset"),
        (["profiles", "quick", "max_epochs"], 0, "profiles.quick.max_epochs", "integer or null >= 1"),
        (["training_presets", "baseline-ours", "lr_schedule"], "cosine", "lr_schedule", "expected one of plateau, after"),
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


def test_profile_caps_epochs(params):
    quick = config.run_config(params, "ptb-baseline-40-10", profile="quick")
    paper = config.run_config(params, "ptb-baseline-40-10", profile="paper")
    assert quick.epochs == params["profiles"]["quick"]["max_epochs"] and quick.budget.is_reduced
    assert paper.epochs == 120 and not paper.budget.is_reduced


def test_stage_reports_bad_params_without_traceback(params, tmp_path):
    bad = copy.deepcopy(params)
    bad["runs"]["ptb-baseline-40-10"]["training"]["batch_size"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.train", "--run", "ptb-baseline-40-10", "--params", str(tmp_path / "params.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "runs.ptb-baseline-40-10.training.batch_size" in proc.stderr and "Traceback" not in proc.stderr


STAGE_MODULES = sorted(p.stem for p in (REPO / "stages").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("stage", STAGE_MODULES)
def test_every_stage_documents_itself(stage):
    proc = subprocess.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f"python -m stages.{stage}" in proc.stdout


@pytest.mark.parametrize(
    "model, key, expected",
    [
        ({"preset": "scrn-small", "dropout": {"regime": "naive", "p_h": 0.2}}, "model.dropout.p_h", "never drops the recurrence"),
        ({"preset": "scrn-small", "dropout": {"p_i": 0.2}}, "model.dropout.regime", "is none but dropout rates are set"),
        ({"preset": "scrn-small", "dropout": {"regime": "variational", "vd_h_mask": "loose"}}, "model.dropout.vd_h_mask", "tied, independent"),
        ({"preset": "scrn-small", "sobolev": {"beta": 0.1, "layers": [3]}}, "model.sobolev.layers", "has 2 layer(s)"),
        ({"preset": "lstm-small", "context": 10}, "model.arch", "no context state"),
        ({"preset": "lstm-small", "sobolev": {"beta": 0.1}}, "model.sobolev", "SCRN layers only"),
        ({"arch": "scrn-baseline", "hidden": 40, "context": 10, "alpha": 0.95, "tie": True}, "model.arch", "unregularised"),
        ({"preset": "scrn-huge"}, "model.preset", "no preset 'scrn-huge'"),
        ({"preset": "scrn-small", "recurrence_impl": "cudnn"}, "model.recurrence_impl", "auto, loop, scan, tanh-rnn"),
        ({"preset": "lstm-small", "recurrence_impl": "loop"}, "model.recurrence_impl", "SCRN only"),
        ({"preset": "scrn-small", "recurrence_impl": "scan",
          "dropout": {"regime": "variational", "p_h": 0.2, "vd_mask_scope": "sequence"}},
         "model.recurrence_impl", "per-sequence h mask"),
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
    assert (cfg.model.arch, cfg.model.hidden, cfg.model.context, cfg.model.alpha, cfg.model.tie) == ("scrn", 750, 120, 0.9, True)
    assert cfg.model.dropout == config.DropoutConfig(regime="variational", p_i=0.4, p_h=0.4, p_o=0.4)
    assert (cfg.training.lr, cfg.training.lr_decay, cfg.training.lr_schedule, cfg.training.decay_after) == (0.6, 0.9, "after", 25)
