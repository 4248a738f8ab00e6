"""One training step: the loss of a window and the SGD update, shared by the eager trainer
(pipeline/train/loop.py) and the CUDA-graph step (pipeline/train/graphed.py).

Conventions follow the authors' TensorFlow code: the loss of a window is the cross-entropy
summed over its time steps and averaged over the batch; the global gradient norm of that loss is
clipped; the update is plain SGD (no momentum, no weight decay, as in the paper).
"""

from __future__ import annotations

import torch

from pipeline.train.softmax_loss import linear_cross_entropy


def window_loss(model, x, y, state, bf16: bool = False, softmax: str = "auto"):
    """The training loss of one window and the new state.

    Cross-entropy summed over time and averaged over the batch, plus the model's penalty (the
    Sobolev term, normalised the same way) when it has one. ``mean_ce`` is the per-token
    cross-entropy alone, for reporting perplexity. ``bf16`` runs the forward and the loss under
    ``torch.autocast`` (the trainer's ``precision: bf16``); the weights stay fp32. ``softmax``:
    how the softmax layer's cross-entropy is computed (pipeline/train/softmax_loss.py).
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        top, new_state, penalty = model.features(x, state)
        weight, bias = model.output_layer()
        mean_ce = linear_cross_entropy(top.reshape(-1, top.shape[-1]), weight, bias, y.reshape(-1), softmax)
        loss = mean_ce * x.shape[1]
        if penalty is not None:
            loss = loss + penalty
    return loss, mean_ce, new_state


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def sgd_step(model, loss, lr: float, clip_norm: float) -> None:
    """The eager trainer's step on ``model``: :func:`sgd_update` on its trainable parameters.

    Written out rather than torch.optim.SGD: the update is one line, it has no state to save,
    and constructing a torch optimiser costs over a second of imports per run.
    """
    sgd_update(trainable_parameters(model), loss, lr, clip_norm)


def sgd_update(
    params: list[torch.nn.Parameter], loss: torch.Tensor, lr: float | torch.Tensor, clip_norm: float
) -> None:
    """Backward, global-norm clipping and p <- p - lr * grad, with no host sync.

    The backward creates fresh gradients (``.grad`` is None before it), so a captured CUDA graph
    writes, not accumulates, them on every replay. ``lr`` is a float in the eager trainer, where
    each parameter takes one fused ``add_`` (the arithmetic of every recorded run), or a device
    tensor in the graphed step, whose replays must read the epoch's LR from memory: ``add_``
    takes no tensor as its factor, so there the product and the difference are two foreach ops.
    """
    for p in params:
        p.grad = None
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip_norm)  # the norm and its scale stay on the device
    with torch.no_grad():
        live = [p for p in params if p.grad is not None]
        if isinstance(lr, torch.Tensor):
            torch._foreach_sub_(live, torch._foreach_mul([p.grad for p in live], lr))
        else:
            for p in live:
                p.add_(p.grad, alpha=-lr)
