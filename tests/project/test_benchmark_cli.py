"""`python -m benchmarks.train_step` on a CPU: the JSON and table it writes, not how fast anything is."""

from __future__ import annotations

import json
import statistics

import pytest

torch = pytest.importorskip("torch")

from benchmarks import train_step  # noqa: E402


def test_quick_cpu_benchmark_writes_ratios_against_the_lstm(tmp_path, capsys, monkeypatch):
    recorded = {}
    real_summarise = train_step.summarise

    def keep_candidates(cands, device):  # the raw timings, to check the ratios the rows report
        recorded.update({c.name: c for c in cands})
        return real_summarise(cands, device)

    monkeypatch.setattr(train_step, "summarise", keep_candidates)
    threads = torch.get_num_threads()
    try:
        assert (
            train_step.main(
                [
                    "--device",
                    "cpu",
                    "--quick",
                    "--sizes",
                    "small",
                    "--kernels",
                    "loop",
                    "scan",
                    "--graph-kernels",
                    "--rounds",
                    "2",
                    "--warmup",
                    "1",
                    "--out",
                    str(tmp_path),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)

    [path] = tmp_path.glob("train-step-cpu-*.json")
    payload = json.loads(path.read_text())
    assert payload["environment"]["device"] == "cpu" and payload["settings"]["auto_kernel"] == {"small": "scan"}
    rows = {r["model"]: r for r in payload["rows"]}
    assert list(rows) == ["LSTM 2x200 (nn.LSTM)", "SCRN 2x240/40 loop", "SCRN 2x240/40 scan [auto]"]
    lstm = statistics.median(recorded["LSTM 2x200 (nn.LSTM)"].train_ms)
    loop = statistics.median(recorded["SCRN 2x240/40 loop"].train_ms)
    for name, row in rows.items():
        ms = statistics.median(recorded[name].train_ms)
        assert row["train_samples"] == 2 and row["train_ms_per_batch"] == round(ms, 3)
        assert row["train_ratio_to_lstm"] == round(ms / lstm, 3)
        assert row["train_epoch_s"] == round(ms * train_step.PTB_TRAIN_WINDOWS / 1e3, 2)
        assert row["train_tokens_per_s"] == round(train_step.BATCH * train_step.BPTT / ms * 1e3)
    assert rows["SCRN 2x240/40 scan [auto]"]["train_speedup_over_loop"] == round(
        loop / statistics.median(recorded["SCRN 2x240/40 scan [auto]"].train_ms), 3
    )
    assert rows["LSTM 2x200 (nn.LSTM)"]["train_speedup_over_loop"] is None
    out = capsys.readouterr().out
    assert out.startswith("CPU") and "| × LSTM |" in out and "| SCRN 2x240/40 scan [auto] |" in out


def test_the_fused_softmax_is_timed_against_the_full_one_in_the_same_run(tmp_path, monkeypatch):
    recorded = {}
    real_summarise = train_step.summarise

    def keep_candidates(cands, device):
        recorded.update({c.name: c for c in cands})
        return real_summarise(cands, device)

    monkeypatch.setattr(train_step, "summarise", keep_candidates)
    threads = torch.get_num_threads()
    args = ["--device", "cpu", "--quick", "--sizes", "baseline", "--kernels", "scan", "--graph-kernels"]
    try:
        assert (
            train_step.main(
                args + ["--full-softmax", "--bf16", "--rounds", "2", "--warmup", "1", "--out", str(tmp_path)]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    [path] = tmp_path.glob("train-step-cpu-*.json")
    rows = {r["model"]: r for r in json.loads(path.read_text())["rows"]}
    fused, full = "SCRN 1x40/10 scan [auto]", "SCRN 1x40/10 scan [auto] full softmax"
    assert set(rows) == {fused, full, f"{fused} bf16"}  # no LSTM for the baseline; bf16 already uses the full loss
    assert [rows[n]["softmax_loss"] for n in (fused, full, f"{fused} bf16")] == ["fused", "full", "full"]
    speedup = statistics.median(recorded[full].train_ms) / statistics.median(recorded[fused].train_ms)
    assert rows[fused]["train_speedup_over_full_softmax"] == round(speedup, 3)
    assert rows[full]["train_speedup_over_full_softmax"] is None and rows[fused]["train_ratio_to_lstm"] is None
    assert rows[f"{fused} bf16"]["train_ratio_to_fp32"] == round(
        statistics.median(recorded[f"{fused} bf16"].train_ms) / statistics.median(recorded[fused].train_ms), 3
    )


def test_kernel_profile_counts_the_operators_of_a_step(tmp_path, capsys):
    """Per step, over 2 profiled steps: the scan runs one in-place sigmoid per time step and layer,
    and a row's totals are the sums over its operators (all listed: --top covers them)."""
    from benchmarks import kernel_profile

    threads = torch.get_num_threads()
    try:
        assert (
            kernel_profile.main(
                [
                    "--device",
                    "cpu",
                    "--sizes",
                    "small",
                    "--kernels",
                    "scan",
                    "--steps",
                    "2",
                    "--top",
                    "1000",
                    "--out",
                    str(tmp_path),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    [path] = tmp_path.glob("kernel-profile-cpu-*.json")
    rows = {r["model"]: r for r in json.loads(path.read_text())["rows"]}
    assert list(rows) == ["LSTM 2x200 (nn.LSTM)", "SCRN 2x240/40 scan [auto]"]
    for row in rows.values():
        ops = row["top"]
        assert len(ops) < 1000 and row["kernels_per_step"] == pytest.approx(
            sum(k["calls_per_step"] for k in ops), abs=0.05 * len(ops)
        )
        assert row["kernel_ms_per_step"] == pytest.approx(sum(k["ms_per_step"] for k in ops), abs=0.001 * len(ops))
        assert [k["ms_per_step"] for k in ops] == sorted((k["ms_per_step"] for k in ops), reverse=True)
    scan_calls = {k["name"]: k["calls_per_step"] for k in rows["SCRN 2x240/40 scan [auto]"]["top"]}
    assert scan_calls["aten::sigmoid_"] == 2 * train_step.BPTT  # 2 layers x 35 steps, per step
    # the scan is one autograd node: its steps are addmm/mm calls, not a cuDNN or oneDNN RNN
    assert not any("rnn" in name.lower() for name in scan_calls)
    assert "kernels," in capsys.readouterr().out
