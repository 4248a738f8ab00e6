"""Semantics of each regime of Section 4, 6.1 and 7: what each switch drops, ties or removes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import DropoutConfig, ModelConfig, SobolevConfig
from pipeline.models import build_model, common, count_parameters, init_uniform, parameter_count
from pipeline.models import dropout as drop
from pipeline.models.lstm import LSTMLayer
from pipeline.models.scrn import SCRNLayer, hidden_states
from pipeline.models.sobolev import sobolev_penalty

V, D_H, D_S, B, T = 50, 12, 4, 3, 6


def scrn(seed=0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(arch="scrn", hidden=D_H, context=D_S, alpha=0.9, layers=2, **kw)
    model = build_model(cfg, V)
    init_uniform(model, 0.3)
    return model


def lstm(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="lstm", hidden=D_H, layers=2, **kw), V)
    init_uniform(model, 0.3)
    return model


def layer_inputs(model, x, windows=1):
    """What each recurrent layer received, per window: [[layer1 input, layer2 input], ...]."""
    seen = []
    hooks = [
        layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone())) for layer in model.layers
    ]
    state = model.zero_state(x.shape[0])
    states = []
    for _ in range(windows):
        out = model(x, state)
        state = out.state
        states.append(state)
    for h in hooks:
        h.remove()
    n = len(model.layers)
    return [seen[i * n : (i + 1) * n] for i in range(windows)], states, out


def zero_pattern(t: torch.Tensor) -> torch.Tensor:
    return t == 0


def spy_softmax_inputs(monkeypatch) -> list[torch.Tensor]:
    """Record what the output layer (F.linear in pipeline.models.common) receives: the top layer's
    output after dropout."""
    seen, linear = [], F.linear

    def spy(inputs, weight, bias=None):
        seen.append(inputs.detach().clone())
        return linear(inputs, weight, bias)

    monkeypatch.setattr(common.F, "linear", spy)
    return seen


X = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------- masks


def test_mask_shapes_by_scope():
    like = torch.zeros(())
    assert drop.VariationalDropout(0.5, "batch").mask(B, 7, like).shape == (1, 7)
    assert drop.VariationalDropout(0.5, "sequence").mask(B, 7, like).shape == (B, 7)
    assert drop.VariationalDropout(0.0, "batch").mask(B, 7, like) is None
    m = drop.VariationalDropout(0.3, "batch").mask(B, 1000, like)
    assert set(m.unique().tolist()) == {0.0, torch.tensor(1 / 0.7).item()}


def test_naive_masks_differ_across_steps_and_vd_masks_do_not():
    model = scrn(dropout=DropoutConfig(regime="naive", p_i=0.5, p_o=0.5))
    model.train()
    (inputs,), _, _ = layer_inputs(model, X)
    zeros = zero_pattern(inputs[0])  # embedding after dropout: [B, T, D_H]
    assert not torch.equal(zeros[:, 0], zeros[:, 1])  # fresh mask at every step
    assert not torch.equal(zeros[0], zeros[1])  # and for every sequence

    model = scrn(dropout=DropoutConfig(regime="variational", p_i=0.5, p_h=0.5, p_o=0.5))
    model.train()
    windows, _, _ = layer_inputs(model, X, windows=2)
    first, second = zero_pattern(windows[0][0]), zero_pattern(windows[1][0])
    assert first.any() and all(torch.equal(first[:, t], first[:, 0]) for t in range(T))  # constant over the window
    assert all(torch.equal(first[b], first[0]) for b in range(B))  # shared by the batch (authors' code)
    assert not torch.equal(first, second)  # redrawn for the next window


def test_naive_output_masks_are_fresh_per_step_between_layers_and_before_the_softmax(monkeypatch):
    model = scrn(dropout=DropoutConfig(regime="naive", p_o=0.5))  # p_i = 0: only the outputs
    model.train()
    softmax_inputs = spy_softmax_inputs(monkeypatch)
    (inputs,), _, _ = layer_inputs(model, X)
    assert not zero_pattern(inputs[0]).any()  # the embedding is untouched
    for output in (inputs[1], softmax_inputs[0]):  # layer 1's [s; h] and layer 2's
        zeros = zero_pattern(output)
        assert zeros.any() and not torch.equal(zeros[:, 0], zeros[:, 1])  # a fresh mask at every step
        assert zeros[..., :D_S].any() and zeros[..., D_S:].any()  # over s and h alike


@pytest.mark.parametrize("h_mask", ["tied", "independent"])
def test_vd_output_mask_drops_s_once_per_window_between_layers_and_before_the_softmax(monkeypatch, h_mask):
    model = scrn(dropout=DropoutConfig(regime="variational", p_o=0.5, vd_h_mask=h_mask))  # p_i = p_h = 0
    model.train()
    softmax_inputs = spy_softmax_inputs(monkeypatch)
    windows, states, _ = layer_inputs(model, X, windows=4)  # D_S = 4: one window may keep all of s
    for output in [w[1] for w in windows] + softmax_inputs:  # layer 1's [s; h] and layer 2's
        s_zeros, h_zeros = zero_pattern(output[..., :D_S]), zero_pattern(output[..., D_S:])
        assert all(torch.equal(s_zeros[:, t], s_zeros[:, 0]) for t in range(T))  # one mask per window
        # tied: h carries the p_h mask (p_h = 0 here); independent: h gets its own p_o mask
        assert h_zeros.any() == (h_mask == "independent")
    for outputs in ([w[1] for w in windows], softmax_inputs):
        assert any(zero_pattern(output[..., :D_S]).any() for output in outputs)
    assert not any(
        zero_pattern(layer_state[0]).any() for state in states for layer_state in state
    )  # s carried undropped


def test_sequence_scope_gives_each_sequence_its_own_mask():
    model = scrn(dropout=DropoutConfig(regime="variational", p_i=0.5, vd_mask_scope="sequence"))
    model.train()
    (inputs,), _, _ = layer_inputs(model, X)
    zeros = zero_pattern(inputs[0])
    assert all(torch.equal(zeros[:, t], zeros[:, 0]) for t in range(T))
    assert not all(torch.equal(zeros[b], zeros[0]) for b in range(B))


def test_vd_tied_h_mask_reaches_next_layer_and_carried_state_but_never_s():
    model = scrn(dropout=DropoutConfig(regime="variational", p_h=0.5))  # p_i = p_o = 0: only h is masked
    model.train()
    (inputs,), (state,), _ = layer_inputs(model, X)
    s_part, h_part = inputs[1][..., :D_S], inputs[1][..., D_S:]  # layer 1's output = layer 2's input
    assert not zero_pattern(s_part).any()  # s is not dropped (no output mask: p_o = 0)
    h_zeros = zero_pattern(h_part)
    assert h_zeros.any() and all(torch.equal(h_zeros[:, t], h_zeros[:, 0]) for t in range(T))
    s_carried, h_carried = state[0]
    assert torch.equal(h_carried, h_part[:, -1])  # the masked h is what carries over
    assert not zero_pattern(s_carried).any()  # the recurrent s is never dropped


def spy_masks(monkeypatch) -> list[torch.Tensor]:
    """Record every variational mask the model draws (in draw order, empty draws left out)."""
    drawn, draw = [], drop.VariationalDropout.mask

    def spy(self, *args):
        mask = draw(self, *args)
        if mask is not None:
            drawn.append(mask)
        return mask

    monkeypatch.setattr(drop.VariationalDropout, "mask", spy)
    return drawn


def test_vd_independent_masks_the_recurrence_only_with_p_h(monkeypatch):
    """Eq. (9) read literally: h_t = sigmoid(x_t A + s_t P + (h_{t-1} m) R + b) with the window's p_h
    mask m, and the layer passes on the unmasked [s; h] (p_o = 0)."""
    model = scrn(dropout=DropoutConfig(regime="variational", p_h=0.5, vd_h_mask="independent"))
    model.train()
    masks = spy_masks(monkeypatch)
    (inputs,), _, _ = layer_inputs(model, X)
    m = masks[0]  # layer 1's h mask: the first drawn (p_i = p_o = 0 draw none)
    assert len(masks) == 2 and m.shape == (1, D_H) and (m == 0).any() and (m != 0).any()
    layer, y = model.layers[0], inputs[0]
    rec = layer.recurrence
    s, h, expected = torch.zeros(B, D_S), torch.zeros(B, D_H), []
    with torch.no_grad():
        for t in range(T):
            s = (1 - rec.alpha) * y[:, t] @ layer.B + rec.alpha * s
            h = torch.sigmoid(y[:, t] @ layer.A + s @ rec.P + (h * m) @ rec.R + rec.b)
            expected.append(torch.cat([s, h], dim=-1))
    torch.testing.assert_close(inputs[1], torch.stack(expected, 1))


def test_hidden_states_mask_modes_against_manual_loop():
    torch.manual_seed(0)
    pre, h0, R = torch.randn(2, 4, 3), torch.rand(2, 3), torch.randn(3, 3)
    mask = torch.tensor([[2.0, 0.0, 2.0]])
    h_tied, raw = hidden_states(pre, h0, R, mask, mask_tied=True)
    h, expected = h0, []
    for t in range(4):
        h = torch.sigmoid(pre[:, t] + h @ R) * mask
        expected.append(h)
    torch.testing.assert_close(h_tied, torch.stack(expected, 1))
    torch.testing.assert_close(raw * mask[:, None], h_tied)
    h_ind, raw_ind = hidden_states(pre, h0, R, mask, mask_tied=False)
    h, expected = h0, []
    for t in range(4):
        h = torch.sigmoid(pre[:, t] + (h * mask) @ R)
        expected.append(h)
    torch.testing.assert_close(h_ind, torch.stack(expected, 1))
    assert h_ind is raw_ind


# ---------------------------------------------------------------------------- tying and ablations


def test_weight_tying_shares_the_embedding_storage():
    tied, untied = scrn(tie=True), scrn(tie=False)
    assert tied.V is None and count_parameters(untied) - count_parameters(tied) == V * D_H
    W = tied.output_weight()
    torch.testing.assert_close(W[:, D_S:], tied.embedding.weight)
    lm = lstm(tie=True)
    assert lm.output_weight() is lm.embedding.weight  # one storage, no copy
    # a word never seen at the input still gets an embedding gradient, through the softmax
    x = torch.zeros(B, T, dtype=torch.long)
    out = tied(x, tied.zero_state(B))
    F.cross_entropy(out.logits.reshape(-1, V), torch.full((B * T,), 7)).backward()
    assert tied.embedding.weight.grad[7].abs().sum() > 0


def test_no_context_in_softmax_removes_exactly_U():
    full, ablated = scrn(), scrn(context_in_softmax=False)
    assert ablated.U is None and count_parameters(full) - count_parameters(ablated) == V * D_S
    ablated.eval()
    assert ablated(X, ablated.zero_state(B)).logits.shape == (B, T, V)
    # the logits are h V + b: changing the top layer's s cannot change them
    with torch.no_grad():
        ablated.layers[1].recurrence.P.zero_()  # s no longer reaches h ...
        before = ablated(X, ablated.zero_state(B)).logits
        ablated.layers[1].B.mul_(3.0)  # ... so scaling s changes nothing downstream
        torch.testing.assert_close(ablated(X, ablated.zero_state(B)).logits, before)


def test_no_context_dropout_drops_h_only():
    model = scrn(dropout=DropoutConfig(regime="naive", p_o=0.5, context=False))
    model.train()
    (inputs,), _, _ = layer_inputs(model, X)
    assert not zero_pattern(inputs[1][..., :D_S]).any() and zero_pattern(inputs[1][..., D_S:]).any()
    model = scrn(dropout=DropoutConfig(regime="variational", p_h=0.5, p_o=0.5, context=False))
    model.train()
    (inputs,), _, _ = layer_inputs(model, X)
    assert not zero_pattern(inputs[1][..., :D_S]).any() and zero_pattern(inputs[1][..., D_S:]).any()


def test_without_regularization_training_mode_computes_the_evaluation_logits():
    model = scrn()
    model.train()
    trained = model(X, model.zero_state(B))
    model.eval()
    assert trained.penalty is None
    torch.testing.assert_close(trained.logits, model(X, model.zero_state(B)).logits, rtol=0, atol=0)


@pytest.mark.parametrize(
    "arch, dropout",
    [
        ("scrn", DropoutConfig(regime="naive", p_i=0.5, p_o=0.4)),
        ("scrn", DropoutConfig(regime="variational", p_i=0.5, p_h=0.3, p_o=0.4)),
        ("scrn", DropoutConfig(regime="variational", p_i=0.5, p_h=0.3, p_o=0.4, vd_h_mask="independent")),
        ("lstm", DropoutConfig(regime="naive", p_i=0.5, p_o=0.4)),
        ("lstm", DropoutConfig(regime="variational", p_i=0.5, p_h=0.3, p_o=0.4)),
    ],
)
def test_evaluation_with_dropout_equals_the_same_weights_without_dropout(arch, dropout):
    """Inverted dropout scales at training time only: evaluation must neither drop nor rescale."""
    build = scrn if arch == "scrn" else lstm
    with_dropout, without = build(dropout=dropout), build()
    without.load_state_dict(with_dropout.state_dict())
    with_dropout.eval(), without.eval()
    torch.testing.assert_close(
        with_dropout(X, with_dropout.zero_state(B)).logits, without(X, without.zero_state(B)).logits, rtol=0, atol=0
    )


# ---------------------------------------------------------------------------- Sobolev


def test_sobolev_closed_form_equals_autograd_jacobian():
    torch.manual_seed(0)
    dtype = torch.float64
    layer = SCRNLayer(5, 4, 3, 0.9).to(dtype)
    for p in layer.parameters():
        torch.nn.init.uniform_(p, -1, 1)
    y = torch.randn(2, 5, 5, dtype=dtype)
    state = (torch.randn(2, 3, dtype=dtype), torch.rand(2, 4, dtype=dtype))
    s, h, h_raw = layer(y, state)
    rec = layer.recurrence
    a = torch.matmul(y, layer.A) + torch.matmul(s, rec.P) + rec.b  # a_t = x_t A + s_t P (+ b)
    h_prev = torch.cat([state[1][:, None], h[:, :-1]], dim=1)
    total = 0.0
    for b in range(2):
        for t in range(5):
            J = torch.autograd.functional.jacobian(lambda hp: torch.sigmoid(a[b, t] + hp @ rec.R), h_prev[b, t])
            total += (J**2).sum()
    torch.testing.assert_close(sobolev_penalty(h_raw, rec.R), total / 2, rtol=1e-12, atol=0)


def test_model_penalty_is_beta_times_the_chosen_layers():
    base = dict(dropout=DropoutConfig())
    plain = scrn(**base)
    both = scrn(**base, sobolev=SobolevConfig(beta=0.1))
    second = scrn(**base, sobolev=SobolevConfig(beta=0.1, layers=(2,)))
    plain.train(), both.train(), second.train()
    assert plain(X, plain.zero_state(B)).penalty is None
    seen = {}
    for i, layer in enumerate(both.layers, start=1):
        layer.register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(i, sobolev_penalty(out[2], m.R)))
    p_both = both(X, both.zero_state(B)).penalty
    torch.testing.assert_close(p_both, 0.1 * (seen[1] + seen[2]))
    torch.testing.assert_close(second(X, second.zero_state(B)).penalty, 0.1 * seen[2])
    both.eval()
    assert both(X, both.zero_state(B)).penalty is None  # a training loss term only


# ---------------------------------------------------------------------------- LSTM


@pytest.mark.parametrize("tied", [True, False])
def test_lstm_loop_equals_nn_lstm_without_dropout(tied):
    torch.manual_seed(0)
    layer = LSTMLayer(5, 4).double()
    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    h0, c0 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ref, (h_ref, c_ref) = layer(x, (h0, c0))  # nn.LSTM
    out, (h, c) = layer(x, (h0, c0), h_mask=torch.ones(1, 4, dtype=torch.float64), h_mask_tied=tied)  # the loop
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close((h, c), (h_ref, c_ref), rtol=1e-12, atol=1e-12)
    g_ref = torch.autograd.grad(ref.sum(), [x, *layer.parameters()])
    g = torch.autograd.grad(out.sum(), [x, *layer.parameters()])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tied", [True, False])
def test_lstm_h_mask_cuts_the_recurrent_weights_of_dropped_units(tied):
    """A unit the h mask drops cannot reach the next step: its recurrent weights have no effect.
    Tied, the masked h is also the output (and the carried h0 had the same mask); independent,
    the output keeps the unit."""
    torch.manual_seed(0)
    layer = LSTMLayer(5, 4).double()
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    mask = torch.tensor([[2.0, 0.0, 2.0, 2.0]], dtype=torch.float64)  # drops unit 1
    h0, c0 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    if tied:
        h0 = h0 * mask

    def run(m):
        return layer(x, (h0, c0), h_mask=m, h_mask_tied=tied)[0]

    masked, unmasked = run(mask), run(torch.ones_like(mask))
    assert (masked[..., 1] == 0).all() if tied else (masked[..., 1] != 0).all()
    with torch.no_grad():
        layer.rnn.weight_hh_l0[:, 1] += 1.0  # unit 1's weights into every gate of the next step
    torch.testing.assert_close(run(mask), masked, rtol=1e-14, atol=1e-14)
    assert not torch.allclose(run(torch.ones_like(mask)), unmasked)


def test_lstm_variational_masks_reach_the_recurrence():
    model = lstm(dropout=DropoutConfig(regime="variational", p_h=0.5, vd_mask_scope="sequence"))
    model.train()
    (inputs,), _, _ = layer_inputs(model, X)
    zeros = zero_pattern(inputs[1])  # tied: layer 2 sees the masked h of layer 1
    assert zeros.any() and all(torch.equal(zeros[:, t], zeros[:, 0]) for t in range(T))


# ---------------------------------------------------------------------------- parameter counts


def scrn_count(vocab: int, h: int, s: int, layers: int, tie: bool = False) -> int:
    """Eqs. (1)-(3) stacked: per layer A (d_in x h), B (d_in x s), P (s x h), R (h x h), b (h), with
    d_in = h for the first layer (the embedding) and s + h above; softmax U, V (unless tied), bias."""
    d_in = [h] + [s + h] * (layers - 1)
    recurrent = sum(d * (h + s) for d in d_in) + layers * (s * h + h * h + h)
    return vocab * h + recurrent + vocab * s + (0 if tie else vocab * h) + vocab


def baseline_count(vocab: int, h: int, s: int) -> int:
    """One-hot inputs: A (|W| x h) and B (|W| x s) are lookups; then P, R, b and the [U; V] softmax with bias."""
    return vocab * (h + s) + s * h + h * h + h + (s + h) * vocab + vocab


def lstm_count(vocab: int, h: int, layers: int, tie: bool = False, biases: int = 2) -> int:
    """Four gates of [x; h] -> h per layer, ``biases`` bias vectors each (TF's layout has 1, nn.LSTM 2)."""
    return vocab * h + layers * (4 * h * 2 * h + biases * 4 * h) + (0 if tie else vocab * h) + vocab


@pytest.mark.parametrize(
    "cfg, vocab, paper_layout, authors_count",
    [
        (dict(arch="scrn", hidden=240, context=40, alpha=0.9, layers=2), 10000, scrn_count(10000, 240, 40, 2), 5.49e6),
        (
            dict(arch="scrn", hidden=240, context=40, alpha=0.9, layers=2, tie=True),
            10000,
            scrn_count(10000, 240, 40, 2, tie=True),
            3.09e6,
        ),
        (
            dict(arch="scrn", hidden=750, context=120, alpha=0.9, layers=2),
            10000,
            scrn_count(10000, 750, 120, 2),
            18.9e6,
        ),
        (
            dict(arch="scrn", hidden=750, context=120, alpha=0.9, layers=2, tie=True),
            10000,
            scrn_count(10000, 750, 120, 2, tie=True),
            11.4e6,
        ),
        (dict(arch="scrn", hidden=240, context=40, alpha=0.9, layers=2), 33278, scrn_count(33278, 240, 40, 2), 17.6e6),
        (
            dict(arch="scrn", hidden=750, context=120, alpha=0.9, layers=2, tie=True),
            33278,
            scrn_count(33278, 750, 120, 2, tie=True),
            31.7e6,
        ),
        (dict(arch="scrn-baseline", hidden=40, context=10, alpha=0.95), 10000, baseline_count(10000, 40, 10), 1.01e6),
        (dict(arch="lstm", hidden=200, layers=2), 10000, lstm_count(10000, 200, 2), 4.65e6),
        (dict(arch="lstm", hidden=650, layers=2, tie=True), 10000, lstm_count(10000, 650, 2, tie=True), 13.3e6),
        (dict(arch="lstm", hidden=650, layers=2, tie=True), 33278, lstm_count(33278, 650, 2, tie=True), 28.4e6),
    ],
)
def test_parameter_counts_are_exactly_the_layer_shapes_and_round_to_the_authors_counts(
    cfg, vocab, paper_layout, authors_count
):
    """Exact against the shapes of eqs. (1)-(3) (one missing matrix, even P of the 40/10 baseline,
    fails); the authors' counts, computed from their TF code's shapes, are given to 3 significant
    figures. nn.LSTM has two bias vectors per layer where TF has one: its count is the TF layout's
    plus 4 x hidden per layer."""
    model = ModelConfig(**cfg)
    assert parameter_count(model, vocab) == paper_layout
    tf_layout = paper_layout - (cfg["layers"] * 4 * cfg["hidden"] if cfg["arch"] == "lstm" else 0)
    assert float(f"{tf_layout:.3g}") == authors_count
