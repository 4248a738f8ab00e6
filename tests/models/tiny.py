"""The tiny stacked SCRN that the fast-path and graphed-step tests build in every regime."""

from __future__ import annotations

from pipeline.config import ModelConfig


def stacked_scrn(**fields) -> ModelConfig:
    """Two tied SCRN layers of width 6, context 3 and alpha 0.9, with ``fields`` (dropout, Sobolev,
    kernel) on top."""
    return ModelConfig(arch="scrn", hidden=6, context=3, alpha=0.9, layers=2, tie=True, **fields)
