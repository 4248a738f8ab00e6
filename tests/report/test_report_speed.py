"""The report's training-speed section: newest benchmark result per device, nothing without results."""

from __future__ import annotations

import json

from pipeline.report.speed import latest_per_device, speed_sections


def result(device: str, stamp: str, ms: float) -> dict:
    row = {
        "model": "SCRN 2x240/40 scan [auto]",
        "size": "small",
        "run": "r",
        "kernel": "scan",
        "parameters": 1,
        "train_ms_per_batch": ms,
        "train_tokens_per_s": 1,
        "train_epoch_s": 1.0,
        "train_ratio_to_lstm": 0.9,
        "train_speedup_over_loop": 1.2,
        "eval_ms_per_batch": 1.0,
        "eval_tokens_per_s": 1,
        "eval_valid_pass_s": 1.0,
        "eval_ratio_to_lstm": None,
        "train_samples": 1,
        "eval_samples": 1,
    }
    return {
        "environment": {
            "device_name": device,
            "timestamp": stamp,
            "torch": "2.x",
            "cuda": None,
            "cudnn": None,
            "threads": 1,
        },
        "settings": {"rounds": 2, "train_steps": 3, "quick": True, "auto_kernel": "scan"},
        "rows": [row],
    }


def test_newest_result_per_device_is_rendered(tmp_path):
    (tmp_path / "gpu").mkdir()
    for name, payload in {
        "train-step-a-old.json": result("CPU: X", "2026-01-01T00:00:00Z", 111.0),
        "train-step-a-new.json": result("CPU: X", "2026-02-01T00:00:00Z", 222.0),
        "gpu/train-step-b.json": result("NVIDIA H200", "2026-01-15T00:00:00Z", 3.0),
        "multi-run-a.json": {"not": "a train-step result"},
    }.items():
        (tmp_path / name).write_text(json.dumps(payload))
    assert [r["environment"]["timestamp"] for r in latest_per_device(tmp_path)] == [
        "2026-02-01T00:00:00Z",
        "2026-01-15T00:00:00Z",
    ]
    sections = speed_sections(tmp_path)
    assert [s["title"] for s in sections] == ["CPU: X", "NVIDIA H200"]
    assert sections[0]["table"]["train ms/batch"].tolist() == ["222.00"]
    assert sections[0]["table"]["eval × LSTM"].tolist() == ["–"]
    assert "median of 6 training steps" in sections[0]["caption"] and "auto = scan" in sections[0]["caption"]


def test_no_results_no_sections(tmp_path):
    assert speed_sections(tmp_path / "absent") == [] and speed_sections(None) == []


def test_auto_kernel_per_model_size_is_spelled_out(tmp_path):
    payload = result("NVIDIA H200", "2026-11-27T00:00:00Z", 3.0)
    payload["settings"]["auto_kernel"] = {"small": "tanh-rnn", "medium": "triton"}
    (tmp_path / "train-step-h200.json").write_text(json.dumps(payload))
    assert "auto = small: tanh-rnn, medium: triton" in speed_sections(tmp_path)[0]["caption"]
