"""How strong the Sobolev penalty of Section 7 is at initialisation, and the β grid derived from it.

The paper gives no β. We pick it by the penalty's share of the training loss at initialisation:
for a run's model at the paper's initialisation (its seed, U(-init_scale, init_scale)), in
training mode (its dropout active, as in training), over the first ``windows`` windows of the
training data (its batch size x BPTT layout, state carried), we average

    L = the training loss of a window: cross-entropy summed over its steps, mean over the batch;
    P = the penalty of that window with β = 1: sum over steps of ||dh_t/dh_{t-1}||_F^2, mean
        over the batch, summed over the SCRN layers (``pipeline/models/sobolev.py``),

so that β P / L is the share of the loss the penalty adds at β. The grid spans the β for which
that share is 1% and 10% for the unregularised small SCRN, with the geometric mean in between,
each rounded to two significant figures.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import RunConfig, SobolevConfig
from pipeline.data.batching import make_layout
from pipeline.models import build_model, init_uniform

SHARES = (0.01, 0.10)  # the penalty's share of the loss at initialisation that the grid spans


@torch.no_grad()
def penalty_and_loss_at_init(cfg: RunConfig, train_ids: np.ndarray, vocab_size: int, windows: int = 10) -> dict:
    """Mean training loss L and raw penalty P (β = 1) per window of ``cfg``'s model at initialisation."""
    t = cfg.training
    model_cfg = replace(cfg.model, sobolev=SobolevConfig(beta=1.0, layers=cfg.model.sobolev.layers))
    torch.manual_seed(t.seed)
    model = build_model(model_cfg, vocab_size)
    init_uniform(model, t.init_scale)
    model.train()
    layout = make_layout(train_ids[: t.batch_size * (windows * t.bptt + 1)], t.batch_size, t.bptt)
    state = model.zero_state(t.batch_size)
    losses, penalties = [], []
    for x, y in layout.windows():
        out = model(x, state)
        state = out.state
        ce = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1))
        losses.append(float(ce) * x.shape[1])
        penalties.append(float(out.penalty))
    loss, penalty = sum(losses) / len(losses), sum(penalties) / len(penalties)
    return {"run": cfg.name, "windows": len(losses), "loss": loss, "penalty_beta1": penalty, "ratio": penalty / loss}


def round_significant(x: float, digits: int = 1) -> float:
    """``x`` rounded to ``digits`` significant figures (0.00347, 2 -> 0.0035)."""
    if x == 0:
        return 0.0
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def beta_grid(ratio: float, shares: tuple[float, float] = SHARES) -> dict:
    """β at which the penalty is ``shares`` of the loss at init (P/L = ``ratio``), and the grid."""
    low, high = (s / ratio for s in shares)
    exact = [low, math.sqrt(low * high), high]
    return {"shares": list(shares), "beta_exact": exact, "grid": [round_significant(b, 2) for b in exact]}
