"""What all language models share: their output type and the handling of carried state."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ModelOutput(NamedTuple):
    """What every language model's forward returns for one window."""

    logits: torch.Tensor  # [batch, T, |W|]
    state: Any  # the state to carry into the next window: tensors, possibly nested in tuples
    penalty: torch.Tensor | None  # regulariser to add to the training loss (Sobolev), or None


class Features(NamedTuple):
    """A window up to the softmax layer: what the logits are a linear function of."""

    top: torch.Tensor  # [batch, T, d]: the softmax layer's input
    state: Any
    penalty: torch.Tensor | None


class LanguageModel(nn.Module):
    """A language model is ``features`` of a window and one linear softmax layer (``output_layer``).

    ``forward`` gives the logits; the training loss takes the two parts apart, so that it can
    compute the softmax layer's cross-entropy without the window's logits in memory
    (pipeline/train/softmax_loss.py).
    """

    def features(self, x: torch.Tensor, state) -> Features:
        raise NotImplementedError

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight [|W|, d] in F.linear's layout, bias [|W|] or None)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state) -> ModelOutput:
        top, new_state, penalty = self.features(x, state)
        weight, bias = self.output_layer()
        return ModelOutput(F.linear(top, weight, bias), new_state, penalty)


def detach_state(state: Any) -> Any:
    """Cut the graph at a window boundary (truncated BPTT), keeping the values."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)
