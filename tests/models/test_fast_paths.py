"""Every CPU fast path of the SCRN hidden recurrence equals the plain loop, values and gradients.

float64 throughout, so that "equal" can mean a few ulps. Each test also checks that the fast
kernel really ran (a spy on recurrence.RUNNERS), so none would pass with the feature deleted.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.config import DropoutConfig, ModelConfig, SobolevConfig
from pipeline.models import build_model, init_uniform, recurrence
from pipeline.models.recurrence import select_kernel
from pipeline.models.scrn import BaselineSCRN, SCRNLayer, SCRNRecurrence, hidden_states
from tests.conftest import under_ci
from tests.models.tiny import stacked_scrn

FAST = ("scan", "tanh-rnn")
TOL = dict(rtol=1e-12, atol=1e-13)


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


@pytest.fixture
def calls(monkeypatch):
    """How often each fast kernel ran."""
    counts = {k: 0 for k in recurrence.RUNNERS}
    for name, fn in list(recurrence.RUNNERS.items()):

        def spy(*args, _fn=fn, _name=name):
            counts[_name] += 1
            return _fn(*args)

        monkeypatch.setitem(recurrence.RUNNERS, name, spy)
    return counts


def leaf(*shape, gen, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen)).requires_grad_()


def assert_same(fast, plain):
    for f, p in zip(fast, plain):
        torch.testing.assert_close(f, p, **TOL)


def values_and_grads(impl, pre, h0, R, mask, tied):
    h, h_raw = hidden_states(pre, h0, R, mask, tied, impl)
    weights = torch.linspace(-1, 1, h.numel()).reshape(h.shape)  # touches every step and unit
    loss = (h * weights).sum() + h_raw.square().sum()
    return (h, h_raw, *torch.autograd.grad(loss, [pre, h0, R]))


# a batch-shared mask with dropped units, and a *different* mask for the carried state, so that
# the first step of a tied window sees h0 nonzero where the current mask is zero
MASK = torch.tensor([[1.25, 0.0, 1.25, 1.25, 0.0]], dtype=torch.float64)
PREVIOUS_MASK = torch.tensor([[0.0, 1.25, 1.25, 0.0, 1.25]], dtype=torch.float64)


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("mode", ["none", "tied", "independent"])
def test_kernel_equals_loop_values_and_gradients(kernel, mode, calls):
    gen = torch.Generator().manual_seed(0)
    pre, R = leaf(3, 7, 5, gen=gen), leaf(5, 5, gen=gen, scale=0.7)
    h0 = torch.rand(3, 5, generator=gen)
    mask, tied = {"none": (None, True), "tied": (MASK, True), "independent": (MASK, False)}[mode]
    if mode == "tied":
        h0 = h0 * PREVIOUS_MASK
    h0.requires_grad_()
    fast = values_and_grads(kernel, pre, h0, R, mask, tied)
    assert calls[kernel] == 1
    plain = values_and_grads("loop", pre, h0, R, mask, tied)
    assert_same(fast, plain)
    if mode == "independent":
        assert fast[0] is fast[1]  # h is h_raw: the output mask is applied elsewhere


def test_tied_first_step_uses_the_carried_state_unmasked_by_the_new_mask(calls):
    """h_1 = sigmoid(a_1 + h0 R) with h0 as carried, even where the new mask drops a unit."""
    gen = torch.Generator().manual_seed(1)
    pre, R = torch.randn(2, 3, 5, generator=gen), torch.randn(5, 5, generator=gen)
    h0 = torch.rand(2, 5, generator=gen) * PREVIOUS_MASK
    _, h_raw = hidden_states(pre, h0, R, MASK, True, "scan")
    torch.testing.assert_close(h_raw[:, 0], torch.sigmoid(pre[:, 0] + h0 @ R), **TOL)
    torch.testing.assert_close(h_raw[:, 1], torch.sigmoid(pre[:, 1] + (h_raw[:, 0] * MASK) @ R), **TOL)


def test_auto_picks_scan_on_cpu_and_the_loop_for_per_sequence_masks():
    cpu = torch.device("cpu")
    assert select_kernel("auto", cpu, None) == "scan"
    assert select_kernel("auto", cpu, MASK) == "scan"
    assert select_kernel("auto", cpu, MASK.expand(3, 5)) == "loop"
    assert select_kernel("tanh-rnn", cpu, MASK.expand(3, 5)) == "loop"
    assert select_kernel("loop", cpu, None) == "loop"
    with pytest.raises(ValueError, match="recurrence_impl"):
        select_kernel("cudnn", cpu, None)


def test_per_sequence_mask_runs_the_loop(calls):
    gen = torch.Generator().manual_seed(2)
    pre, h0, R = torch.randn(3, 4, 5, generator=gen), torch.rand(3, 5, generator=gen), torch.randn(5, 5, generator=gen)
    mask = torch.bernoulli(torch.full((3, 5), 0.5), generator=gen) * 2
    for tied in (True, False):
        fast = hidden_states(pre, h0, R, mask, tied, "auto")
        assert_same(fast, hidden_states(pre, h0, R, mask, tied, "loop"))
    assert sum(calls.values()) == 0


@pytest.mark.parametrize("kernel", FAST)
def test_recurrence_over_two_windows_with_carried_state(kernel, calls):
    """Two windows, state carried without detaching: values and every gradient, s and h."""
    torch.manual_seed(3)
    fast, plain = SCRNRecurrence(5, 3, 0.9, kernel), SCRNRecurrence(5, 3, 0.9, "loop")
    plain.load_state_dict(fast.state_dict())
    gen = torch.Generator().manual_seed(4)
    xb, xa = leaf(2, 12, 3, gen=gen), leaf(2, 12, 5, gen=gen)
    state0 = (torch.randn(2, 3, generator=gen), torch.rand(2, 5, generator=gen))

    def run(layer):
        s1, h1, _ = layer(xb[:, :6], xa[:, :6], state0)
        s2, h2, _ = layer(xb[:, 6:], xa[:, 6:], (s1[:, -1], h1[:, -1]))
        out = torch.cat([s1, h1, s2, h2], dim=-1)
        loss = (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum()
        return (out, *torch.autograd.grad(loss, [xb, xa, *layer.parameters()]))

    got = run(fast)
    assert calls[kernel] == 2
    assert_same(got, run(plain))


def stacked(impl: str, dropout: DropoutConfig, sobolev: SobolevConfig = SobolevConfig(), seed: int = 0):
    torch.manual_seed(seed)
    cfg = stacked_scrn(dropout=dropout, sobolev=sobolev, recurrence_impl=impl)
    model = build_model(cfg, 17)
    init_uniform(model, 0.4)
    return model


MODEL_CASES = {
    "nd": DropoutConfig(regime="naive", p_i=0.2, p_o=0.3),
    "vd-tied-batch": DropoutConfig(regime="variational", p_i=0.2, p_h=0.4, p_o=0.3),
    "vd-independent-batch": DropoutConfig(regime="variational", p_i=0.2, p_h=0.4, p_o=0.3, vd_h_mask="independent"),
}


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_stacked_model_training_windows_match_the_loop(kernel, case, calls):
    """The whole model in training mode over two windows (same dropout draws), with the Sobolev
    penalty on both layers: logits, carried state, penalty and every parameter's gradient."""
    sobolev = SobolevConfig(beta=0.3)
    fast, plain = stacked(kernel, MODEL_CASES[case], sobolev), stacked("loop", MODEL_CASES[case], sobolev)
    x = torch.randint(0, 17, (4, 10), generator=torch.Generator().manual_seed(5))

    def run(model):
        torch.manual_seed(6)  # identical dropout masks for both implementations
        model.train()
        state, total, logits = model.zero_state(4), 0.0, []
        for window in (x[:, :5], x[:, 5:]):
            out = model(window, state)
            total = total + out.logits.square().mean() + out.penalty
            state, logits = out.state, logits + [out.logits]
        grads = torch.autograd.grad(total, list(model.parameters()))
        return (torch.cat(logits, 1), total, *[t for layer in state for t in layer], *grads)

    got = run(fast)
    assert calls[kernel] == 4  # 2 layers x 2 windows
    assert_same(got, run(plain))


