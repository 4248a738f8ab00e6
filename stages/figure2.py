"""DVC stage ``figure2``: the paper's Figure 2 (hidden-state change per word) and its numbers.

Drawn only from paper-profile models, whatever the active profile: the best-valid models of the
PTB small LSTM + ND and SCRN + ND + WT runs in results/paper/<run>/model/, over the whole
prepared PTB test set; where the weights are absent (they stay out of git), the numbers the
ledger recorded from them while they existed, results/paper/figure2/<run>.json. Writes
figure2.png and summary.json into --out (default reports/figures/figure2). Without both models,
summary.json says Figure 2 awaits paper-profile models and no figure is drawn: a smoke-run model
has seen a few thousand tokens and shows nothing the paper's figure is about.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.analysis import hidden_dynamics as hd
from pipeline.cli import add_path, command_parser
from pipeline.fsutil import atomic_directory, atomic_write_json
from pipeline.report.figures import hidden_change_figure
from stages._common import run_stage

MODELS = (("LSTM + ND", "ptb-small-lstm-nd-kim"), ("SCRN + ND + WT", "ptb-small-scrn-nd-wt"))
PROFILE = "paper"  # Figure 2 is a result: never drawn from smoke-run (quick) models


def record_path(results: Path, run: str) -> Path:
    """Where the ledger keeps a model's Figure 2 numbers, written while its weights existed."""
    return results / PROFILE / "figure2" / f"{run}.json"


def model_record(results: Path, prepared: Path, run: str) -> dict | None:
    """One model's Figure 2 numbers: computed from its weights where they are here, else the
    ledger's record of them; None when neither exists."""
    model_dir = results / PROFILE / run / "model"
    if (model_dir / "model.pt").is_file() and (prepared / "test.npy").is_file():
        return hd.model_record(run, model_dir, prepared)
    path = record_path(results, run)
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.figure2", __doc__)
    add_path(parser, "--results", "results", "results root")
    add_path(parser, "--prepared", "data/prepared/ptb", "prepared PTB")
    add_path(parser, "--out", "reports/figures/figure2", "output directory")
    args = parser.parse_args(argv)

    summary: dict = {"profile": PROFILE, "models": []}
    with atomic_directory(args.out) as staging:
        records, missing = [], []
        for _, run in MODELS:
            record = model_record(args.results, args.prepared, run)
            if record is None:
                missing.append(
                    f"{args.results / PROFILE / run / 'model' / 'model.pt'} or {record_path(args.results, run)}"
                )
            else:
                records.append(record)
        if missing:
            summary["status"] = "awaiting paper-profile models"
            summary["reason"] = "not found: " + ", ".join(missing)
            atomic_write_json(staging / "summary.json", summary)
            print(f"figure2: awaiting paper-profile models ({summary['reason']})")
            return 0
        panels = []
        for record in records:
            summary["models"].append({k: v for k, v in record.items() if k != "sentences"})
            sentences = [(s["words"], s["deltas"]) for s in record["sentences"]]
            panels.append((f"{record['model']} ({record['run']})", sentences))
        summary["status"] = "ok"
        hidden_change_figure(panels, staging / "figure2.png")
        atomic_write_json(staging / "summary.json", summary)
    print(f"figure2: wrote {args.out} ({records[0]['tokens']:,} test tokens)")
    return 0


if __name__ == "__main__":
    run_stage(main)
