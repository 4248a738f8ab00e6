"""The training loss of the softmax layer: mean cross-entropy of ``features @ weight.T + bias``.

Two implementations of the same maths:

- ``full``: ``F.cross_entropy(F.linear(...))``. The logits of a window (700 x |W| floats, 28 MB
  for PTB) are written, read back by log-softmax, and again by each pass of its backward.
- ``fused``: the rows in chunks small enough to stay in a core's cache. Each chunk's logits are
  turned into the loss and, in the same pass, into the gradient ``softmax - onehot``, whose
  products with the weight and the features are accumulated at once; the logits of the window
  never exist whole. The backward only scales the stored gradients by the incoming one. The
  values agree with ``full`` up to the order of fp32 summation (tests: float64, 1e-12).

``auto`` picks ``fused`` on a CPU, in the weights' own precision, for a narrow softmax input
(at most ``FUSED_MAX_FEATURES``): there the step is bound by the memory traffic of the logits.
A wide input makes it bound by the matmuls, which run faster unchunked
(``python -m benchmarks.train_step --full-softmax`` times both in one run; benchmarks/README.md).
It picks ``full`` on a GPU and under autocast, whose bf16 numerics the paired precision check
validated with ``full``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMPLS = ("auto", "fused", "full")

# The logits of one chunk: 128 rows of a 10k vocabulary (5 MB in fp32), tuned on PTB with
# benchmarks/train_step.py; larger vocabularies get fewer rows.
CHUNK_ELEMENTS = 128 * 10_000
MIN_CHUNK_ROWS = 16
FUSED_MAX_FEATURES = 256


def linear_cross_entropy(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor, impl: str = "auto"
) -> torch.Tensor:
    """Mean cross-entropy of ``softmax(features @ weight.T + bias)`` against ``targets``.

    ``features``: [N, d]; ``weight``: [|W|, d] (F.linear's layout); ``bias``: [|W|] or None;
    ``targets``: [N] token ids. Differentiable in ``features``, ``weight`` and ``bias``.
    """
    if select_impl(impl, features) == "fused":
        return _FusedLinearCrossEntropy.apply(features, weight, bias, targets)
    return F.cross_entropy(F.linear(features, weight, bias), targets)


def select_impl(impl: str, features: torch.Tensor) -> str:
    if impl not in IMPLS:
        raise ValueError(f"softmax loss impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if impl != "auto":
        return impl
    on_cpu = features.device.type == "cpu"
    narrow = features.shape[-1] <= FUSED_MAX_FEATURES
    return "fused" if on_cpu and narrow and not torch.is_autocast_enabled(features.device.type) else "full"


def chunk_rows(vocab: int) -> int:
    return max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // vocab)


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """The loss and, in the same pass over each chunk of rows, its gradients (see the module)."""

    @staticmethod
    def forward(ctx, features, weight, bias, targets):
        loss, grads = fused_loss_and_grads(features.detach(), weight.detach(), bias, targets)
        ctx.save_for_backward(*grads)
        ctx.has_bias = bias is not None
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        d_features, d_weight, d_bias = ctx.saved_tensors
        return (
            d_features * grad_loss,
            d_weight * grad_loss,
            d_bias * grad_loss if ctx.has_bias else None,
            None,
        )


@torch.no_grad()
def fused_loss_and_grads(
    features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The mean cross-entropy and its gradients in features, weight and bias, chunk by chunk.

    Per chunk: logits z; the loss log(sum exp(z - max)) + max - z[target]; then z becomes the
    softmax in place (one exp pass serves both), minus one at each target, divided by N: the
    gradient of the mean loss in the logits, consumed by two matmuls and a row sum.
    """
    rows = features.shape[0]
    d_features = torch.empty_like(features)
    d_weight = torch.zeros_like(weight)
    d_bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    total = torch.zeros((), dtype=torch.float64, device=features.device)
    step = chunk_rows(weight.shape[0])
    for start in range(0, rows, step):
        f, t = features[start : start + step], targets[start : start + step, None]
        z = torch.addmm(bias, f, weight.t()) if bias is not None else torch.mm(f, weight.t())
        target_logit = z.gather(1, t)
        peak = z.amax(1, keepdim=True)
        z.sub_(peak).exp_()
        norm = z.sum(1, keepdim=True)
        total += (norm.log() + peak - target_logit).sum(dtype=torch.float64)
        z.div_(norm * rows)
        z.scatter_add_(1, t, torch.full_like(target_logit, -1.0 / rows))
        torch.mm(z, weight, out=d_features[start : start + step])
        d_weight.addmm_(z.t(), f)
        d_bias += z.sum(0)
    return (total / rows).to(features.dtype), (d_features, d_weight, d_bias)
