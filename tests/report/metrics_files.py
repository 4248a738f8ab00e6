"""metrics.json files as the training stages write them, for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_metrics(root: Path, source: str, run: str, **fields) -> None:
    """``<root>/<source>/<run>/metrics.json``: a finished 2-epoch CPU run, with ``fields`` on top."""
    path = root / source / run / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {
        "run": run,
        "status": "ok",
        "profile": source,
        "reduced": source != "paper",
        "params_hash": "abc123",
        "git_rev": "deadbeef",
        "epochs": 2,
        "device": "cpu",
        "wall_time_s": 1.0,
    }
    path.write_text(json.dumps({**base, **fields}))
