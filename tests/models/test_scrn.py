"""The SCRN layer against a naive float64 loop over eqs. (1)-(2), values and gradients."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.scrn import BaselineSCRN, SCRNRecurrence, context_states

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def naive_scrn(xb, xa, s0, h0, P, R, b, alpha):
    """Eqs. (1)-(2) one step at a time, exactly as written in the paper."""
    s, h, ss, hs = s0, h0, [], []
    for t in range(xb.shape[1]):
        s = (1 - alpha) * xb[:, t] + alpha * s
        h = torch.sigmoid(xa[:, t] + s @ P + h @ R + b)
        ss.append(s)
        hs.append(h)
    return torch.stack(ss, 1), torch.stack(hs, 1)


def make_layer(hidden=5, context=3, alpha=0.9, seed=0):
    torch.manual_seed(seed)
    layer = SCRNRecurrence(hidden, context, alpha)
    for p in layer.parameters():
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return layer


def test_context_states_match_recursion_with_carried_state():
    torch.manual_seed(1)
    xb, s0 = torch.randn(4, 35, 6), torch.randn(4, 6)
    expected, s = [], s0
    for t in range(35):
        s = 0.05 * xb[:, t] + 0.95 * s
        expected.append(s)
    torch.testing.assert_close(context_states(xb, s0, 0.95), torch.stack(expected, 1), rtol=0, atol=1e-12)


def test_layer_values_and_gradients_match_naive_loop():
    layer = make_layer()
    torch.manual_seed(2)
    xb = torch.randn(3, 7, 3, requires_grad=True)
    xa = torch.randn(3, 7, 5, requires_grad=True)
    s0, h0 = torch.randn(3, 3, requires_grad=True), torch.rand(3, 5, requires_grad=True)
    weights = torch.randn(3, 7, 8)  # a generic downstream loss touching every s_t and h_t

    s, h, _ = layer(xb, xa, (s0, h0))
    loss = (torch.cat([s, h], -1) * weights).sum()
    grads = torch.autograd.grad(loss, [xb, xa, s0, h0, layer.P, layer.R, layer.b])

    s_ref, h_ref = naive_scrn(xb, xa, s0, h0, layer.P, layer.R, layer.b, layer.alpha)
    loss_ref = (torch.cat([s_ref, h_ref], -1) * weights).sum()
    grads_ref = torch.autograd.grad(loss_ref, [xb, xa, s0, h0, layer.P, layer.R, layer.b])

    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_layer_gradcheck():
    layer = make_layer(hidden=3, context=2)
    xb = torch.randn(2, 4, 2, requires_grad=True)
    xa = torch.randn(2, 4, 3, requires_grad=True)
    state = (torch.randn(2, 2, requires_grad=True), torch.rand(2, 3, requires_grad=True))
    assert torch.autograd.gradcheck(lambda *a: layer(a[0], a[1], (a[2], a[3]))[:2], (xb, xa, *state))


def test_hidden_update_uses_new_context_state():
    """h_1 must depend on x_1 through s_1 = (1-a) x_1 B (paper, authors' code), not on s_0 only."""
    layer = make_layer()
    xa = torch.zeros(1, 1, 5)
    s0, h0 = torch.zeros(1, 3), torch.zeros(1, 5)
    _, h_a, _ = layer(torch.zeros(1, 1, 3), xa, (s0, h0))
    _, h_b, _ = layer(torch.ones(1, 1, 3), xa, (s0, h0))
    assert not torch.allclose(h_a, h_b)


def test_baseline_model_output_and_state_carry():
    torch.manual_seed(3)
    model = BaselineSCRN(vocab_size=11, hidden=5, context=3, alpha=0.95)
    for p in model.parameters():
        torch.nn.init.uniform_(p, -0.3, 0.3)
    x = torch.randint(0, 11, (2, 8))
    state = model.zero_state(2)

    logits, _, penalty = model(x, state)
    assert penalty is None
    rec = model.recurrence
    s_ref, h_ref = naive_scrn(model.B(x), model.A(x), *state, rec.P, rec.R, rec.b, rec.alpha)
    d = model.decoder
    U, V = d.weight[:, :3].T, d.weight[:, 3:].T  # eq. (3): s U + h V + b_out
    torch.testing.assert_close(logits, s_ref @ U + h_ref @ V + d.bias, rtol=0, atol=1e-12)

    # two windows with the state carried equal one long window
    first, carried, _ = model(x[:, :5], state)
    second, _, _ = model(x[:, 5:], carried)
    torch.testing.assert_close(torch.cat([first, second], 1), logits, rtol=0, atol=1e-12)
