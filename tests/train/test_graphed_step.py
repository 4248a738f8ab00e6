"""The CUDA-graph training step (pipeline/train/graphed.py) run uncaptured on a CPU: its
static-buffer step must be the eager trainer's step, window for window.

What a CPU cannot check (the capture itself, replay RNG) is in benchmarks/gpu_exactness.py.
"""

from __future__ import annotations

import dataclasses
import math
import types

import pytest
import torch

from pipeline import config
from pipeline.config import DropoutConfig, ModelConfig, SobolevConfig
from pipeline.models import build_model, init_uniform
from pipeline.models.common import detach_state
from pipeline.train import graphed, loop
from pipeline.train.graphed import GraphedStep, flatten_state
from pipeline.train.loop import TrainingDiverged
from tests.models.tiny import stacked_scrn
from tests.train.test_train import nan_at_training_step, params_with, tiny_prepared, train_on_cpu

VOCAB, BATCH, BPTT = 17, 3, 5

MODELS = {
    "scrn-nd-wt-sobolev": stacked_scrn(
        dropout=DropoutConfig(regime="naive", p_i=0.2, p_o=0.3), sobolev=SobolevConfig(beta=0.3)
    ),
    "scrn-vd-tied": stacked_scrn(dropout=DropoutConfig(regime="variational", p_i=0.2, p_h=0.4, p_o=0.3)),
    "scrn-baseline": ModelConfig(arch="scrn-baseline", hidden=6, context=3, alpha=0.95),
    "lstm": ModelConfig(arch="lstm", hidden=6, layers=2, dropout=DropoutConfig(regime="naive", p_i=0.2, p_o=0.3)),
}


def build(cfg: ModelConfig, dropout_on: bool):
    if not dropout_on:
        cfg = dataclasses.replace(cfg, dropout=DropoutConfig())
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB)
    init_uniform(model, 0.5)
    return model.double()


def windows(n: int):
    data = torch.randint(0, VOCAB, (BATCH, n * BPTT + 1), generator=torch.Generator().manual_seed(3))
    return [(data[:, k * BPTT : (k + 1) * BPTT], data[:, k * BPTT + 1 : (k + 1) * BPTT + 1]) for k in range(n)]


EPOCHS = [(1.3, windows(3)), (0.4, windows(4))]  # an LR change and a state reset between the two


def eager(model, clip):
    """The trainer's own per-window code (loop._train_epoch's body); returns per-epoch records."""
    torch.manual_seed(7)
    records = []
    for lr, wins in EPOCHS:
        model.train()
        state = model.zero_state(BATCH)
        total = torch.zeros((), dtype=torch.float64)
        for x, y in wins:
            loss, mean_ce, state = loop.window_loss(model, x, y, detach_state(state))
            loop.sgd_step(model, loss, lr, clip)
            total += mean_ce.detach().double()
        records.append((total.item(), [t.clone() for t in flatten_state(detach_state(state))]))
    return records


def static(model, clip):
    torch.manual_seed(7)
    step = GraphedStep(model, BATCH, BPTT, "cpu", clip, capture=False)
    assert step.graph is None
    records = []
    for lr, wins in EPOCHS:
        model.train()
        step.set_lr(lr)
        step.start_epoch()
        for x, y in wins:
            step.step(x, y)
        total, bad_step, _ = step.end_epoch()
        assert bad_step == 0 and step.count.item() == len(wins)
        records.append((total, flatten_state(step.carried_state())))
    return records


def assert_close(a, b, tol=1e-12):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("dropout_on", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_static_buffer_step_equals_the_eager_trainer(name, dropout_on):
    """Two epochs (3 + 4 windows, carried state, LR 1.3 then 0.4, state reset between) with a
    clip norm small enough to clip every window: parameters, carried state and the epoch's
    summed cross-entropy agree in float64. Uncaptured, the dropout draws come in the same order
    from the same generator, so this holds with dropout on as well."""
    clip = 0.05
    ref, got = build(MODELS[name], dropout_on), build(MODELS[name], dropout_on)
    want = eager(ref, clip)
    have = static(got, clip)
    for (t_want, s_want), (t_have, s_have) in zip(want, have):
        assert math.isclose(t_have, t_want, rel_tol=1e-12)
        for a, b in zip(s_have, s_want):
            assert_close(a, b)
    for (pname, p), q in zip(got.named_parameters(), ref.parameters()):
        assert_close(p.detach(), q.detach()), pname
    # the clip matters: without it the parameters differ, so the comparison above covers clipping
    unclipped = build(MODELS[name], dropout_on)
    eager(unclipped, 1e9)
    assert any((p - q).abs().max() > 1e-6 for p, q in zip(unclipped.parameters(), ref.parameters()))


def test_state_buffers_are_reused_and_carry_between_windows():
    model = build(MODELS["scrn-nd-wt-sobolev"], False)
    step = GraphedStep(model, BATCH, BPTT, "cpu", 5.0, capture=False)
    buffers = [t.data_ptr() for t in step.state]
    step.set_lr(0.5)
    step.start_epoch()
    ((x, y),) = windows(1)
    step.step(x, y)
    assert [t.data_ptr() for t in step.state] == buffers
    assert all(t.abs().sum() > 0 for t in step.state)  # the step wrote the new state in place
    step.start_epoch()
    assert all(t.abs().sum() == 0 for t in step.state)


def test_nan_guard_records_the_first_non_finite_window():
    model = build(MODELS["scrn-baseline"], False)
    calls = {"n": 0}

    def poisoned(m, x, y, state):
        loss, mean_ce, state = loop.window_loss(m, x, y, state)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] in (3, 4) else loss), mean_ce, state

    step = GraphedStep(model, BATCH, BPTT, "cpu", 5.0, capture=False, loss_fn=poisoned)
    step.set_lr(0.1)
    step.start_epoch()
    for x, y in windows(5):
        step.step(x, y)
    _, bad_step, bad_loss = step.end_epoch()
    assert bad_step == 3 and math.isnan(bad_loss)


