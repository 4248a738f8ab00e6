"""The legacy Torch7 log parser (pipeline/legacy.py), its stage, and the report's legacy column.

The fixture logs are written with the format strings of the original code's train.lua, as
../shared/notes/legacy-torch.md §5 quotes them, including where the newlines fall (each piece
starts with one; print('') ends the epoch), so the parser sees what the container captures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.legacy import LegacyLogError, NoCompleteEpoch, parse_log
from pipeline.report.results import LEGACY_DIR
from stages import legacy_results
from tests.report.test_report import render, table2_rows

RUN = "ptb-baseline-40-10"

HEADER = """[[ building dictionary ]]
[loading: ./data/ptb/ptb.train.txt]
[Done making the dictionary. There are 10000 unique words and a total of 929589 words in the training set.]
[Created 100 clusters.]
There are effectively 10001 words in the corpus.
[[ generating training data using new dictionary ]]
saving to ./data/ptb/ptb.train.txt_thresh=0.th7
-- total lines: 42068
-- not shuffling the data
[[ Loading dataset and dictionary ]]
user: root
dataset:
  name: ptb
  batch_size: 32
model:
  name: scrnn_sm
  n_hidden: {hidden}
  n_slow: {slow}
  backprop_len: 50
trainer:
  initial_learning_rate: 0.05
  learning_rate_shrink: 1.5
  n_epochs: {nepochs}
  use_test_set: 1
*** saving the model ***"""


def lua_number(x: float) -> str:
    """Lua 5.1's tostring of a number (%.14g), as in '... learning rate to ' .. lr."""
    return f"{x:.14g}"


def c_float(x: float, digits: int) -> str:
    """C printf's %.Nf, which prints inf and nan (glibc: -nan for the usual NaN) without digits."""
    if math.isnan(x):
        return "-nan"
    return f"{x:.{digits}f}"


def epoch_block(
    epoch: int,
    train: float,
    valid: float | None,
    test: float | None,
    *,
    lr_to: float | None = None,
    seconds: float = 120.0,
    end: bool = True,
) -> str:
    """train.lua's io.write sequence for one epoch (entropies in bits; PPL = 2^entropy)."""
    out = "\n\nEpoch: %d. Training time: %ss. Words/s: %s" % (epoch, c_float(seconds, 2), c_float(929536 / seconds, 2))
    for name, h in (("Training", train), ("Validation", valid), ("Testing", test)):
        if h is not None:
            out += "\n%s: Entropy (base 2) : %s || Perplexity : %s" % (name, c_float(h, 5), c_float(2**h, 5))
    if lr_to is not None:
        out += "\nDecreasing the learning rate to " + lua_number(lr_to)
    return out + ("\n" if end else "")  # print('')


def write_log(path: Path, body: str, hidden: int = 40, slow: int = 10, nepochs: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(hidden=hidden, slow=slow, nepochs=nepochs) + "\n" + body)
    return path


def bits(ppl: float) -> float:
    return math.log2(ppl)


# valid PPL per epoch: improving, then a non-improving epoch 4 (LR /1.5, rollback), then best at 5,
# then a non-improving last epoch 6
LR_RUN = [
    (200.0, 180.0, 170.0),
    (160.0, 150.0, 143.0),
    (140.0, 138.0, 131.0),
    (135.0, 139.0, 133.0),
    (133.0, 134.5, 128.1),
    (131.0, 134.9, 128.4),
]


def lr_run_body() -> str:
    body, lr = "", 0.05
    for i, (tr, va, te) in enumerate(LR_RUN, start=1):
        shrink = i in (4, 6)
        lr = lr / 1.5 if shrink else lr
        body += epoch_block(i, bits(tr), bits(va), bits(te), lr_to=lr if shrink else None)
    return body


