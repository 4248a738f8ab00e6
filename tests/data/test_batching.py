"""The streams x time layout of the authors' code, as drawn in pipeline/data/batching.py."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.batching import make_layout
from pipeline.errors import DataFormatError


def test_layout_streams_windows_and_targets():
    layout = make_layout(np.arange(14), batch_size=2, bptt=3)
    assert layout.data.tolist() == [list(range(7)), list(range(7, 14))]
    windows = list(layout.windows())
    assert layout.num_windows == len(windows) == 2
    x0, y0 = windows[0]
    assert x0.tolist() == [[0, 1, 2], [7, 8, 9]] and y0.tolist() == [[1, 2, 3], [8, 9, 10]]
    x1, y1 = windows[1]
    assert x1.tolist() == [[3, 4, 5], [10, 11, 12]] and y1.tolist() == [[4, 5, 6], [11, 12, 13]]
    assert layout.tokens_per_pass == 12


def test_tail_dropped_and_token_cap():
    layout = make_layout(np.arange(17), batch_size=2, bptt=3)  # 17 // 2 = 8 columns; (8-1)//3 = 2 windows
    assert layout.data.shape == (2, 8) and layout.num_windows == 2
    capped = make_layout(np.arange(1000), batch_size=2, bptt=3, max_tokens=14)
    assert capped.data.tolist() == [list(range(7)), list(range(7, 14))]


def test_paper_layout_of_ptb_test_set():
    """authors-code.md §1.3: PTB test (82,430 ids) at 20 x 35 gives 117 windows, 81,900 scored tokens."""
    layout = make_layout(np.zeros(82430, dtype=np.int32), batch_size=20, bptt=35)
    assert layout.num_windows == 117 and layout.tokens_per_pass == 81900


def test_too_few_tokens_is_a_clear_error():
    with pytest.raises(DataFormatError, match="too few for one window"):
        make_layout(np.arange(10), batch_size=2, bptt=5)
