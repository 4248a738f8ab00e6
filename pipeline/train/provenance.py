"""Where a result came from: the commit, the machine, the library versions and the wall time.

A number in the report is only as good as what it can be traced to, so every finished run records
this next to its metrics. ``git_dirty`` is true when the working tree differed from the commit, in
which case the commit alone does not identify the code that ran.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

import torch

from pipeline.train.outputs import GIT_REV_ENV, git_revision


def git_dirty() -> bool | None:
    """True if tracked files differ from HEAD; None where that cannot be known (outside a git
    checkout, or when the commit comes from SCRN_GIT_REV because the copy's .git is not its own)."""
    if os.environ.get(GIT_REV_ENV):
        return None
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.stdout.strip())


def cpu_model() -> str:
    """The CPU's model name, with its family and model numbers: virtual machines often report only
    a generic name ("AMD EPYC"), and the numbers tell the generations apart."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f", family {fields['cpu family']} model {fields['model']}"
    return name


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def provenance(device: torch.device, started: float) -> dict:
    """The record for a run that started at ``started`` (``time.time()``) and ends now."""
    record = {
        "git_rev": git_revision(),
        "git_dirty": git_dirty(),
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_s": round(time.time() - started, 1),
    }
    if device.type == "cuda":
        record["cuda"] = torch.version.cuda
        record["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    return record