def test_normal_run_reports_best_valid_epoch(tmp_path):
    body = "".join(epoch_block(i, bits(300 - 20 * i), bits(250 - 20 * i), bits(240 - 20 * i)) for i in range(1, 6))
    m = parse_log(write_log(tmp_path / "train.log", body, nepochs=5), RUN)
    assert m["status"] == "ok" and m["profile"] == "legacy-torch" and m["run"] == RUN
    assert m["best_epoch"] == 5 and m["epochs"] == 5 and m["epoch_budget"] == 5
    assert m["best_valid_ppl"] == pytest.approx(150.0, abs=1e-3) and m["test_ppl"] == pytest.approx(140.0, abs=1e-3)
    assert m["words_per_s"] == pytest.approx(929536 / 120, abs=0.01)
    assert m["reduced"] is True  # 5 epochs < the paper's 100
    assert m["truncated"] is False and m["lr_decreases"] == [] and m["lr_final"] == 0.05


def test_full_budget_run_is_not_reduced(tmp_path):
    body = "".join(epoch_block(i, bits(200.0), bits(150.0 - i / 100), bits(140.0)) for i in range(1, 101))
    m = parse_log(write_log(tmp_path / "train.log", body), RUN)
    assert (m["status"], m["epochs"], m["reduced"], m["best_epoch"]) == ("ok", 100, False, 100)


def test_lr_decreases_and_a_non_improving_last_epoch(tmp_path):
    m = parse_log(write_log(tmp_path / "train.log", lr_run_body(), nepochs=6), RUN)
    assert m["best_epoch"] == 5  # not the last epoch, whose valid PPL is worse
    assert m["best_valid_ppl"] == pytest.approx(134.5, abs=1e-3) and m["test_ppl"] == pytest.approx(128.1, abs=1e-3)
    assert [d["after_epoch"] for d in m["lr_decreases"]] == [4, 6]
    assert m["lr_final"] == pytest.approx(0.05 / 1.5**2, rel=1e-12)
    assert [h["lr"] for h in m["history"]] == pytest.approx([0.05] * 4 + [0.05 / 1.5] * 2, rel=1e-12)
    assert m["epochs"] == 6 and m["status"] == "ok"


def test_nan_run_exits_zero_and_is_marked_diverged(tmp_path):
    body = (
        epoch_block(1, bits(300), bits(250), bits(240))
        + epoch_block(2, bits(200), bits(180), bits(175))
        + epoch_block(3, float("nan"), float("nan"), float("nan"))
        + "Not a Number detected\n"
    )
    m = parse_log(write_log(tmp_path / "train.log", body), RUN)
    assert m["status"] == "diverged" and m["nan_detected"] is True and m["diverged_epoch"] == 3
    assert m["best_epoch"] == 2 and m["best_valid_ppl"] == pytest.approx(180.0, abs=1e-3)
    assert m["history"][2]["valid_ppl"] is None  # JSON has no NaN
    json.dumps(m, allow_nan=False)


def test_nan_line_alone_marks_the_next_epoch(tmp_path):
    body = epoch_block(1, bits(300), bits(250), bits(240)) + "Not a Number detected\n"
    m = parse_log(write_log(tmp_path / "train.log", body), RUN)
    assert (m["status"], m["diverged_epoch"]) == ("diverged", 2)
    early = parse_log(write_log(tmp_path / "early.log", "Not a Number detected\n"), RUN)
    assert (early["status"], early["diverged_epoch"], early["best_valid_ppl"], early["epochs"]) == (
        "diverged",
        1,
        None,
        0,
    )


def test_truncated_run_uses_its_complete_epochs(tmp_path):
    # killed during epoch 4's evaluation: its Testing line is cut in the middle of the number
    body = lr_run_body().split("\n\nEpoch: 5")[0]
    cut = body.rsplit("Testing", 1)[0] + "Testing: Entropy (base 2) : 7.0"
    m = parse_log(write_log(tmp_path / "train.log", cut), RUN)
    assert m["epochs"] == 3 and m["best_epoch"] == 3 and m["test_ppl"] == pytest.approx(131.0, abs=1e-3)
    assert m["truncated"] is True and m["reduced"] is True and m["status"] == "ok"
    assert m["history"][3]["test_ppl"] is None


