"""The run-specs stage: each train@<run> depends on its run's resolved settings, one file per run,
instead of on params, so its files must change exactly when the run's settings do."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.fingerprint import digest
from stages import run_specs
from tests.stage_cli import run_stage

REPO = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.fixture()
def params() -> dict:
    return config.load_params(REPO / "params.yaml")


CODE = {"module": "stages.train", "files": {"stages/train.py": "0" * 64, "pipeline/models/scrn.py": "1" * 64}}


def write_specs(params: dict, tmp_path: Path, tag: str, code: dict = CODE) -> dict[str, dict]:
    """Run the stage on ``params`` and the train code fingerprint ``code``; return {run: spec}."""
    (tmp_path / f"{tag}.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / f"{tag}-code.json").write_text(json.dumps(code))
    out = tmp_path / tag
    assert (
        run_specs.main(
            ["--params", str(tmp_path / f"{tag}.yaml"), "--code", str(tmp_path / f"{tag}-code.json"), "--out", str(out)]
        )
        == 0
    )
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_train_stages_depend_on_their_spec_and_not_on_params():
    train = STAGES["train"]["do"]
    assert "results/run-specs/${key}.json" in train["deps"] and "params" not in train
    assert STAGES["run-specs"]["outs"] == [{"results/run-specs": {"cache": False}}]
    assert {"params.yaml", "results/code/train.json"} <= set(STAGES["run-specs"]["deps"])


def test_a_spec_is_the_configuration_train_runs(params, tmp_path):
    specs = write_specs(params, tmp_path, "a")
    assert sorted(specs) == sorted(config.run_names(params))
    for name in ("ptb-baseline-40-10", "ptb-small-scrn-vd-wt", "wt2-medium-lstm-vd-wt-inan"):
        cfg = config.run_config(params, name)
        assert specs[name] == {
            "run": name,
            "params_hash": cfg.params_hash,
            "code": digest(CODE["files"]),
            "config": cfg.to_dict(),
        }


def test_specs_change_exactly_for_the_runs_an_edit_touches(params, tmp_path):
    before = write_specs(params, tmp_path, "before")
    preset = params["runs"]["ptb-baseline-40-10"]["training"]["preset"]
    users = {n for n, r in params["runs"].items() if r["training"]["preset"] == preset}

    edited = copy.deepcopy(params)
    edited["training_presets"][preset]["lr"] = 0.7  # a preset: every run that names it
    assert changed(before, write_specs(edited, tmp_path, "preset")) == users

    edited = copy.deepcopy(params)
    edited["runs"]["ptb-medium-scrn-vd-wt"]["training"]["lr"] = 0.123  # one run's own entry
    assert changed(before, write_specs(edited, tmp_path, "run")) == {"ptb-medium-scrn-vd-wt"}

    edited = copy.deepcopy(params)
    other = "paper" if params["profile"] == "quick" else "quick"
    edited["profiles"][other]["max_epochs"] = 3  # the inactive profile: nothing
    assert changed(before, write_specs(edited, tmp_path, "other")) == set()
    edited["profiles"][params["profile"]]["max_epochs"] = 5  # the active one: every run
    assert changed(before, write_specs(edited, tmp_path, "active")) == set(before)

    edited = copy.deepcopy(params)
    edited["scaleout"]["time_min"] = 7  # a section no run reads
    assert changed(before, write_specs(edited, tmp_path, "scaleout")) == set()

    code = copy.deepcopy(CODE)
    code["files"]["pipeline/models/scrn.py"] = "2" * 64  # the code the runs execute: every run
    assert changed(before, write_specs(params, tmp_path, "code", code)) == set(before)


def test_a_missing_or_broken_code_fingerprint_is_an_error_that_says_what_to_run(params, tmp_path):
    for text, message in (
        (None, "does not exist: run `python -m stages.fingerprint`"),
        ('{"module": "stages.train"}', "is not a code fingerprint"),
    ):
        if text is not None:
            (tmp_path / "code.json").write_text(text)
        proc = run_stage("run_specs", "--code", tmp_path / "code.json", "--out", tmp_path / "out")
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "out").exists()


def test_removed_runs_leave_no_spec_and_bad_params_leave_the_old_specs(params, tmp_path):
    write_specs(params, tmp_path, "out")
    fewer = copy.deepcopy(params)
    del fewer["runs"]["ptb-baseline-90-10"]
    assert "ptb-baseline-90-10" not in write_specs(fewer, tmp_path, "out")

    bad = copy.deepcopy(params)
    bad["runs"]["ptb-small-scrn-vd-wt"]["training"]["lr"] = -1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = run_stage(
        "run_specs", "--params", tmp_path / "bad.yaml", "--code", tmp_path / "out-code.json", "--out", tmp_path / "out"
    )
    assert proc.returncode == 1 and "runs.ptb-small-scrn-vd-wt.training.lr" in proc.stderr
    assert len(list((tmp_path / "out").glob("*.json"))) == len(params["runs"]) - 1  # untouched