@pytest.mark.parametrize("kernel", FAST)
def test_evaluation_without_grad_matches_the_loop(kernel, calls):
    fast, plain = stacked(kernel, MODEL_CASES["nd"]), stacked("loop", MODEL_CASES["nd"])
    x = torch.randint(0, 17, (3, 8), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        fast.eval(), plain.eval()
        got, want = fast(x, fast.zero_state(3)), plain(x, plain.zero_state(3))
    assert calls[kernel] == 2
    assert_same((got.logits, *got.state[1]), (want.logits, *want.state[1]))


def test_baseline_scrn_uses_the_configured_kernel(calls):
    torch.manual_seed(8)
    cfg = ModelConfig(arch="scrn-baseline", hidden=5, context=3, alpha=0.95, recurrence_impl="tanh-rnn")
    model = build_model(cfg, 11)
    loop = BaselineSCRN(11, 5, 3, 0.95, "loop")
    loop.load_state_dict(model.state_dict())
    x = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(9))
    assert_same(model(x, model.zero_state(2)).logits.unsqueeze(0), loop(x, loop.zero_state(2)).logits.unsqueeze(0))
    assert calls["tanh-rnn"] == 1


def test_scan_gradcheck():
    gen = torch.Generator().manual_seed(10)
    a, h0, W = leaf(2, 4, 3, gen=gen), torch.rand(2, 3, generator=gen).requires_grad_(), leaf(3, 3, gen=gen)
    assert torch.autograd.gradcheck(recurrence.scan, (a, h0, W))