def _run(tmp_path, tag, mode, **caps):
    params = params_with({"max_epochs": 3, "max_train_tokens": 5700, "max_eval_tokens": None, **caps}, cuda_graph=mode)
    cfg = config.run_config(params, "tiny")
    logs = []
    metrics = train_on_cpu(
        cfg, tiny_prepared(tmp_path / tag / "data"), tmp_path / tag / "out", tmp_path / tag / "ck", log=logs.append
    )
    return cfg, metrics, logs


def test_run_training_with_the_graph_setting_matches_the_eager_trainer(tmp_path, monkeypatch):
    """training.cuda_graph: on (uncaptured on a CPU) goes through the static-buffer step and
    gives the eager run's numbers (float32: the SGD update rounds differently, ≤ 1e-5)."""
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    cfg_off, off, logs_off = _run(tmp_path, "off", "off")
    cfg_on, on, logs_on = _run(tmp_path, "on", "on")
    assert any("static buffers" in line for line in logs_on) and not any("static buffers" in line for line in logs_off)
    assert cfg_on.params_hash == cfg_off.params_hash  # how the step runs is not part of the run's identity
    for key in ("best_valid_ppl", "test_ppl"):
        assert math.isclose(on[key], off[key], rel_tol=1e-5), key
    assert on["best_epoch"] == off["best_epoch"] and on["final_lr"] == off["final_lr"]


def test_nan_guard_of_the_graphed_epoch_names_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    # the graphed step's loss; epoch 1 has 8 windows: poison step 3 of epoch 2
    monkeypatch.setattr(graphed, "window_loss", nan_at_training_step(loop.window_loss, 8 + 3))
    monkeypatch.setattr(loop, "project_wall_time", lambda *a, **k: 0.0)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3/8.*after epoch 1"):
        _run(tmp_path, "nan", "on")
    cfg = config.run_config(params_with({"max_epochs": 3, "max_train_tokens": 5700, "max_eval_tokens": None}), "tiny")
    saved = torch.load(
        loop.ckpt.checkpoint_dir(tmp_path / "nan" / "ck", cfg) / loop.ckpt.CHECKPOINT_NAME, weights_only=False
    )
    assert saved["run"].epoch == 1


def test_cuda_graph_setting_defaults_and_validation():
    params = params_with({"max_epochs": 1, "max_train_tokens": None, "max_eval_tokens": None})
    assert config.run_config(params, "tiny").training.cuda_graph == "auto"
    for value, want in ((True, "on"), (False, "off"), ("on", "on"), ("off", "off")):  # YAML 1.1: bare on is True
        assert config.run_config(params_with({"max_epochs": 1}, cuda_graph=value), "tiny").training.cuda_graph == want
    with pytest.raises(config.ParamsError, match=r"runs\.tiny\.training\.cuda_graph: expected one of auto, on, off"):
        config.run_config(params_with({"max_epochs": 1}, cuda_graph="always"), "tiny")
    assert loop.use_cuda_graph("auto", torch.device("cuda")) and not loop.use_cuda_graph("auto", torch.device("cpu"))
    assert loop.use_cuda_graph("on", torch.device("cpu")) and not loop.use_cuda_graph("off", torch.device("cuda"))


def test_a_failed_capture_stops_the_run_and_names_the_setting(monkeypatch):
    """A capture error must not surface as a raw CUDA error (nor fall back silently): the run
    stops with the params key that turns the graph off."""
    from pipeline.errors import ParamsError
    from pipeline.train import loop

    def broken_capture(*args, **kwargs):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(loop, "GraphedStep", broken_capture)
    layout = types.SimpleNamespace(data=torch.zeros(BATCH, 10, dtype=torch.long), bptt=BPTT)
    with pytest.raises(ParamsError, match=r"training\.cuda_graph: off.*") as info:
        loop.make_graphed_step(None, layout, torch.device("cpu"), 5.0)
    assert "operation not permitted" in str(info.value) and "more detail" not in str(info.value)
