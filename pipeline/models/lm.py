"""The stacked language model of Section 4: embedding -> 2 recurrent layers -> softmax.

    w_t = x_t E                                    (6)  dense embedding, d_emb = d_h
    y_t^(l) = [s_t^(l); h_t^(l)]   (SCRN layers)   (7)  or h_t^(l) for LSTM layers
    p(w_{t+1}) = softmax(s_t U + h_t V + b)        (8)  over the top layer's output

Regularisers, each a setting of the run (``pipeline.config.DropoutConfig``, ``SobolevConfig``),
are built once in ``__init__`` as the modules of pipeline/models/dropout.py:

- weight tying (``tie``), V = E^T (4.4); U and the output bias stay untied, as in the authors' code;
- naive dropout (4.2, ``dropout.regime: naive``): fresh masks per step on the embedding (p_i)
  and on each layer's output (p_o), one mask over the whole [s; h];
- variational dropout (4.3, ``regime: variational``): one mask per window on the embedding
  (p_i), on h (p_h) and, for the SCRN, an output-only mask on s (p_o). ``vd_h_mask: tied``
  (authors' code, Inan et al.) uses the h mask for the recurrence, the next layer and the
  softmax, and the masked h is what carries into the next window (so the first step of a window
  sees the previous window's mask); ``independent`` (eq. (9) read literally, Gal and
  Ghahramani) masks h_{t-1} in the recurrence with p_h and the whole output with a separate p_o
  mask. The recurrent s is never dropped;
- ablations (Table 5): ``dropout.context: false`` keeps s out of the output dropout,
  ``context_in_softmax: false`` predicts from h alone (softmax(h V + b));
- the Sobolev penalty (Section 7) on the SCRN layers named in ``sobolev.layers`` (all by default).

The masks are drawn in the order of the forward pass: embedding, then per layer the h mask and
the output masks (h before s), so a seeded run draws the same masks whatever builds the model.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import DropoutConfig, ModelConfig
from pipeline.models.common import Features, LanguageModel
from pipeline.models.dropout import NaiveDropout, OutputDropout, VariationalDropout
from pipeline.models.lstm import LSTMLayer
from pipeline.models.scrn import SCRNLayer
from pipeline.models.sobolev import sobolev_penalty


class StackedLM(LanguageModel):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.is_scrn = cfg.arch == "scrn"
        d_h, d_s = cfg.hidden, (cfg.context if self.is_scrn else 0)
        self.d_h, self.d_s = d_h, d_s
        self.embedding = nn.Embedding(vocab_size, d_h)
        if self.is_scrn:
            dims = [d_h] + [d_s + d_h] * (cfg.layers - 1)
            self.layers = nn.ModuleList(SCRNLayer(d, d_h, d_s, cfg.alpha, cfg.recurrence_impl) for d in dims)
        else:
            self.layers = nn.ModuleList(LSTMLayer(d_h, d_h) for _ in range(cfg.layers))
        self.uses_context = self.is_scrn and cfg.context_in_softmax
        # output weights in F.linear's layout: [|W|, d_in]
        self.U = nn.Parameter(torch.empty(vocab_size, d_s)) if self.uses_context else None
        self.V = None if cfg.tie else nn.Parameter(torch.empty(vocab_size, d_h))
        self.out_bias = nn.Parameter(torch.empty(vocab_size))
        sob = cfg.sobolev
        self.sobolev_layers = (
            set(range(1, cfg.layers + 1) if sob.layers is None else sob.layers) if sob.beta > 0 else set()
        )
        self.input_dropout, self.recurrent_dropout, self.output_dropout = regularisers(cfg.dropout)
        self.h_mask_tied = cfg.dropout.vd_h_mask == "tied"

    def zero_state(self, batch_size: int, device=None):
        dtype = self.embedding.weight.dtype
        return tuple(layer.zero_state(batch_size, device, dtype) for layer in self.layers)

    def output_weight(self) -> torch.Tensor:
        """[U; V] as one matrix, so the softmax input [s; h] needs a single matmul."""
        V = self.embedding.weight if self.cfg.tie else self.V
        return torch.cat([self.U, V], dim=1) if self.uses_context else V

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.output_weight(), self.out_bias

    def features(self, x: torch.Tensor, state) -> Features:
        y = self.input_dropout(self.embedding(x))
        new_state, penalty = [], None
        for index, (layer, layer_state) in enumerate(zip(self.layers, state), start=1):
            h_mask = (
                self.recurrent_dropout.mask(x.shape[0], self.d_h, y) if self.recurrent_dropout is not None else None
            )
            if self.is_scrn:
                s, h, h_raw = layer(y, layer_state, h_mask, self.h_mask_tied)
                new_state.append((s[:, -1], h[:, -1]))
                if self.training and index in self.sobolev_layers:
                    term = sobolev_penalty(h_raw, layer.R)
                    penalty = term if penalty is None else penalty + term
            else:
                h, carried = layer(y, layer_state, h_mask, self.h_mask_tied)
                new_state.append(carried)
                s = None
            y = self.output_dropout(s, h)
        top = y if self.uses_context or not self.is_scrn else y[..., self.d_s :]
        if penalty is not None:
            penalty = self.cfg.sobolev.beta * penalty
        return Features(top, tuple(new_state), penalty)


def regularisers(drop: DropoutConfig) -> tuple[nn.Module, VariationalDropout | None, OutputDropout]:
    """(embedding dropout, the mask source of the recurrent h or None, each layer's output dropout)."""
    if drop.regime == "variational":
        output = VariationalDropout(drop.p_o, drop.vd_mask_scope)
        return (
            VariationalDropout(drop.p_i, drop.vd_mask_scope),
            VariationalDropout(drop.p_h, drop.vd_mask_scope),
            OutputDropout(output, drop_h=drop.vd_h_mask != "tied", drop_s=drop.context, joint=False),
        )
    p_i, p_o = (drop.p_i, drop.p_o) if drop.regime == "naive" else (0.0, 0.0)
    return NaiveDropout(p_i), None, OutputDropout(NaiveDropout(p_o), drop_h=True, drop_s=drop.context, joint=True)
