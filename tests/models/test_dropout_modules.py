"""The regularisers of pipeline/models/dropout.py as the stacked LM builds them: every regime's
forward equals the paper's recipe written out step by step, with the masks drawn from the same
generator in the documented order (embedding; then per layer the h mask and the output masks, h
before s). A seeded run's numbers depend on that order, so any change to it fails here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import DropoutConfig, ModelConfig
from pipeline.models import build_model, init_uniform
from pipeline.models.dropout import NaiveDropout, OutputDropout, VariationalDropout

V, D_H, D_S, B, T = 40, 10, 4, 3, 5
X = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(1))


def model_for(arch: str, dropout: DropoutConfig, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch=arch,
        hidden=D_H,
        context=D_S if arch == "scrn" else 0,
        alpha=0.9 if arch == "scrn" else 0.0,
        layers=2,
        dropout=dropout,
        **kw,
    )
    model = build_model(cfg, V).double()
    init_uniform(model, 0.3)
    return model.train()


def mask(rows: int, dim: int, p: float) -> torch.Tensor:
    """A variational mask drawn as the paper's recipe does: keep with 1 - p, scale by 1/(1-p)."""
    return torch.empty(rows, dim, dtype=torch.float64).bernoulli_(1.0 - p) / (1.0 - p)


def by_hand(model, drop: DropoutConfig) -> torch.Tensor:
    """The logits of one window, every regulariser written out in the order of Section 4."""
    variational = drop.regime == "variational"
    tied = drop.vd_h_mask == "tied"
    rows = 1 if drop.vd_mask_scope == "batch" else B
    y = model.embedding(X)
    y = y * mask(rows, D_H, drop.p_i)[:, None, :] if variational else F.dropout(y, drop.p_i)
    for layer, layer_state in zip(model.layers, model.zero_state(B)):
        h_mask = mask(rows, D_H, drop.p_h) if variational else None
        if model.is_scrn:
            s, h, _ = layer(y, layer_state, h_mask, tied)
        else:
            h, _ = layer(y, layer_state, h_mask, tied)
            s = None
        if variational:  # each part its own mask, h first; a tied h was masked in the recurrence
            if not tied:
                h = h * mask(rows, D_H, drop.p_o)[:, None, :]
            if s is not None and drop.context:
                s = s * mask(rows, D_S, drop.p_o)[:, None, :]
            y = h if s is None else torch.cat([s, h], dim=-1)
        elif s is not None and drop.context:  # naive: one fresh mask over the whole [s; h]
            y = F.dropout(torch.cat([s, h], dim=-1), drop.p_o)
        else:
            h = F.dropout(h, drop.p_o)
            y = h if s is None else torch.cat([s, h], dim=-1)
    return F.linear(y, model.output_weight(), model.out_bias)


REGIMES = {
    "naive": DropoutConfig(regime="naive", p_i=0.3, p_o=0.4),
    "naive-no-context": DropoutConfig(regime="naive", p_i=0.3, p_o=0.4, context=False),
    "vd-tied": DropoutConfig(regime="variational", p_i=0.3, p_h=0.2, p_o=0.4),
    "vd-independent": DropoutConfig(regime="variational", p_i=0.3, p_h=0.2, p_o=0.4, vd_h_mask="independent"),
    "vd-independent-no-context": DropoutConfig(
        regime="variational", p_i=0.3, p_h=0.2, p_o=0.4, vd_h_mask="independent", context=False
    ),
    "vd-sequence": DropoutConfig(regime="variational", p_i=0.3, p_h=0.2, p_o=0.4, vd_mask_scope="sequence"),
}


@pytest.mark.parametrize("arch", ["scrn", "lstm"])
@pytest.mark.parametrize("name", sorted(REGIMES))
def test_forward_draws_the_masks_of_the_recipe_in_its_order(arch, name):
    drop = REGIMES[name]
    model = model_for(arch, drop)
    torch.manual_seed(11)
    got = model(X, model.zero_state(B)).logits
    next_got = torch.rand(())
    torch.manual_seed(11)
    want = by_hand(model, drop)
    assert torch.equal(got, want) and torch.equal(torch.rand(()), next_got)  # the same draws, and no more


@pytest.mark.parametrize("name", sorted(REGIMES))
def test_evaluation_draws_nothing_and_drops_nothing(name):
    model = model_for("scrn", REGIMES[name]).eval()
    plain = model_for("scrn", DropoutConfig()).eval()
    torch.manual_seed(5)
    got = model(X, model.zero_state(B)).logits
    assert torch.equal(got, plain(X, plain.zero_state(B)).logits)
    after = torch.rand(())
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(()))  # the generator did not move


def test_the_regularisers_are_modules_built_from_the_config():
    naive = model_for("scrn", REGIMES["naive-no-context"])
    assert isinstance(naive.input_dropout, NaiveDropout) and naive.input_dropout.p == 0.3
    assert naive.recurrent_dropout is None
    assert isinstance(naive.output_dropout, OutputDropout) and not naive.output_dropout.drop_s
    vd = model_for("scrn", REGIMES["vd-sequence"])
    assert isinstance(vd.input_dropout, VariationalDropout) and vd.input_dropout.scope == "sequence"
    assert vd.recurrent_dropout.p == 0.2 and vd.output_dropout.dropout.p == 0.4
    none = model_for("scrn", DropoutConfig(regime="none", p_i=0.5, p_o=0.5))  # rates of no regime drop nothing
    assert none.input_dropout.p == 0.0 and none.output_dropout.dropout.p == 0.0
    assert "VariationalDropout(p=0.3, scope=sequence)" in repr(vd)
    with pytest.raises(ValueError, match="scope must be one of"):
        VariationalDropout(0.5, "window")