def test_truncated_before_the_first_epoch_is_an_error_naming_the_file(tmp_path):
    log = write_log(tmp_path / "train.log", "\n\nEpoch: 1. Training time: 100.00s. Words/s: 9295.36\nTraining: Ent")
    with pytest.raises(LegacyLogError, match=r"train\.log.*no complete epoch"):
        parse_log(log, RUN)


def test_stopped_during_the_first_test_is_no_complete_epoch_not_a_missing_istest(tmp_path):
    cut = epoch_block(1, bits(300), bits(250), None, end=False) + "\nTesting: Ent"  # its dump says use_test_set: 1
    with pytest.raises(NoCompleteEpoch, match="no complete epoch"):
        parse_log(write_log(tmp_path / "train.log", cut), RUN)
    without_test = write_log(
        tmp_path / "notest.log", epoch_block(1, bits(300), bits(250), None) + epoch_block(2, bits(280), bits(240), None)
    )
    without_test.write_text(without_test.read_text().replace("use_test_set: 1", "use_test_set: 0"))
    with pytest.raises(LegacyLogError, match="needs -istest 1"):
        parse_log(without_test, RUN)


def test_log_of_another_configuration_is_refused(tmp_path):
    log = write_log(tmp_path / "train.log", epoch_block(1, 7.0, 7.0, 7.0), hidden=300, slow=40)
    with pytest.raises(LegacyLogError, match=r"train\.log.*\(300, 40\).*ptb-baseline-40-10"):
        parse_log(log, RUN)


# ---------------------------------------------------------------------------- stage + report


def test_report_legacy_column_not_run_until_the_stage_writes_results(tmp_path, capsys):
    results = tmp_path / "results"
    legacy = results / LEGACY_DIR
    assert all(r[5] == "not run" for r in table2_rows(render(results)).values())

    write_log(legacy / RUN / "train.log", lr_run_body(), nepochs=100)
    nan_body = epoch_block(1, bits(300), bits(250), bits(240)) + "Not a Number detected\n"
    write_log(legacy / "ptb-baseline-300-40" / "train.log", nan_body, hidden=300, slow=40)
    assert all(r[5] == "not run" for r in table2_rows(render(results)).values())  # logs alone: still not run

    assert legacy_results.main(["--results", str(legacy)]) == 0
    written = json.loads((legacy / RUN / "metrics.json").read_text())
    assert written["source_log"].endswith(f"{RUN}/train.log") and written["epochs"] == 6
    rows = table2_rows(render(results))
    assert rows["40/10"][5] == "134.5 / 128.1 (legacy-torch, 6 of 100 epochs)"  # a reduced run, labelled
    assert rows["300/40"][5] == "diverged (NaN, epoch 2)"
    assert rows["90/10"][5] == "not run" and rows["100/40"][5] == "not run"
    assert "ptb-baseline-90-10: no" in capsys.readouterr().out


def test_stage_error_names_the_log_and_keeps_the_earlier_metrics(tmp_path, capsys):
    legacy = tmp_path / "legacy-torch"
    write_log(legacy / RUN / "train.log", epoch_block(1, 7.0, 7.0, 7.0), hidden=300, slow=40)  # another run's log
    (legacy / RUN / "metrics.json").write_text('{"status": "ok"}')
    assert legacy_results.main(["--results", str(legacy), "--run", RUN]) == 1
    assert (legacy / RUN / "metrics.json").read_text() == '{"status": "ok"}'  # a failed parse destroys nothing
    err = capsys.readouterr().err
    assert f"{RUN}/train.log" in err and "was left as it was" in err


def test_stage_skips_a_run_still_in_its_first_epoch(tmp_path, capsys):
    """The container writes the log as it goes: parsing during epoch 1 is no error, and the numbers
    an earlier parse wrote stay until the new log has a complete epoch."""
    legacy = tmp_path / "legacy-torch"
    write_log(legacy / RUN / "train.log", "")
    (legacy / RUN / "metrics.json").write_text('{"status": "ok"}')
    assert legacy_results.main(["--results", str(legacy), "--run", RUN]) == 0
    assert (legacy / RUN / "metrics.json").read_text() == '{"status": "ok"}'
    assert f"{RUN}: skipped" in capsys.readouterr().out
