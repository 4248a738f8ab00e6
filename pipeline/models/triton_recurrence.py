"""The SCRN hidden recurrence as two persistent Triton kernels (``recurrence_impl: triton``, CUDA).

    h_t = sigmoid(a_t + h_{t-1} W),  t = 1..T                       (forward)
    e_t = (dL/dh_t + e_{t+1} W^T) * h_t (1 - h_t),  e_{T+1} = 0      (backward, e_t = dL/dz_t)

cuDNN runs a recurrence as one matmul kernel and one pointwise kernel per time step (and more in
the backward), so at batch 20 a window is a few hundred tiny launches even inside a CUDA graph.
Here one kernel walks the whole window: program ``p`` owns the columns ``[p*BN, (p+1)*BN)`` of
the state, computes its block of ``state_{t-1} @ M`` from the full previous state, applies the
pointwise step, stores its block and waits at a grid-wide barrier (an arrival counter, added to
with release and polled with acquire semantics) until every program has stored step t. All
programs must be resident at once, so the grid is at most the number of SMs (``_block_n``).
In float32 the products are plain fp32 FMAs (``PRECISION = "ieee"``, no TF32), like the loop.

The gradient of W is one matmul over all steps, ``[h_0..h_{T-1}]^T [e_1..e_T]``, outside the
kernel, as in ``recurrence.scan``. With TRITON_INTERPRET=1 the kernels run on CPU tensors
(one program, so the barrier never waits): the tests check the arithmetic there.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

BK = 64  # the reduction (k) block of state_{t-1} @ M (16 in float64, which reduces by broadcasting)
# launch shape; benchmarks/recurrence_micro.py times the alternatives (None: the narrowest block)
BLOCK_N: int | None = None
NUM_WARPS = 8
# float32 products: "ieee" (FMA, exact float32). Measured on an H200: "tf32x3" (three TF32
# tensor-core products, also float32-accurate) was slower, "tf32" faster but 1e-3 off.
PRECISION = "ieee"


@triton.jit
def _grid_barrier(counter, n_progs, epoch):
    """Every program has stored step ``epoch``: count ourselves in, then wait for the others.

    Scalar atomics run on one thread per program (the others wait at the CTA barrier that
    broadcasts the result), so the counter gets one release-add per program per step and one
    acquire-load per poll: CUDA's cooperative-groups grid sync, with a monotonic target."""
    tl.debug_barrier()  # all of this program's threads have issued their stores
    tl.atomic_add(counter, 1, sem="release", scope="gpu")
    target = n_progs * epoch
    seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
    while seen < target:
        seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")


@triton.jit
def _block_matmul(
    src,
    m_ptr,
    rows,
    cols,
    batch,
    d,
    BB: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
):
    """src[:batch, :d] @ M[:d, cols] for one [BB, BN] block.

    Other programs wrote ``src`` during this launch. The pipeliner may turn these loads into
    cp.async.ca (through L1) whatever the cache modifier; what makes them see those stores is the
    barrier's acquire followed by a CTA barrier, as in CUDA's cooperative-groups grid sync."""
    acc = tl.zeros((BB, BN), dtype=ACC)
    for k0 in range(0, d, BK):
        ks = k0 + tl.arange(0, BK)
        x = tl.load(
            src + rows[:, None] * d + ks[None, :],
            mask=(rows[:, None] < batch) & (ks[None, :] < d),
            other=0.0,
            cache_modifier=".cg",
        )
        w = tl.load(m_ptr + ks[:, None] * d + cols[None, :], mask=(ks[:, None] < d) & (cols[None, :] < d), other=0.0)
        if ACC == tl.float64:  # the exactness checks only: tl.dot's float64 support varies by GPU
            acc += tl.sum(x[:, :, None] * w[None, :, :], axis=1)
        else:
            acc += tl.dot(x, w, input_precision=PREC, out_dtype=ACC)
    return acc


@triton.jit
def _program_block(batch, d, BB: tl.constexpr, BN: tl.constexpr):
    """This program's rows (all sequences), columns, their offsets in a [batch, d] plane and mask."""
    rows = tl.arange(0, BB)
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    return rows, cols, rows[:, None] * d + cols[None, :], (rows[:, None] < batch) & (cols[None, :] < d)


@triton.jit
def _forward_kernel(
    a_ptr,
    hs_ptr,
    w_ptr,
    counter,
    batch,
    d,
    steps,
    BB: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
):
    """hs[t + 1] = sigmoid(a[t] + hs[t] @ W); a: [T, batch, d], hs: [T + 1, batch, d] with hs[0] = h_init."""
    rows, cols, block, ok = _program_block(batch, d, BB, BN)
    n_progs = tl.num_programs(0)
    plane = batch * d
    for t in range(steps):
        z = _block_matmul(hs_ptr + t * plane, w_ptr, rows, cols, batch, d, BB, BN, BK, ACC, PREC)
        z += tl.load(a_ptr + t * plane + block, mask=ok, other=0.0)
        tl.store(hs_ptr + (t + 1) * plane + block, 1.0 / (1.0 + tl.exp(-z)), mask=ok)
        _grid_barrier(counter, n_progs, t + 1)


