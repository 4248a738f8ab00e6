"""DVC stage ``train@<run>``: train one named run of params.yaml and write its results.

Outputs go to results/<profile>/<run>/ (metrics.json, epochs.csv, model/), so results of the
quick and paper profiles never overwrite each other. Resumable checkpoints go to
checkpoints/<run>-<params hash>/, outside DVC's outputs: run the same command again after a
kill and it resumes from the last completed epoch.

A corpus marked missing (data.on_missing: skip) gives "data missing" outputs, but only for a corpus
listed in data.optional, and never over a real result already in results/<profile>/<run>/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import DEVICES, PROFILES, data_settings, device_setting, load_params, run_config, run_names
from pipeline.errors import DataUnavailableError
from pipeline.fsutil import read_missing_marker
from pipeline.train.outputs import write_data_missing
from stages._common import run_stage

PAUSED_EXIT = 75  # EX_TEMPFAIL: the run paused at a checkpoint before its deadline; run it again to resume


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="run name, a key of runs: in params.yaml (required unless --list)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", choices=PROFILES, help="override the params.yaml profile (budget) for this run")
    parser.add_argument("--device", choices=DEVICES, help="override the params.yaml device (auto: CUDA if present)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: %(default)s)")
    parser.add_argument(
        "--checkpoints", type=Path, default=Path("checkpoints"), help="checkpoint root (default: %(default)s)"
    )
    parser.add_argument("--prepared", type=Path, help="prepared corpus (default: data/prepared/<corpus>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.add_argument("--list", action="store_true", help="list the runs of params.yaml and exit")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: the training forward under autocast, a numerics change recorded in metrics.json "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--lr-floor",
        type=float,
        metavar="FRACTION",
        help="stop once the next epoch's LR falls below FRACTION x the initial LR (recorded in "
        "metrics.json as a numerics change; default: run every epoch)",
    )
    parser.add_argument(
        "--check-floor",
        action="store_true",
        help="with --lr-floor: train every epoch anyway and record where the floor would have "
        "stopped and the test PPL there (the paired check of the floor)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        metavar="UNIX_TIME",
        help=f"pause at the last checkpoint (exit code {PAUSED_EXIT}) before an epoch that would "
        "end after this time; run the same command again to resume",
    )
    args = parser.parse_args(argv)

    if not args.list and not args.run:
        parser.error("--run is required (or --list to print the run names)")

    params = load_params(args.params)
    if args.list:
        print("\n".join(run_names(params)))
        return 0
    cfg = run_config(params, args.run, args.profile)
    prepared = args.prepared or Path("data/prepared") / cfg.corpus
    out = args.results / cfg.profile / cfg.name
    missing = read_missing_marker(prepared)
    if missing is not None:  # data missing: write its outputs without importing torch (~1.5 s a stage)
        if cfg.corpus not in data_settings(params).optional:
            raise DataUnavailableError(
                f"{cfg.name}: {prepared} is marked missing, but {cfg.corpus} is not optional (data.optional): it "
                f"must be there. Fix the mirror, then run python -m stages.download --corpus {cfg.corpus} and "
                f"python -m stages.prepare --corpus {cfg.corpus}. Reason recorded: {missing['reason']}"
            )
        print(f"{cfg.name}: corpus {cfg.corpus!r} is missing; writing data-missing outputs", flush=True)
        write_data_missing(cfg, out, missing["reason"])
        return 0
    from pipeline.train.loop import Numerics, Paused, resolve_device, run_training  # imports torch

    try:
        device = resolve_device(args.device or device_setting(params))
    except RuntimeError as exc:  # CUDA asked for where there is none: the user's choice to fix, not a crash
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    numerics = Numerics(precision=args.precision, lr_floor=args.lr_floor, check_floor=args.check_floor)
    try:
        run_training(
            cfg,
            prepared,
            out,
            args.checkpoints,
            device,
            progress=not args.no_progress,
            log=lambda line: print(line, flush=True),
            numerics=numerics,
            deadline=args.deadline,
        )
    except Paused as paused:
        print(paused, flush=True)
        return PAUSED_EXIT
    return 0


if __name__ == "__main__":
    run_stage(main)
