"""What all language models share: their output type and the handling of carried state."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class ModelOutput(NamedTuple):
    """What every language model's forward returns for one window."""

    logits: torch.Tensor  # [batch, T, |W|]
    state: Any  # the state to carry into the next window: tensors, possibly nested in tuples
    penalty: torch.Tensor | None  # regulariser to add to the training loss (Sobolev), or None


def detach_state(state: Any) -> Any:
    """Cut the graph at a window boundary (truncated BPTT), keeping the values."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)
