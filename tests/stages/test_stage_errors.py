"""What a user sees when a stage is given something it cannot use: one line, exit code 1, no
traceback; `--list` alone; `--help` naming the DVC stage and the environment variables; and a
run's real result never replaced by "data missing"."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.errors import EXPECTED_ERRORS, DataFormatError, DataUnavailableError
from pipeline.fsutil import write_missing_marker
from pipeline.report.results import find_result
from stages import download, grid, train
from stages._common import run_stage
from tests.stage_cli import flags

REPO = Path(__file__).resolve().parents[2]
OK_RESULT = {"run": "fr-medium-scrn-nd-wt", "status": "ok", "best_valid_ppl": 151.2, "test_ppl": 148.9}


def _one_line_exit_1(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        run_stage(train.main, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_train_list_needs_no_run(capsys):
    assert train.main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names[0] == "ptb-baseline-40-10" and len(names) == len(set(names)) > 50


def test_train_without_run_or_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.main([])
    assert exit_.value.code == 2 and "--run is required (or --list" in capsys.readouterr().err


def test_grid_list_needs_no_backend(capsys):
    assert grid.main(["--list", "--runs", "ptb-baseline-*-40"]) == 0
    assert capsys.readouterr().out.split() == ["ptb-baseline-100-40", "ptb-baseline-300-40"]
    assert grid.main(["--list"]) == 0
    assert "wt2-small-scrn-nd" in capsys.readouterr().out.split()


def test_grid_without_backend_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        grid.main(["--runs", "ptb-baseline-40-10"])
    assert exit_.value.code == 2 and "--backend and --runs are required" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_on_cuda_without_cuda_is_one_line(capsys, tmp_path):
    err = _one_line_exit_1(capsys, ["--run", "ptb-baseline-40-10", "--device", "cuda", "--results", str(tmp_path)])
    assert "device 'cuda' was requested but CUDA is not available" in err


def test_train_on_an_unprepared_corpus_says_to_run_prepare(capsys, tmp_path):
    prepared = tmp_path / "data" / "prepared" / "ptb"
    err = _one_line_exit_1(
        capsys,
        flags(
            run="ptb-baseline-40-10",
            device="cpu",
            prepared=prepared,
            results=tmp_path / "results",
            checkpoints=tmp_path / "ck",
        ),
    )
    assert f"{prepared} does not exist" in err and "run `python -m stages.prepare --corpus ptb`" in err
    assert not (tmp_path / "results").exists()


def test_a_missing_ptb_is_never_written_as_data_missing(tmp_path):
    """A stale marker for a corpus that is not optional: an error, not a "data missing" result."""
    write_missing_marker(tmp_path / "prepared", "no mirror")
    with pytest.raises(DataUnavailableError, match="ptb is not optional"):
        train.main(flags(run="ptb-baseline-40-10", prepared=tmp_path / "prepared", results=tmp_path / "results"))
    assert not (tmp_path / "results").exists()


def test_a_real_result_is_never_replaced_by_data_missing(tmp_path):
    run = "fr-medium-scrn-nd-wt"
    write_missing_marker(tmp_path / "prepared", "botha-blunsom/fr/train.txt is not on this machine")
    result = tmp_path / "results" / "quick" / run / "metrics.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps(OK_RESULT))
    argv = ["--run", run, "--prepared", str(tmp_path / "prepared"), "--results", str(tmp_path / "results")]
    with pytest.raises(DataUnavailableError, match=rf"{result} holds a result \(status ok\); it was left as it was"):
        train.main(argv)
    assert json.loads(result.read_text()) == OK_RESULT and not (result.parent / "model").exists()

    result.write_text(json.dumps({"run": run, "status": "data_missing"}))  # an earlier "data missing" is replaced
    assert train.main(argv) == 0
    assert json.loads(result.read_text())["reason"] == "botha-blunsom/fr/train.txt is not on this machine"


@pytest.mark.parametrize("content", ['{"run": "ptb-baseline-40-10", "status": "o', "", "[1, 2]", "\xff\xfe"])
def test_an_unreadable_metrics_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "quick" / "ptb-baseline-40-10" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        find_result(tmp_path, "ptb-baseline-40-10")
    assert issubclass(DataFormatError, EXPECTED_ERRORS)  # so the report stage prints it as one line


# ---------------------------------------------------------------------------- --help


def _dvc_stage_modules() -> dict[str, str]:
    """DVC stage name -> the stages module its command runs, for both pipeline files."""
    found = {}
    for path in (REPO / "dvc.yaml", REPO / "docker" / "dvc.yaml"):
        for name, stage in yaml.safe_load(path.read_text())["stages"].items():
            cmd = stage.get("cmd") or stage["do"]["cmd"]
            for module in re.findall(r"python -m stages\.(\w+)", cmd):
                found[name] = module
    return found


def test_every_stage_module_says_which_dvc_stage_it_is():
    stages = _dvc_stage_modules()
    assert {"download", "prepare", "train", "code", "run-specs", "legacy-torch"} <= set(stages)
    for name, module in stages.items():
        doc = importlib.import_module(f"stages.{module}").__doc__
        expected = "legacy-results" if name == "legacy-torch" else name  # its parse step's own stage
        assert f"DVC stage ``{expected}" in doc, f"stages.{module} does not name its DVC stage {expected}"


@pytest.mark.parametrize("module", ["grid", "search"])
def test_tools_that_are_no_stage_say_so(module):
    assert "not a DVC stage" in importlib.import_module(f"stages.{module}").__doc__


def test_download_help_names_the_environment_variables(capsys):
    with pytest.raises(SystemExit):
        download.main(["--help"])
    out = capsys.readouterr().out
    assert "DVC stage ``download@<corpus>``" in out and "SCRN_DATA_MIRROR" in out and "SCRN_OFFLINE=1" in out
