"""Perplexity with the training layout: batch x bptt windows, state carried, zero state at the start."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.data.batching import BatchLayout

# The mean cross-entropy at or beyond which a run has diverged: its perplexity would exceed 1e300,
# near where exp() overflows a float.
MAX_LOG_PPL = math.log(1e300)


@torch.no_grad()
def evaluate_ppl(model: torch.nn.Module, layout: BatchLayout, device: torch.device) -> float:
    """exp(mean cross-entropy over every scored token), as in the authors' ``run_epoch``."""
    model.eval()
    state = model.zero_state(layout.data.shape[0], device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in layout.windows():
        logits, state, _ = model(x.to(device), state)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), reduction="sum"
        ).double()
    mean_ce = total.item() / layout.tokens_per_pass
    return (
        math.exp(mean_ce) if mean_ce < MAX_LOG_PPL else math.inf
    )  # inf, not OverflowError, for a diverged (or NaN) model
