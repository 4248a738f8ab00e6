"""Legacy logs that must not pass: text that is no log of the legacy code, perplexities no model
can score, and the selection rule's tie-break (pipeline/legacy.py, stages/legacy_results.py)."""

from __future__ import annotations

import json

import pytest

from pipeline.legacy import LegacyLogError, NoCompleteEpoch, parse_log
from stages import legacy_results
from tests.legacy.test_legacy import RUN, bits, c_float, epoch_block, write_log

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\nSed do eiusmod tempor: incididunt ut labore.\n"
    "Epoch one. Perplexity is low\n"
)


@pytest.mark.parametrize("text", [LOREM, "\x00\x9f\x12garbage\xff" * 50, "foo: bar\n  baz: 1\n", ""])
def test_a_log_with_no_recognisable_line_is_an_error_naming_the_file(tmp_path, text):
    log = tmp_path / "train.log"
    log.write_text(text)
    with pytest.raises(LegacyLogError, match=r"train\.log: no line of the legacy train\.lua format") as err:
        parse_log(log, RUN)
    assert not isinstance(err.value, NoCompleteEpoch)  # not "a run still in its first epoch"


def test_the_header_alone_is_still_a_run_in_its_first_epoch(tmp_path):
    with pytest.raises(NoCompleteEpoch):
        parse_log(write_log(tmp_path / "train.log", ""), RUN)


def _with_ppl(valid_ppl_text: str) -> str:
    """Epoch 1 normal; epoch 2's Validation line printed with ``valid_ppl_text`` as its perplexity."""
    body = epoch_block(1, bits(300), bits(250), bits(240)) + epoch_block(2, bits(200), bits(180), bits(175))
    good = f"Validation: Entropy (base 2) : {c_float(bits(180), 5)} || Perplexity : {c_float(180, 5)}"
    assert good in body
    return body.replace(good, f"Validation: Entropy (base 2) : 7.00000 || Perplexity : {valid_ppl_text}")


@pytest.mark.parametrize("ppl", ["-5.00000", "0.00000", "1.00000", "0.50000", "inf", "-nan"])
def test_a_perplexity_not_finite_and_above_1_is_an_error_naming_the_line(tmp_path, ppl):
    log = write_log(tmp_path / "train.log", _with_ppl(ppl))
    line = next(i for i, text in enumerate(log.read_text().splitlines(), start=1) if f"Perplexity : {ppl}" in text)
    with pytest.raises(LegacyLogError, match=rf"train\.log:{line}: Validation perplexity"):
        parse_log(log, RUN)


def test_a_perplexity_just_above_1_is_accepted(tmp_path):
    m = parse_log(write_log(tmp_path / "train.log", _with_ppl("1.00001"), nepochs=2), RUN)
    assert m["best_valid_ppl"] == pytest.approx(1.00001) and m["best_epoch"] == 2


def test_the_nan_divergence_stays_a_result(tmp_path):
    """The code's own 'Not a Number detected' run, with the -nan perplexities it printed first."""
    body = (
        epoch_block(1, bits(300), bits(250), bits(240))
        + epoch_block(2, float("nan"), float("nan"), float("nan"))
        + "Not a Number detected\n"
    )
    m = parse_log(write_log(tmp_path / "train.log", body), RUN)
    assert m["status"] == "diverged" and m["best_epoch"] == 1


def test_equal_best_valid_perplexities_report_the_earliest_epoch(tmp_path):
    """The authors' rule keeps the first minimum (a later equal epoch is no improvement); the
    epochs differ in test PPL so that the latest would be visible."""
    rows = [(300, 250, 240), (200, 150, 145), (190, 160, 150), (180, 150, 139), (170, 151, 138)]
    body = "".join(epoch_block(i, bits(tr), bits(va), bits(te)) for i, (tr, va, te) in enumerate(rows, start=1))
    m = parse_log(write_log(tmp_path / "train.log", body, nepochs=5), RUN)
    assert m["best_epoch"] == 2 and m["test_ppl"] == pytest.approx(145.0, abs=1e-3)


def test_the_stage_keeps_the_earlier_metrics_when_a_log_is_garbage(tmp_path, capsys):
    legacy = tmp_path / "legacy-torch"
    (legacy / RUN).mkdir(parents=True)
    (legacy / RUN / "train.log").write_text(LOREM)
    earlier = json.dumps({"run": RUN, "status": "ok", "test_ppl": 128.1})
    (legacy / RUN / "metrics.json").write_text(earlier)
    assert legacy_results.main(["--results", str(legacy), "--run", RUN]) == 1
    assert (legacy / RUN / "metrics.json").read_text() == earlier
    assert "train.log: no line of the legacy train.lua format" in capsys.readouterr().err