# ---------------------------------------------------------------------------- initialisation


def test_fresh_modules_are_initialised_without_advancing_the_global_rng():
    torch.manual_seed(11)
    before = torch.get_rng_state()
    layer = SCRNLayer(7, 6, 3, 0.9)
    assert torch.equal(torch.get_rng_state(), before), "building must not change the seeded init_uniform draws"
    for name, p in layer.named_parameters():
        bound = 1 / 6**0.5
        assert torch.isfinite(p).all() and p.abs().max() <= bound and p.std() > 0.1 * bound, name


def test_recurrence_impl_is_part_of_the_model_config():
    cfg = ModelConfig(arch="scrn", hidden=6, context=3, alpha=0.9, layers=2)
    assert cfg.recurrence_impl == "auto"
    model = build_model(dataclasses.replace(cfg, recurrence_impl="loop"), 13)
    assert {layer.recurrence.impl for layer in model.layers} == {"loop"}


# ---------------------------------------------------------------------------- the Triton kernels
# recurrence_impl=triton runs on CUDA (auto picks it for every 750-wide run there); the GPU check
# (benchmarks/gpu_exactness.py) compares it on a GPU. Here: its refusal of a CPU tensor, and its
# arithmetic under Triton's CPU interpreter (one program, so the grid barrier never waits), from
# the triton wheel that requirements.lock pins: CI fails rather than skip without it.


def test_triton_kernel_refuses_a_cpu_tensor_with_the_fix(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a, h0, W = torch.zeros(1, 2, 3), torch.zeros(1, 3), torch.zeros(3, 3)
    try:
        import triton  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="needs the triton package.*use auto, scan or tanh-rnn"):
            recurrence.RUNNERS["triton"](a, h0, W)
        return
    with pytest.raises(ValueError, match="CUDA tensors only.*use auto, scan or tanh-rnn"):
        recurrence.RUNNERS["triton"](a, h0, W)


