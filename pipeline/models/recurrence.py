"""Fast kernels for the SCRN hidden recurrence, exact in values and gradients, and their dispatch.

Every kernel computes eq. (2) of pipeline/models/scrn.py, whose plain loop is the reference::

    h_t = sigmoid(a_t + h_{t-1} W),  t = 1..T,  h_0 = h_init        a: [batch, T, d], W: [d, d]

:func:`run_kernel` folds a variational mask shared by the batch into ``a``, ``h_init`` and ``W``
(:func:`fold_mask`), which is exact; :func:`select_kernel` keeps the plain loop where no fold is
(a per-sequence mask) and picks the device's fast kernel for ``auto``.

- ``scan``: one autograd node for the whole window. The forward is an addmm and an in-place
  sigmoid per step; the backward walks time once (one small matmul per step) and computes the
  gradient of W as a single matmul over all steps, instead of 2 x T autograd nodes per window.
- ``tanh-rnn``: sigmoid(z) = (1 + tanh(z/2)) / 2, so g = 2h - 1 is a tanh RNN,
  g_t = tanh(a_t/2 + (1 W)/4 + g_{t-1} W/4), which cuDNN runs as one fused call on a GPU
  (``torch._VF.rnn_tanh`` with our own weights, so gradients reach W). On a CPU it runs
  ATen's (unfused) RNN loop.
- ``triton``: the window as two persistent Triton kernels, forward and backward, each one
  launch for all T steps (``triton_recurrence.py``); CUDA only, and only where Triton is
  installed (it is not a dependency of the CPU environment).
"""

from __future__ import annotations

import warnings

import torch

KERNELS = ("loop", "scan", "tanh-rnn", "triton")

# cuDNN copies weights that are not one flat buffer (ours are derived from R every call): that
# copy is intended here, so its "not part of single contiguous chunk of memory" warning is noise.
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk of memory")


class _SigmoidScan(torch.autograd.Function):
    """h_t = sigmoid(a_t + h_{t-1} W) over a window as one autograd node (time-major inside)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        steps = a.shape[1]
        a_tm = a.transpose(0, 1).contiguous()  # [T, batch, d]: each step's slice is contiguous
        hs = a_tm.new_empty((steps + 1,) + tuple(h_init.shape))
        hs[0] = h_init
        for t in range(steps):
            torch.addmm(a_tm[t], hs[t], W, out=hs[t + 1])
            hs[t + 1].sigmoid_()
        ctx.save_for_backward(hs, W)
        return hs[1:].transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: torch.Tensor):
        hs, W = ctx.saved_tensors
        steps = hs.shape[0] - 1
        grad_tm = grad_h.transpose(0, 1)
        dz = hs[1:] * (1.0 - hs[1:])  # sigmoid'(z_t) = h_t (1 - h_t), overwritten in place by dL/dz_t
        carry = torch.zeros_like(hs[0])  # dL/dh_t arriving from step t + 1
        w_t = W.t()
        for t in range(steps - 1, -1, -1):
            dz[t].mul_(grad_tm[t] + carry)
            carry = torch.mm(dz[t], w_t)
        flat = dz.reshape(-1, dz.shape[-1])
        grad_w = torch.mm(hs[:-1].reshape(-1, hs.shape[-1]).t(), flat) if ctx.needs_input_grad[2] else None
        return dz.transpose(0, 1), carry, grad_w


def scan(a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    return _SigmoidScan.apply(a, h_init, W)


def tanh_rnn(a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The recurrence as a tanh RNN (cuDNN on a GPU): input weight I, recurrent weight W/4."""
    d = W.shape[0]
    x = torch.add(0.25 * W.sum(dim=0), a, alpha=0.5)  # a_t/2 + (1 W)/4, the ones-row of W folded in
    eye = torch.eye(d, device=a.device, dtype=a.dtype)
    weights = [eye, (0.25 * W).t().contiguous()]  # contiguous: what cuDNN copies into its flat buffer
    g0 = (2.0 * h_init - 1.0).unsqueeze(0)
    # train=True only when a backward may follow: cuDNN then keeps the reserve space it needs
    g, _ = torch._VF.rnn_tanh(x, g0, weights, False, 1, 0.0, torch.is_grad_enabled(), False, True)
    return 0.5 * (1.0 + g)


