"""Dropout masks for the two regimes of the paper (Section 4).

Naive dropout (4.2, Zaremba et al.): a fresh mask for every element of a [batch, T, dim]
tensor, i.e. new masks at every time step; never on recurrent connections.

Variational dropout (4.3, Gal & Ghahramani): one mask per BPTT window, reused at every step.
``scope`` says who shares it:

- ``batch``: one mask for the whole minibatch, shape [1, dim]; what the authors' TF code does
  (``vd_dropout.py``: noise of shape [1, dim]; ../shared/notes/authors-code.md §1.7);
- ``sequence``: one mask per sequence, shape [batch, dim]; Gal & Ghahramani's formulation.

All masks are inverted dropout (kept units scaled by 1/(1-p)), so evaluation needs no rescaling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SCOPES = ("batch", "sequence")


def naive(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Fresh per-element, per-step mask (a no-op at p == 0 or outside training)."""
    return F.dropout(x, p, training) if p > 0 else x


def variational_mask(batch: int, dim: int, p: float, scope: str, like: torch.Tensor) -> torch.Tensor | None:
    """A [1 or batch, dim] mask for one window, or None when there is nothing to drop."""
    if p <= 0:
        return None
    if scope not in SCOPES:
        raise ValueError(f"variational mask scope must be one of {SCOPES}, got {scope!r}")
    rows = 1 if scope == "batch" else batch
    keep = torch.empty(rows, dim, device=like.device, dtype=like.dtype).bernoulli_(1.0 - p)
    return keep / (1.0 - p)


def apply_over_time(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply a per-window mask to every step of ``x`` [batch, T, dim]."""
    return x if mask is None else x * mask[:, None, :]
