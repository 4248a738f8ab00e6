"""The legacy log parser (pipeline/legacy.py) and its stage on real output of the original code.

tests/fixtures/legacy-torch/ptb-subset-40-10.train.log is the stdout of Table 2's (40, 10)
command line with `-nepochs 3`, run by the legacy-torch image's Torch7 (`th`, i.e. trepl) on the
first 3000/300/300 lines of PTB's train/valid/test: a run that found its .th7 caches, so it starts
at the parameter dump; nothing else was removed. Unlike a log written from train.lua's format
strings, it has what `th` adds: trepl's print() ends every line it prints with a tab, so the
parameter dump and the line before each epoch's closing print('') (here the Testing line) end in
"\\t", which the parser must ignore.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.legacy import parse_log, parse_text
from stages import legacy_results

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy-torch" / "ptb-subset-40-10.train.log"
RUN = "ptb-baseline-40-10"
# (train, valid, test) perplexity and words/s per epoch, as the log prints them
EPOCHS = [
    (797.06485, 623.32233, 618.91420, 421.90),
    (518.52160, 538.01050, 526.04865, 406.72),
    (439.68246, 498.63083, 475.75567, 458.75),
]


def test_fixture_is_raw_th_output():
    text = FIXTURE.read_text()
    assert "Testing: Entropy (base 2) : 8.89408 || Perplexity : 475.75567\t\n" in text
    assert "model:\t\n  initial_val: 0.1\t\n" in text and "*** saving the model ***\t\n" in text


def test_real_log_epoch_lines_are_read_without_the_dump():
    epochs = parse_text(FIXTURE.read_text(), FIXTURE).epochs
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert [(e.train_ppl, e.valid_ppl, e.words_per_s) for e in epochs] == [(t, v, w) for t, v, _, w in EPOCHS]


def test_real_log_testing_lines_are_read():
    epochs = parse_text(FIXTURE.read_text(), FIXTURE).epochs
    assert [e.test_ppl for e in epochs] == [test for _, _, test, _ in EPOCHS]


def test_real_log_parameter_dump_is_read():
    params = parse_text(FIXTURE.read_text(), FIXTURE).params
    assert (params["model"]["n_hidden"], params["model"]["n_slow"], params["model"]["name"]) == (40, 10, "scrnn_sm")
    assert params["trainer"]["n_epochs"] == 3 and params["trainer"]["initial_learning_rate"] == 0.05
    assert params["trainer"]["use_test_set"] == 1


def test_real_log_metrics():
    m = parse_log(FIXTURE, RUN)
    assert (m["status"], m["best_epoch"], m["best_valid_ppl"], m["test_ppl"]) == ("ok", 3, 498.63083, 475.75567)
    assert (m["epochs"], m["epoch_budget"], m["reduced"], m["truncated"]) == (3, 3, True, False)
    assert m["lr_decreases"] == [] and m["lr_final"] == 0.05
    assert m["train_time_s"] == round(157.38 + 163.26 + 144.74, 2)


def test_stage_writes_the_real_logs_metrics(tmp_path, capsys):
    results = tmp_path / "legacy-torch"
    (results / RUN).mkdir(parents=True)
    shutil.copy(FIXTURE, results / RUN / "train.log")
    assert legacy_results.main(["--results", str(results), "--run", RUN]) == 0
    metrics = json.loads((results / RUN / "metrics.json").read_text())
    assert (metrics["test_ppl"], metrics["epochs"]) == (475.75567, 3)
    assert "3/3 epochs" in capsys.readouterr().out
