"""The small, torch-free outputs of a run: the per-epoch log, the git revision, and the outputs of
a run whose corpus is missing.

Kept apart from the training loop so that a data-missing run (``data.on_missing: skip``) writes
its outputs without importing torch: ``stages.train`` checks for the marker first, which saves
about 1.5 s of imports per data-missing stage of the DAG.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.errors import DataUnavailableError
from pipeline.fsutil import atomic_directory, atomic_write_json, atomic_write_text

EPOCH_FIELDS = ("epoch", "lr", "train_ppl", "valid_ppl", "seconds")


GIT_REV_ENV = "SCRN_GIT_REV"  # the commit of a copied working tree whose .git is absent or stale (a lent GPU)


def git_revision() -> str:
    if os.environ.get(GIT_REV_ENV):
        return os.environ[GIT_REV_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_epoch_log(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EPOCH_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def recorded_status(metrics_path: Path) -> str | None:
    """The status of the result already at ``metrics_path`` (None: no readable result there)."""
    try:
        metrics = json.loads(Path(metrics_path).read_text())
    except (OSError, ValueError):
        return None
    return metrics.get("status", "ok") if isinstance(metrics, dict) else None


def write_data_missing(cfg: RunConfig, out_dir: Path, reason: str) -> dict:
    """Outputs of a run whose corpus could not be obtained (``data.on_missing: skip``).

    A real result already in ``out_dir`` (any status but data_missing) is never replaced: a
    corpus that went missing since says nothing about the run that trained on it."""
    out_dir = Path(out_dir)
    status = recorded_status(out_dir / "metrics.json")
    if status not in (None, "data_missing"):
        raise DataUnavailableError(
            f"{cfg.name}: corpus {cfg.corpus!r} is marked missing, but {out_dir / 'metrics.json'} holds a result "
            f"(status {status}); it was left as it was. Restore the corpus (python -m stages.download --corpus "
            f"{cfg.corpus}, then python -m stages.prepare --corpus {cfg.corpus}), or delete {out_dir} to record "
            f"the run as data missing."
        )
    metrics = {
        "run": cfg.name,
        "status": "data_missing",
        "reason": reason,
        "corpus": cfg.corpus,
        "profile": cfg.profile,
        "params_hash": cfg.params_hash,
        "git_rev": git_revision(),
    }
    with atomic_directory(out_dir / "model") as tmp:
        atomic_write_json(tmp / "MISSING.json", {"status": "data_missing", "reason": reason})
    write_epoch_log(out_dir / "epochs.csv", [])
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
