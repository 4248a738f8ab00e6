"""The streams x time layout of the authors' code (zh3nis/scrn, TF PTB reader), for every split.

The token stream w_0 .. w_{N-1} is cut into ``batch_size`` contiguous streams, one per row::

    N = 14, batch_size = 2  ->  batch_len = 7, the tail (none here) is dropped

        row 0:  w0  w1  w2  w3  w4  w5  w6
        row 1:  w7  w8  w9  w10 w11 w12 w13

    windows of bptt = 3 steps: (batch_len - 1) // bptt = 2 windows
        window 0: x = cols 0..2, y = cols 1..3
        window 1: x = cols 3..5, y = cols 4..6

Each row is one sequence whose recurrent state is carried from window to window; tokens that
do not fill a whole window are never scored. Valid and test use the same layout as training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from pipeline.errors import DataFormatError


@dataclass(frozen=True)
class BatchLayout:
    data: torch.Tensor  # [batch_size, batch_len] int64
    bptt: int

    @property
    def num_windows(self) -> int:
        return (self.data.shape[1] - 1) // self.bptt

    @property
    def tokens_per_pass(self) -> int:
        """Tokens scored in one pass: batch_size * bptt * num_windows."""
        return self.data.shape[0] * self.bptt * self.num_windows

    def windows(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for k in range(self.num_windows):
            start = k * self.bptt
            yield self.data[:, start : start + self.bptt], self.data[:, start + 1 : start + self.bptt + 1]


def make_layout(ids: np.ndarray, batch_size: int, bptt: int, max_tokens: int | None = None) -> BatchLayout:
    """Lay out ``ids`` (optionally only its first ``max_tokens``) as ``batch_size`` streams."""
    if max_tokens is not None:
        ids = ids[:max_tokens]
    batch_len = len(ids) // batch_size
    if (batch_len - 1) // bptt < 1:  # params validation has ruled out a cap below one window
        raise DataFormatError(
            f"{len(ids)} tokens are too few for one window of {batch_size} streams x {bptt} steps "
            f"(need at least {batch_size * (bptt + 1)}): the split is too short for this batch layout"
        )
    data = torch.from_numpy(np.asarray(ids[: batch_size * batch_len], dtype=np.int64)).view(batch_size, batch_len)
    return BatchLayout(data=data, bptt=bptt)
