"""DVC stage ``figure2``: the paper's Figure 2 (hidden-state change per word) and its numbers.

Reads the best-valid models of the PTB small LSTM + ND and SCRN + ND + WT runs of the active
profile and the prepared PTB test set (capped like evaluation by the profile), and writes
reports/figures/figure2/{figure2.png,summary.json}. A model that does not exist yet (data
missing, run not made) is recorded as such in summary.json and no figure is drawn.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.analysis import hidden_dynamics as hd
from pipeline.config import budget, load_params, profile_name
from pipeline.data.prepare import load_prepared
from pipeline.fsutil import atomic_directory, atomic_write_json
from pipeline.report.figures import hidden_change_figure
from stages._common import run_stage

MODELS = (("LSTM + ND", "ptb-small-lstm-nd-kim"), ("SCRN + ND + WT", "ptb-small-scrn-nd-wt"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.figure2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: %(default)s)")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared/ptb"), help="prepared PTB (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/figures/figure2"), help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    profile = profile_name(params)
    cap = budget(params, profile).max_eval_tokens
    summary: dict = {"profile": profile, "models": []}
    with atomic_directory(args.out) as staging:
        model_dirs = [args.results / profile / run / "model" for _, run in MODELS]
        missing = [str(d) for d in model_dirs if not (d / "model.pt").is_file()]
        if missing or not (args.prepared / "test.npy").is_file():
            summary["status"] = "not available"
            summary["reason"] = "no trained model or data yet: " + ", ".join(missing or [str(args.prepared)])
            atomic_write_json(staging / "summary.json", summary)
            print(f"figure2: {summary['reason']}")
            return 0
        vocab, arrays = load_prepared(args.prepared)
        full_test = arrays["test"]
        test = full_test[:cap] if cap else full_test  # the quantitative part, capped like evaluation
        spans = hd.example_sentences(full_test, vocab)  # example sentences from anywhere in the test set
        panels = []
        for (label, run), model_dir in zip(MODELS, model_dirs):
            model = hd.load_trained(model_dir)
            deltas = hd.l1_deltas(hd.top_hidden_states(model, test))
            split = hd.frequency_split(test, deltas, arrays["train"])
            summary["models"].append({"model": label, "run": run, "tokens": int(len(test)),
                                      "top_types": hd.TOP_TYPES, "top_mean": split.top_mean, "rest_mean": split.rest_mean,
                                      "top_tokens": split.top_tokens, "rest_tokens": split.rest_tokens, "ratio": split.ratio})
            panels.append((f"{label} ({run})", [([vocab[i] for i in full_test[s:e]], hd.span_deltas(model, full_test, s, e).tolist())
                                                for s, e in spans]))
        summary["status"] = "ok"
        hidden_change_figure(panels, staging / "figure2.png", profile)
        atomic_write_json(staging / "summary.json", summary)
    print(f"figure2: wrote {args.out} ({len(test):,} test tokens)")
    return 0


if __name__ == "__main__":
    run_stage(main)
