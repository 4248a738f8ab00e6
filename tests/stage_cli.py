"""A stage run as DVC runs it: ``python -m stages.<name> ...`` from the repository root, in a
process of its own, so that its exit status and its one-line errors are what a user sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(stage: str, *args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m stages.<stage> <args>`` (paths allowed among ``args``); its output captured."""
    cmd = [sys.executable, "-m", f"stages.{stage}", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def flags(**values) -> list[str]:
    """``--name value`` for each keyword (underscores written as dashes), paths and numbers as text."""
    return [arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", str(value))]
