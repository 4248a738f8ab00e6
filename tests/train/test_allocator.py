"""pipeline/train/allocator.py: freed large buffers stay with the process (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.train import allocator, loop

# In a fresh interpreter: malloc, touch and free a 64 MB block, then print how much of it is still
# resident (MB). glibc's defaults map such a block afresh and unmap it on free.
KEPT_AFTER_FREE = """
import ctypes, ctypes.util, sys
from pipeline.train.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
block = 20 * 2**20
pointers = [libc.malloc(block) for _ in range(3)]
for p in pointers:
    ctypes.memset(p, 1, block)
before = resident_mb()
for p in pointers:
    libc.free(p)
print(round(before - resident_mb()))
"""


def returned_mb(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", KEPT_AFTER_FREE, mode], capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_stay_resident_once_set_and_go_back_by_default():
    assert returned_mb("default") >= 50  # three 20 MB blocks, unmapped on free
    assert returned_mb("kept") <= 5


def test_the_trainer_sets_the_allocator(monkeypatch, tmp_path):
    from pipeline import config
    from tests.train.test_train import params_with, train_tiny

    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append(1) or True)
    train_tiny(
        config.run_config(params_with({"max_epochs": 1, "max_train_tokens": 1440, "max_eval_tokens": 720}), "tiny"),
        tmp_path,
    )
    assert calls == [1]
    assert allocator.TRIM_THRESHOLD < 2**31  # mallopt takes a C int
