"""Language models and their construction from a run configuration."""
from __future__ import annotations

from torch import nn

from pipeline.config import ModelConfig
from pipeline.models.scrn import BaselineSCRN


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    if cfg.arch == "scrn-baseline":
        return BaselineSCRN(vocab_size, cfg.hidden, cfg.context, cfg.alpha)
    raise ValueError(f"unknown model arch {cfg.arch!r}")


def init_uniform(model: nn.Module, scale: float) -> None:
    """Every parameter, embeddings and biases included, from U(-scale, scale) (authors' code)."""
    for p in model.parameters():
        nn.init.uniform_(p, -scale, scale)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
