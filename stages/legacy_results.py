"""DVC stage ``legacy-results`` (docker/dvc.yaml): legacy Torch7 logs -> metrics JSON for Table 2.

Reads results/legacy-torch/<run>/train.log, written by `docker compose run legacy-torch` (Mikolov
et al.'s original SCRNN code on the four Table 2 configurations), and writes
results/legacy-torch/<run>/metrics.json beside it: the Testing PPL of the epoch with the best
Validation PPL, epochs, words/s, the LR decreases, and status "ok" or "diverged" (NaN). A run with
no log is left "not run"; a log without a complete epoch yet is skipped with a message. A log that
cannot be parsed (not a log of the legacy code, a perplexity that is not a finite number above 1)
is an error naming the file and line. Neither a skip nor an error touches the metrics.json that an
earlier parse wrote. Then `python -m stages.report` (or `dvc repro`) puts the numbers in the
report's legacy column.

Not part of the default `dvc repro`: run it with `dvc repro docker/dvc.yaml` or directly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.cli import add_path, command_parser
from pipeline.fsutil import atomic_write_text
from pipeline.legacy import LOG_NAME, RUNS, LegacyLogError, NoCompleteEpoch, parse_log
from stages._common import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.legacy_results", __doc__)
    add_path(parser, "--results", "results/legacy-torch", "the legacy container's results directory")
    parser.add_argument(
        "--run", action="append", choices=sorted(RUNS), help="parse only this run (repeatable; default: all four)"
    )
    args = parser.parse_args(argv)

    failed = 0
    for run in args.run or list(RUNS):
        log = args.results / run / LOG_NAME
        out = args.results / run / "metrics.json"
        if not log.is_file():
            print(f"legacy-results: {run}: no {log}; left 'not run'")
            continue
        try:
            metrics = parse_log(log, run, source_log=str(log))
        except NoCompleteEpoch as exc:  # a run in its first epoch: nothing to report yet, nothing wrong
            print(f"legacy-results: {run}: skipped, {exc}{_kept(out)}")
            continue
        except LegacyLogError as exc:
            print(f"error: {exc}{_kept(out)}", file=sys.stderr)
            failed += 1
            continue
        atomic_write_text(out, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        summary = (
            f"best valid {metrics['best_valid_ppl']:.2f} at epoch {metrics['best_epoch']}, "
            f"test {metrics['test_ppl']:.2f}"
            if metrics["best_epoch"]
            else "no finite epoch"
        )
        print(
            f"legacy-results: {run}: {metrics['status']}, {metrics['epochs']}/{metrics['epoch_budget']} epochs, "
            f"{summary} -> {out}"
        )
    return 1 if failed else 0


def _kept(metrics_path: Path) -> str:
    """A parse that wrote nothing leaves the earlier results: say so, and where they are."""
    return f" (the earlier {metrics_path} was left as it was)" if metrics_path.exists() else ""


if __name__ == "__main__":
    run_stage(main)