def triton_scan(a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """The persistent Triton kernels; imported on first use, so Triton stays optional."""
    try:
        from pipeline.models.triton_recurrence import persistent_scan
    except ImportError as exc:
        raise RuntimeError(
            f"recurrence_impl=triton needs the triton package ({exc}); install it beside a CUDA "
            "build of torch, or use auto, scan or tanh-rnn"
        ) from exc
    return persistent_scan(a, h_init, W)


RUNNERS = {"scan": scan, "tanh-rnn": tanh_rnn, "triton": triton_scan}


# Widths up to this run cuDNN's persistent RNN kernel (RNN_blockPersist, one launch per window);
# above it cuDNN launches a GEMM per step and the persistent Triton kernels are faster
# (benchmarks/README.md, H200: 0.92 against 1.07 ms per window at 750, 0.32 against 0.27 at 240).
CUDNN_PERSISTENT_MAX_WIDTH = 256


def triton_installed() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def default_kernel(device: torch.device, width: int | None = None) -> str:
    """What ``recurrence_impl: auto`` runs where the fast kernels are exact (see benchmarks/README.md).

    On CUDA: the persistent Triton kernels for hidden widths above CUDNN_PERSISTENT_MAX_WIDTH
    where Triton is installed, else cuDNN's fused tanh RNN; on a CPU the scan (measured faster
    than both the loop and ATen's CPU tanh RNN on the 2-core development machines).
    """
    if device.type == "cuda" and width is not None and width > CUDNN_PERSISTENT_MAX_WIDTH and triton_installed():
        return "triton"
    if device.type == "cuda" and torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled:
        return "tanh-rnn"
    return "scan"


IMPLS = ("auto",) + KERNELS


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"recurrence_impl must be one of {', '.join(IMPLS)}, got {impl!r}")


def select_kernel(impl: str, device: torch.device, mask: torch.Tensor | None, width: int | None = None) -> str:
    """The kernel that ``impl`` runs for this mask: a fast one only where folding is exact."""
    check_impl(impl)
    if impl == "loop" or (mask is not None and mask.shape[0] != 1):
        return "loop"  # a per-sequence mask differs between rows: no shared weight can hold it
    return default_kernel(device, width) if impl == "auto" else impl


def fold_mask(pre, h0, R, mask, mask_tied):
    """(a, h_init, W) with sigmoid(a_t + h_{t-1} W) = eq. (2) under a batch-shared ``mask`` [1, d_h].

    (h * m) R = h (diag(m) R), so the mask moves into W's rows. Tied, the recurrence runs on
    the unmasked h_raw, except at the first step: the carried h0 was masked with the *previous*
    window's mask, so h0 R goes into a_1 and the kernel starts from h_init = 0.
    """
    if mask is None:
        return pre, h0, R
    W = mask.reshape(-1, 1) * R
    if not mask_tied:  # mask on h_{t-1} at every step, h0 (unmasked) included
        return pre, h0, W
    first = pre[:, :1] + torch.matmul(h0, R).unsqueeze(1)
    return torch.cat([first, pre[:, 1:]], dim=1), torch.zeros_like(h0), W


def run_kernel(
    kernel: str, pre: torch.Tensor, h0: torch.Tensor, R: torch.Tensor, mask: torch.Tensor | None, mask_tied: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, h_raw) of ``scrn.hidden_states`` from the fast ``kernel`` (one :func:`select_kernel` chose)."""
    h_raw = RUNNERS[kernel](*fold_mask(pre, h0, R, mask, mask_tied))
    return (h_raw * mask[:, None, :] if mask is not None and mask_tied else h_raw), h_raw
