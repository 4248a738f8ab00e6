"""DVC stage ``figure2``: the paper's Figure 2 (hidden-state change per word) and its numbers.

Drawn only from paper-profile models, whatever the active profile: the best-valid models of the
PTB small LSTM + ND and SCRN + ND + WT runs in results/paper/<run>/model/, over the whole
prepared PTB test set. Writes figure2.png and summary.json into --out (default
reports/figures/figure2; the ledger writes results/paper/figure2/ while the weights exist, since
they stay out of git). Without both models, summary.json says Figure 2 awaits paper-profile
models and no figure is drawn: a smoke-run model has seen a few thousand tokens and shows nothing
the paper's figure is about.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.analysis import hidden_dynamics as hd
from pipeline.data.prepare import load_prepared
from pipeline.fsutil import atomic_directory, atomic_write_json
from pipeline.report.figures import hidden_change_figure
from stages._common import run_stage

MODELS = (("LSTM + ND", "ptb-small-lstm-nd-kim"), ("SCRN + ND + WT", "ptb-small-scrn-nd-wt"))
PROFILE = "paper"  # Figure 2 is a result: never drawn from smoke-run (quick) models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.figure2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: %(default)s)")
    parser.add_argument(
        "--prepared", type=Path, default=Path("data/prepared/ptb"), help="prepared PTB (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports/figures/figure2"), help="output directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)

    summary: dict = {"profile": PROFILE, "models": []}
    with atomic_directory(args.out) as staging:
        model_dirs = [args.results / PROFILE / run / "model" for _, run in MODELS]
        missing = [str(d / "model.pt") for d in model_dirs if not (d / "model.pt").is_file()]
        if missing or not (args.prepared / "test.npy").is_file():
            summary["status"] = "awaiting paper-profile models"
            summary["reason"] = "not found: " + ", ".join(missing or [str(args.prepared / "test.npy")])
            atomic_write_json(staging / "summary.json", summary)
            print(f"figure2: awaiting paper-profile models ({summary['reason']})")
            return 0
        vocab, arrays = load_prepared(args.prepared)
        test = arrays["test"]
        spans = hd.example_sentences(test, vocab)  # example sentences from anywhere in the test set
        panels = []
        for (label, run), model_dir in zip(MODELS, model_dirs):
            model = hd.load_trained(model_dir)
            deltas = hd.l1_deltas(hd.top_hidden_states(model, test))
            split = hd.frequency_split(test, deltas, arrays["train"])
            summary["models"].append(
                {
                    "model": label,
                    "run": run,
                    "tokens": int(len(test)),
                    "top_types": hd.TOP_TYPES,
                    "top_mean": split.top_mean,
                    "rest_mean": split.rest_mean,
                    "top_tokens": split.top_tokens,
                    "rest_tokens": split.rest_tokens,
                    "ratio": split.ratio,
                }
            )
            panels.append(
                (
                    f"{label} ({run})",
                    [([vocab[i] for i in test[s:e]], hd.span_deltas(model, test, s, e).tolist()) for s, e in spans],
                )
            )
        summary["status"] = "ok"
        hidden_change_figure(panels, staging / "figure2.png")
        atomic_write_json(staging / "summary.json", summary)
    print(f"figure2: wrote {args.out} ({len(test):,} test tokens)")
    return 0


if __name__ == "__main__":
    run_stage(main)
