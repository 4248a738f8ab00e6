"""Figure 2 is drawn from paper-profile models, or from the numbers the ledger recorded from them
while their weights existed (the weights stay out of git)."""

from __future__ import annotations

import json
from pathlib import Path

from stages import figure2


def write_record(results: Path, run: str, ratio: float) -> None:
    record = {
        "run": run,
        "model": run,
        "tokens": 100,
        "top_types": 10,
        "top_mean": ratio,
        "rest_mean": 1.0,
        "top_tokens": 60,
        "rest_tokens": 40,
        "ratio": ratio,
        "sentences": [{"words": ["the", "cat", "sat"], "deltas": [0.5, 2.0, 1.0]}],
    }
    path = figure2.record_path(results, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_figure2_is_drawn_from_the_ledgers_records_without_weights(tmp_path):
    for (_, run), ratio in zip(figure2.MODELS, (0.4, 0.7)):
        write_record(tmp_path / "results", run, ratio)
    out = tmp_path / "out"
    args = ["--results", str(tmp_path / "results"), "--prepared", str(tmp_path / "none"), "--out", str(out)]
    assert figure2.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and [m["ratio"] for m in summary["models"]] == [0.4, 0.7]
    assert "sentences" not in summary["models"][0] and (out / "figure2.png").stat().st_size > 0


def test_figure2_waits_for_both_models(tmp_path):
    write_record(tmp_path / "results", figure2.MODELS[0][1], 0.4)
    out = tmp_path / "out"
    args = ["--results", str(tmp_path / "results"), "--prepared", str(tmp_path / "none"), "--out", str(out)]
    assert figure2.main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "awaiting paper-profile models" and figure2.MODELS[1][1] in summary["reason"]
    assert not (out / "figure2.png").exists()
