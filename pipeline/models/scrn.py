"""The Structurally Constrained Recurrent Network (Mikolov et al., 2015) in the paper's notation.

Row vectors are right-multiplied by matrices, as in the paper (footnote 1)::

    s_t = (1 - a) x_t B + a s_{t-1}                      (1)  context state, a fixed
    h_t = sigmoid(x_t A + s_t P + h_{t-1} R + b)         (2)  hidden state, uses the *new* s_t
    p(w_{t+1} | w_1..t) = softmax(s_t U + h_t V + b_out) (3)

The hidden update uses s_t, not s_{t-1}, as in the paper and the authors' TensorFlow code
(the original Lua code of Mikolov et al. feeds the previous context s_{t-1} into the hidden layer).

Three things make a window of T steps cheap without changing any value:
- (1) is linear with a fixed ``a``, so the whole window of context states is one matmul with the
  lower-triangular Toeplitz matrix K[t, k] = a^(t-k), plus a^(t+1) s_0 for the carried state;
- the input projections x A and s P do not depend on h, so they are computed for the whole
  window at once; only h_{t-1} R stays inside the loop over time;
- that loop itself runs as one fused kernel (``recurrence_impl``, pipeline/models/recurrence.py,
  which also decides where a kernel is exact): cuDNN's tanh RNN on a GPU, a single-node scan on
  a CPU. :func:`hidden_states` below is the plain loop, eq. (2) as written.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.models import recurrence
from pipeline.models.common import Features, LanguageModel

State = tuple[torch.Tensor, torch.Tensor]  # (s, h), each [batch, dim]


def context_kernel(alpha: float, steps: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """K[t, k] = alpha^(t-k) for k <= t (else 0), and carry[t] = alpha^(t+1)."""
    t = torch.arange(steps, device=device, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    kernel = torch.where(lag >= 0, alpha ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64, device=device))
    carry = alpha ** (t + 1)
    return kernel.to(dtype), carry.to(dtype)


def context_states(xb: torch.Tensor, s0: torch.Tensor, alpha: float) -> torch.Tensor:
    """All context states of a window, eq. (1): ``xb`` = x_t B is [batch, T, d_s], ``s0`` is [batch, d_s]."""
    kernel, carry = context_kernel(alpha, xb.shape[1], xb.device, xb.dtype)
    return (1.0 - alpha) * torch.einsum("tk,bkd->btd", kernel, xb) + carry[None, :, None] * s0[:, None, :]


def hidden_states(
    pre: torch.Tensor,
    h0: torch.Tensor,
    R: torch.Tensor,
    mask: torch.Tensor | None = None,
    mask_tied: bool = True,
    impl: str = "loop",
) -> tuple[torch.Tensor, torch.Tensor]:
    """All hidden states of a window, eq. (2): ``pre`` = x_t A + s_t P + b is [batch, T, d_h].

    Returns (h, h_raw): ``h_raw`` are the sigmoid outputs, ``h`` what the layer passes on. With a
    variational ``mask`` on h ([1 or batch, d_h], one per window):

    - ``mask_tied`` (the authors' code): the masked h_t feeds the recurrence, the next layer and
      the softmax, and is the state carried into the next window;
    - otherwise (eq. (9) read literally): the mask is applied to h_{t-1} inside the recurrence
      only; ``h`` is unmasked and the output gets its own mask elsewhere.

    ``impl``: loop (the plain loop below), scan, tanh-rnn or triton, or auto (the device's fast
    kernel); :func:`pipeline.models.recurrence.select_kernel` keeps the loop wherever a fast
    kernel would not be exact (a per-sequence mask).
    """
    kernel = recurrence.select_kernel(impl, pre.device, mask, R.shape[0])
    if kernel != "loop":
        return recurrence.run_kernel(kernel, pre, h0, R, mask, mask_tied)
    h = h0
    out, raw = [], []
    for t in range(pre.shape[1]):
        h_in = h * mask if (mask is not None and not mask_tied) else h
        h = torch.sigmoid(torch.addmm(pre[:, t], h_in, R))
        raw.append(h)
        if mask is not None and mask_tied:
            h = h * mask
        out.append(h)
    h_raw = torch.stack(raw, dim=1)
    return (torch.stack(out, dim=1) if out[0] is not raw[0] else h_raw), h_raw


def _uniform_init(params, bound: float) -> None:
    """U(-bound, bound), nn.RNN's default, so a freshly built module is never uninitialised.

    Drawn from a forked RNG: building a model must not advance the global generator, or every
    seeded run's ``init_uniform`` (which overrides these values) would draw different weights.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for p in params:
            p.uniform_(-bound, bound)


class SCRNRecurrence(nn.Module):
    """The recurrent part of one SCRN layer: P, R, b and the fixed ``alpha``.

    It takes the input projections x B and x A, so the same module serves one-hot inputs
    (the baseline, where they are embedding lookups) and dense inputs (stacked layers).
    """

    def __init__(self, hidden: int, context: int, alpha: float, impl: str = "auto"):
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        recurrence.check_impl(impl)
        self.hidden, self.context, self.alpha, self.impl = hidden, context, alpha, impl
        self.P = nn.Parameter(torch.empty(context, hidden))
        self.R = nn.Parameter(torch.empty(hidden, hidden))
        self.b = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init(self.parameters(), 1.0 / math.sqrt(self.hidden))

    def zero_state(self, batch_size: int, device=None, dtype=None) -> State:
        return (
            torch.zeros(batch_size, self.context, device=device, dtype=dtype),
            torch.zeros(batch_size, self.hidden, device=device, dtype=dtype),
        )

    def forward(
        self,
        xb: torch.Tensor,
        xa: torch.Tensor,
        state: State,
        h_mask: torch.Tensor | None = None,
        h_mask_tied: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (s, h, h_raw) for the window, each [batch, T, dim]; the last step of (s, h) is
        the next state. See :func:`hidden_states` for ``h_mask``."""
        s0, h0 = state
        s = context_states(xb, s0, self.alpha)
        pre = xa + torch.matmul(s, self.P) + self.b
        h, h_raw = hidden_states(pre, h0, self.R, h_mask, h_mask_tied, self.impl)
        return s, h, h_raw


class SCRNLayer(nn.Module):
    """One SCRN layer with a dense input y (the embedding, or the previous layer's [s; h]).

    B (d_in x d_s) and A (d_in x d_h) are plain matrices, no bias (b sits in the recurrence),
    applied to the whole window at once.
    """

    def __init__(self, d_in: int, hidden: int, context: int, alpha: float, impl: str = "auto"):
        super().__init__()
        self.B = nn.Parameter(torch.empty(d_in, context))
        self.A = nn.Parameter(torch.empty(d_in, hidden))
        self.recurrence = SCRNRecurrence(hidden, context, alpha, impl)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_init([self.B, self.A], 1.0 / math.sqrt(self.recurrence.hidden))

    @property
    def R(self) -> torch.Tensor:
        return self.recurrence.R

    def zero_state(self, batch_size: int, device=None, dtype=None) -> State:
        return self.recurrence.zero_state(batch_size, device, dtype)

    def forward(self, y: torch.Tensor, state: State, h_mask=None, h_mask_tied: bool = True):
        return self.recurrence(torch.matmul(y, self.B), torch.matmul(y, self.A), state, h_mask, h_mask_tied)


class BaselineSCRN(LanguageModel):
    """The single-layer SCRN language model of eqs. (1)-(3) with one-hot inputs.

    x_t B and x_t A are rows of B (|W| x d_s) and A (|W| x d_h), i.e. embedding lookups.
    The output layer is one |W| x (d_s + d_h) matrix [U; V] with a bias, applied to [s; h].
    """

    def __init__(self, vocab_size: int, hidden: int, context: int, alpha: float, impl: str = "auto"):
        super().__init__()
        self.B = nn.Embedding(vocab_size, context)
        self.A = nn.Embedding(vocab_size, hidden)
        self.recurrence = SCRNRecurrence(hidden, context, alpha, impl)
        self.decoder = nn.Linear(context + hidden, vocab_size)

    def zero_state(self, batch_size: int, device=None) -> State:
        return self.recurrence.zero_state(batch_size, device=device, dtype=self.A.weight.dtype)

    def features(self, x: torch.Tensor, state: State) -> Features:
        """``x``: [batch, T] token ids. Returns [s; h] for every step and the carried state."""
        s, h, _ = self.recurrence(self.B(x), self.A(x), state)
        return Features(torch.cat([s, h], dim=-1), (s[:, -1], h[:, -1]), None)

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight, self.decoder.bias
