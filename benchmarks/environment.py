"""What every benchmark records about where it ran, and how it writes its results."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> dict:
    """Device name, versions and thread count: the context every figure needs."""
    info = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_model()}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return info


def resolve(name: str) -> torch.device:
    """The trainer's device rule (pipeline.train.loop.resolve_device), as a CLI error."""
    from pipeline.train.loop import resolve_device

    try:
        return resolve_device(name)
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, device work included (synchronised on both sides)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def write_json(out_dir: Path, stem: str, payload: dict) -> Path:
    """``<out_dir>/<stem>-<device slug>-<UTC time>.json``: one file per run, never overwritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = payload["environment"]["timestamp"].replace(":", "").replace("-", "")
    path = out_dir / f"{stem}-{slug(payload['environment']['device_name'])[:40]}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
