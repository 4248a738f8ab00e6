"""Figure 2's computation on a model whose hidden states can be written down by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.analysis import hidden_dynamics as hd
from pipeline.config import ModelConfig
from pipeline.models import build_model


def hand_model(a: float = 2.0) -> torch.nn.Module:
    """One SCRN layer, d_h = 2: E = I, A = a I, and B, P, R, b all zero, so h_t = sigmoid(a x_t)
    depends on the current word alone: word 0 -> (s(a), 1/2), word 1 -> (1/2, s(a))."""
    model = build_model(ModelConfig(arch="scrn", hidden=2, context=1, alpha=0.5, layers=1), vocab_size=2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embedding.weight.copy_(torch.eye(2))
        model.layers[0].A.copy_(a * torch.eye(2))
    return model.eval()


def test_deltas_by_hand():
    a, s = 2.0, 1 / (1 + math.exp(-2.0))
    ids = np.array([0, 0, 1, 1, 0])
    deltas = hd.l1_deltas(hd.top_hidden_states(hand_model(a), ids, window=2))  # windows of 2: state carried
    jump = 2 * (s - 0.5)  # moving between (s, 1/2) and (1/2, s)
    np.testing.assert_allclose(deltas, [s + 0.5, 0.0, jump, 0.0, jump], rtol=1e-6)


def test_span_deltas_read_their_context():
    ids = np.array([0, 0, 1, 1, 0])
    model = hand_model()
    np.testing.assert_allclose(
        hd.span_deltas(model, ids, 2, 5, context=1), hd.l1_deltas(hd.top_hidden_states(model, ids))[2:], rtol=1e-6
    )


def test_frequency_split_and_example_sentences():
    train = np.array([0] * 5 + [1] * 3 + [2])
    ids = np.array([0, 0, 1, 2, 2])
    deltas = np.array([90.0, 1.0, 3.0, 5.0, 7.0])  # the first: the jump from the zero state, left out
    split = hd.frequency_split(ids, deltas, train, top=2)
    assert (split.top_mean, split.rest_mean, split.top_tokens, split.rest_tokens) == (2.0, 6.0, 2, 2)
    assert split.ratio == pytest.approx(3.0)
    vocab = ["<eos>", "a", "government", "b"]
    stream = np.array([1, 1, 0, 1, 3, 2, 0, 3, 3, 0])
    assert hd.example_sentences(stream, vocab, count=2, min_len=2, max_len=5) == [(3, 6), (0, 2)]