# Run with TRITON_INTERPRET=1 (read when the kernels are defined, so in a fresh process). Every
# mask mode of hidden_states against the float64 plain loop, values and gradients of pre, h0 and
# R; both kernels must have run (a spy on their launches). float32 goes through tl.dot.
INTERPRETED = """
import torch
from pipeline.models import triton_recurrence as tr
from pipeline.models.scrn import hidden_states

launched, launch = [], tr._launch
tr._launch = lambda kernel, *args: launched.append(kernel) or launch(kernel, *args)

def values_and_grads(impl, dtype, pre, h0, R, mask, tied):
    leaves = [t.to(dtype).requires_grad_() for t in (pre, h0, R)]
    h, h_raw = hidden_states(*leaves, None if mask is None else mask.to(dtype), tied, impl)
    weights = torch.linspace(-1, 1, h.numel(), dtype=dtype).reshape(h.shape)
    loss = (h * weights).sum() + h_raw.square().sum()
    return [h, h_raw, *torch.autograd.grad(loss, leaves)]

cases = [(torch.float64, mode, dict(rtol=1e-12, atol=1e-13)) for mode in ("none", "tied", "independent")]
cases.append((torch.float32, "tied", dict(rtol=1e-5, atol=1e-6)))
for dtype, mode, tol in cases:
    for batch, steps, d in ((3, 7, 5), (2, 4, 40)):  # 40: a partial column block
        gen = torch.Generator().manual_seed(d)
        pre = torch.randn(batch, steps, d, generator=gen, dtype=torch.float64)
        h0 = torch.rand(batch, d, generator=gen, dtype=torch.float64)
        R = torch.randn(d, d, generator=gen, dtype=torch.float64) / d ** 0.5
        units = torch.arange(d)
        mask = None if mode == "none" else torch.where(units % 3 == 1, 0.0, 1.5).double()[None]
        if mode == "tied":  # carried from the previous window: masked with that window's mask
            h0 = h0 * torch.where(units % 3 == 2, 0.0, 1.5).double()
        reference = values_and_grads("loop", torch.float64, pre, h0, R, mask, mode != "independent")
        before = len(launched)
        got = values_and_grads("triton", dtype, pre, h0, R, mask, mode != "independent")
        assert launched[before:] == [tr._forward_kernel, tr._backward_kernel], (mode, dtype)
        for value, want in zip(got, reference):
            torch.testing.assert_close(value.double(), want, **tol)
print("interpreted triton kernels match the float64 loop")
"""


def test_triton_kernels_under_the_interpreter_match_the_float64_loop():
    try:
        import triton  # noqa: F401
    except ImportError:
        message = "Triton is not installed: install requirements.lock into .venv (bash scripts/setup.sh)"
        if under_ci():
            pytest.fail(message + "; under CI the Triton kernels must be checked")
        pytest.skip(message)
    path = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]  # keep a Triton found there
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(filter(None, path))}
    # no timeout: one program never waits at the barrier, and a loaded machine must not fail the test
    proc = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "match the float64 loop" in proc.stdout


@pytest.mark.gpu
def test_every_kernel_on_cuda_matches_the_float64_loop():
    """On a GPU, benchmarks/gpu_exactness.py: every kernel (scan, cuDNN's tanh RNN, Triton) in
    float64 and float32, the whole small and medium models and the CUDA-graph step, each against
    the plain loop. It prints a FAIL line and exits 1 on any mismatch."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_exactness", "--device", "cuda"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "FAIL" not in proc.stdout, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_auto_on_cuda_picks_triton_only_above_cudnns_persistent_width(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(recurrence, "triton_installed", lambda: True)
    assert recurrence.default_kernel(cuda, 750) == "triton"
    assert recurrence.default_kernel(cuda, recurrence.CUDNN_PERSISTENT_MAX_WIDTH) == "tanh-rnn"
    assert recurrence.default_kernel(cpu, 750) == "scan"
    assert select_kernel("auto", cuda, None, 750) == "triton"
    monkeypatch.setattr(recurrence, "triton_installed", lambda: False)
    assert recurrence.default_kernel(cuda, 750) == "tanh-rnn"
