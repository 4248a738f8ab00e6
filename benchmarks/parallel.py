"""Train several runs of params.yaml at once on one device, N processes at a time.

A small model leaves most of a large GPU idle (one SCRN step is a few milliseconds of mostly
launch latency), so independent runs sharing the device finish sooner in aggregate than one
after another; benchmarks.multi_run measures by how much. Each run is the ordinary DVC stage
command ``python -m stages.train --run NAME`` (same outputs, checkpoints and resume), with its
output in <logs>/<run>.log.

    python -m benchmarks.parallel --parallel 4 ptb-small-scrn-nd ptb-small-scrn-nd-wt ...

Outputs land where ``dvc repro`` expects them; record them afterwards with ``dvc commit``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pipeline.cli import add_path, command_parser


def launch(runs: list[str], parallel: int, extra_args: list[str], log_dir: Path, log=print) -> dict[str, int]:
    """Run ``stages.train`` for every run, at most ``parallel`` at once; returns exit codes."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, active, codes = list(runs), {}, {}
    while pending or active:
        while pending and len(active) < parallel:
            run = pending.pop(0)
            cmd = [sys.executable, "-m", "stages.train", "--run", run, "--no-progress", *extra_args]
            handle = open(log_dir / f"{run}.log", "w")
            active[run] = (subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT), handle)
            log(f"started {run}: {' '.join(cmd[1:])}")
        for run, (proc, handle) in list(active.items()):
            if proc.poll() is not None:
                handle.close()
                codes[run] = proc.returncode
                del active[run]
                log(
                    f"finished {run}: exit {proc.returncode}"
                    + ("" if proc.returncode == 0 else f" (see {log_dir / run}.log)")
                )
        time.sleep(0.2)
    return codes


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.parallel", __doc__)
    parser.add_argument("runs", nargs="+", help="run names (keys of runs: in params.yaml)")
    parser.add_argument(
        "--parallel", type=int, default=4, help="processes at once on the device (default: %(default)s)"
    )
    add_path(parser, "--logs", "logs/parallel", "log directory")
    args, extra = parser.parse_known_args(argv)  # anything else goes to stages.train (--profile, --device, ...)
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    codes = launch(args.runs, args.parallel, extra, args.logs)
    failed = [r for r, c in codes.items() if c != 0]
    if failed:
        print(f"error: {len(failed)} run(s) failed: {', '.join(failed)}; logs in {args.logs}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
