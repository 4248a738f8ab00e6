"""The two dropout regimes of the paper (Section 4) as small modules, built once per model.

Naive dropout (4.2, Zaremba et al.): a fresh mask for every element of a [batch, T, dim]
tensor, i.e. new masks at every time step; never on recurrent connections.

Variational dropout (4.3, Gal & Ghahramani): one mask per BPTT window, reused at every step,
as salesforce/awd-lstm-lm's ``LockedDropout``. ``scope`` says who shares it:

- ``batch``: one mask for the whole minibatch, shape [1, dim]; what the authors' TF code does
  (``vd_dropout.py``: noise of shape [1, dim]);
- ``sequence``: one mask per sequence, shape [batch, dim]; Gal & Ghahramani's formulation.

All masks are inverted dropout (kept units scaled by 1/(1-p)), so evaluation needs no rescaling;
outside training every module here is the identity and draws nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCOPES = ("batch", "sequence")


class NaiveDropout(nn.Module):
    """A fresh per-element, per-step mask (a no-op at p == 0 or outside training)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training) if self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class VariationalDropout(nn.Module):
    """One mask per window, shared by every time step of ``x`` [batch, T, dim]."""

    def __init__(self, p: float, scope: str):
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"variational mask scope must be one of {SCOPES}, got {scope!r}")
        self.p, self.scope = p, scope

    def mask(self, batch: int, dim: int, like: torch.Tensor) -> torch.Tensor | None:
        """A [1 or batch, dim] mask for one window (``like``'s device and dtype), or None when
        nothing is dropped: p == 0, or outside training."""
        if not self.training or self.p <= 0:
            return None
        rows = 1 if self.scope == "batch" else batch
        keep = torch.empty(rows, dim, device=like.device, dtype=like.dtype).bernoulli_(1.0 - self.p)
        return keep / (1.0 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_over_time(x, self.mask(x.shape[0], x.shape[-1], x))

    def extra_repr(self) -> str:
        return f"p={self.p}, scope={self.scope}"


def apply_over_time(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply a per-window mask to every step of ``x`` [batch, T, dim]."""
    return x if mask is None else x * mask[:, None, :]


class OutputDropout(nn.Module):
    """Dropout on one layer's output: [s; h] for the SCRN, h for the LSTM (``s`` None).

    ``dropout`` drops h when ``drop_h`` and s when ``drop_s``: ``joint``, both at once as one
    tensor [s; h] (naive: one fresh mask over the whole output), else each part on its own, h
    first (variational: a per-window mask of each part's width).
    """

    def __init__(self, dropout: nn.Module, drop_h: bool, drop_s: bool, joint: bool):
        super().__init__()
        self.dropout, self.drop_h, self.drop_s, self.joint = dropout, drop_h, drop_s, joint

    def forward(self, s: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        drop_s = s is not None and self.drop_s
        if drop_s and self.joint:
            return self.dropout(torch.cat([s, h], dim=-1))
        if self.drop_h:
            h = self.dropout(h)
        if drop_s:
            s = self.dropout(s)
        return h if s is None else torch.cat([s, h], dim=-1)

    def extra_repr(self) -> str:
        return f"drop_h={self.drop_h}, drop_s={self.drop_s}, joint={self.joint}"
