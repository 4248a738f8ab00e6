"""Language models and their construction from a run configuration."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.models.lm import StackedLM
from pipeline.models.scrn import BaselineSCRN


def build_model(cfg: ModelConfig, vocab_size: int) -> nn.Module:
    if cfg.arch == "scrn-baseline":
        return BaselineSCRN(vocab_size, cfg.hidden, cfg.context, cfg.alpha, cfg.recurrence_impl)
    if cfg.arch in ("scrn", "lstm"):
        return StackedLM(cfg, vocab_size)
    raise ValueError(f"unknown model arch {cfg.arch!r}")


def init_uniform(model: nn.Module, scale: float) -> None:
    """Every parameter, embeddings and biases included, from U(-scale, scale) (authors' code)."""
    for p in model.parameters():
        nn.init.uniform_(p, -scale, scale)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters; a tied matrix counts once."""
    return sum(p.numel() for p in model.parameters())


def parameter_count(cfg: ModelConfig, vocab_size: int) -> int:
    """The parameter count of a configuration, without allocating its weights."""
    with torch.device("meta"):
        return count_parameters(build_model(cfg, vocab_size))
