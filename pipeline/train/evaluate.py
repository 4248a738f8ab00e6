"""Perplexity with the training layout: batch x bptt windows, state carried, zero state at the start."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.data.batching import BatchLayout


@torch.no_grad()
def evaluate_ppl(model: torch.nn.Module, layout: BatchLayout, device: torch.device) -> float:
    """exp(mean cross-entropy over every scored token), as in the authors' ``run_epoch``."""
    model.eval()
    state = model.zero_state(layout.data.shape[0], device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in layout.windows():
        logits, state, _ = model(x.to(device), state)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1), reduction="sum").double()
    mean_ce = total.item() / layout.tokens_per_pass
    return math.exp(mean_ce) if mean_ce < 709.0 else math.inf  # inf (or nan), not OverflowError, for a diverged model
