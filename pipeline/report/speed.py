"""The training-speed section: the newest benchmarks.train_step result per device.

Reads benchmarks/results/**/train-step-*.json (written by ``python -m benchmarks.train_step``);
a device's newest file wins, so rerunning the benchmark updates the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

BENCHMARKS_DIR = Path("benchmarks/results")


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def latest_per_device(directory: Path) -> list[dict]:
    """The newest train-step result of each device name, sorted by device name."""
    newest: dict[str, dict] = {}
    for path in sorted(Path(directory).glob("**/train-step-*.json")):
        result = json.loads(path.read_text())
        name = result["environment"]["device_name"]
        if name not in newest or result["environment"]["timestamp"] > newest[name]["environment"]["timestamp"]:
            newest[name] = result
    return [newest[k] for k in sorted(newest)]


def speed_table(result: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": r["model"],
                "train ms/batch": _fmt(r["train_ms_per_batch"], ".2f"),
                "tokens/s": _fmt(r["train_tokens_per_s"], ","),
                "PTB epoch (s)": _fmt(r["train_epoch_s"], ".1f"),
                "× LSTM": _fmt(r["train_ratio_to_lstm"], ".2f"),
                "× loop": _fmt(r["train_speedup_over_loop"], ".2f"),
                "eval ms/batch": _fmt(r["eval_ms_per_batch"], ".2f"),
                "eval × LSTM": _fmt(r["eval_ratio_to_lstm"], ".2f"),
            }
            for r in result["rows"]
        ]
    )


def _auto(kernel) -> str:
    """The auto kernel as recorded: one name, or one per model size (newer results)."""
    return ", ".join(f"{size}: {k}" for size, k in kernel.items()) if isinstance(kernel, dict) else str(kernel)


def speed_sections(directory: Path | None) -> list[dict]:
    """[{"title", "caption", "table": DataFrame}] for the report, one per device; [] without results."""
    if directory is None or not Path(directory).is_dir():
        return []
    sections = []
    for result in latest_per_device(directory):
        e, s = result["environment"], result["settings"]
        versions = f"torch {e['torch']}" + (
            f", CUDA {e['cuda']}, cuDNN {e['cudnn']}" if e.get("cudnn") else f", {e['threads']} thread(s)"
        )
        sections.append(
            {
                "title": e["device_name"],
                "caption": f"{versions}; {e['timestamp']}; "
                f"median of {s['rounds'] * s['train_steps']} training steps per model"
                + (" (--quick)" if s.get("quick") else "")
                + f"; auto = {_auto(s['auto_kernel'])}",
                "table": speed_table(result),
            }
        )
    return sections