@triton.jit
def _backward_kernel(
    grad_ptr,
    hs_ptr,
    wt_ptr,
    e_ptr,
    carry_ptr,
    counter,
    batch,
    d,
    steps,
    BB: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    ACC: tl.constexpr,
    PREC: tl.constexpr,
):
    """e[t] = (grad[t] + e[t + 1] @ W^T) * h (1 - h) with h = hs[t + 1], t = T-1..0, e[T] = 0;
    then carry = e[0] @ W^T (the gradient of h_init). grad, e[:T]: [T, batch, d]."""
    rows, cols, block, ok = _program_block(batch, d, BB, BN)
    n_progs = tl.num_programs(0)
    plane = batch * d
    for i in range(steps):
        t = steps - 1 - i
        back = _block_matmul(e_ptr + (t + 1) * plane, wt_ptr, rows, cols, batch, d, BB, BN, BK, ACC, PREC)
        h = tl.load(hs_ptr + (t + 1) * plane + block, mask=ok, other=0.0)
        g = tl.load(grad_ptr + t * plane + block, mask=ok, other=0.0)
        tl.store(e_ptr + t * plane + block, (g + back) * h * (1.0 - h), mask=ok)
        _grid_barrier(counter, n_progs, i + 1)
    carry = _block_matmul(e_ptr, wt_ptr, rows, cols, batch, d, BB, BN, BK, ACC, PREC)
    tl.store(carry_ptr + block, carry, mask=ok)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _block_n(d: int, device: torch.device) -> int:
    """Columns per program: BLOCK_N, else the fewest that keep every program resident (grid <=
    SMs), at least 16 (tl.dot's minimum); one program for all columns when interpreting on a CPU."""
    if _interpreting():
        return max(16, triton.next_power_of_2(d))
    sms = _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    bn = BLOCK_N or 16
    while triton.cdiv(d, bn) > sms:
        bn *= 2
    return bn


def _launch(kernel, pointers: tuple, batch: int, d: int, steps: int, like: torch.Tensor) -> None:
    if batch > 128:
        raise ValueError(f"recurrence_impl=triton holds up to 128 sequences per program, got batch {batch}")
    bn = _block_n(d, like.device)
    grid = triton.cdiv(d, bn)
    counter = torch.zeros(1, dtype=torch.int32, device=like.device)  # the barrier's arrivals, fresh per launch
    wide = like.dtype == torch.float64
    kernel[(grid,)](
        *pointers,
        counter,
        batch,
        d,
        steps,
        BB=max(16, triton.next_power_of_2(batch)),
        BN=bn,
        BK=16 if wide else BK,
        ACC=tl.float64 if wide else tl.float32,
        PREC=PRECISION,
        num_warps=NUM_WARPS,
    )


def _check(a: torch.Tensor) -> None:
    if a.device.type != "cuda" and not _interpreting():
        raise ValueError(
            f"recurrence_impl=triton runs on CUDA tensors only, got {a.device.type} (use auto, scan or tanh-rnn there)"
        )
    if a.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"recurrence_impl=triton takes float32 or float64, got {a.dtype}")


class _PersistentSigmoidScan(torch.autograd.Function):
    """h_t = sigmoid(a_t + h_{t-1} W) over a window; same contract as ``recurrence._SigmoidScan``."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        _check(a)
        batch, steps, d = a.shape
        a_tm = a.transpose(0, 1).contiguous()
        hs = a_tm.new_empty((steps + 1, batch, d))
        hs[0] = h_init
        Wc = W.contiguous()
        _launch(_forward_kernel, (a_tm, hs, Wc), batch, d, steps, hs)
        ctx.save_for_backward(hs, Wc)
        return hs[1:].transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: torch.Tensor):
        hs, W = ctx.saved_tensors
        steps, batch, d = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        grad_tm = grad_h.transpose(0, 1).contiguous()
        e = hs.new_empty((steps + 1, batch, d))
        e[steps] = 0.0
        carry = hs.new_empty((batch, d))
        _launch(_backward_kernel, (grad_tm, hs, W.t().contiguous(), e, carry), batch, d, steps, hs)
        dz = e[:steps]
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = torch.mm(hs[:-1].reshape(-1, d).t(), dz.reshape(-1, d))
        return dz.transpose(0, 1), carry, grad_w


def persistent_scan(a: torch.Tensor, h_init: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    return _PersistentSigmoidScan.apply(a, h_init, W)
