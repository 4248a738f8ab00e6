"""The Sobolev-type penalty of Section 7: beta * sum_t ||dh_t / dh_{t-1}||_F^2.

For h_t = sigmoid(z_t), z_t = a_t + h_{t-1} R, the paper's closed form is

    ||dh_t/dh_{t-1}||_F^2 = sigma'(z_t)^2 . v(R),   v(R)_i = ||r_i||^2 = sum_j R[j, i]^2,

(the squared norms of R's columns), with sigma'(z) = h (1 - h). Like the loss, it is summed over
the time steps of a window and averaged over the batch. It is the Jacobian of the unmasked
recurrence: under a variational mask on the recurrent h, the paper's formula (used here) ignores it.
"""

from __future__ import annotations

import torch


def jacobian_norms(h_raw: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """||dh_t/dh_{t-1}||_F^2 for every sequence and step: [batch, T] from h_raw [batch, T, d_h]."""
    slope = h_raw * (1.0 - h_raw)
    return torch.matmul(slope.square(), R.square().sum(dim=0))


def sobolev_penalty(h_raw: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Sum over time, mean over batch, of the squared Frobenius norms (without beta)."""
    return jacobian_norms(h_raw, R).sum(dim=1).mean()
