"""Run runs of params.yaml on a cluster (or here) and bring every result home.

    python -m stages.grid --backend slurm --runs 'ptb-baseline-*'
    python -m stages.grid --backend local --runs 'ptb-small-*' --jobs 2
    python -m stages.grid --backend debug --runs ptb-baseline-40-10,ptb-baseline-90-10

slurm  one Slurm job array through submitit (resources: the scaleout: section of params.yaml, or
       the flags below); each task clones the git remote at this commit, runs
       `dvc repro --pull train@<run>` and `dvc push --run-cache train@<run>`; the command waits,
       then fans in with `dvc repro --pull train@<run>...` here: every run is restored from the
       run-cache (never trained again) and dvc.lock gets them all; `dvc repro --downstream
       train@<run>...` then rebuilds the report.
local  DVC's experiment queue on this machine (`dvc exp run --queue` + `dvc queue start -j N`),
       then the same fan-in from the local run-cache.
debug  like slurm, but every task runs in this process, one after another (submitit's debug
       executor): the whole loop without a cluster.

A failed task is reported by name with its log; the others' results are pushed and fanned in.
Run the same command again to resubmit only what is missing (runs already ok at this commit are
skipped; --force resubmits them too, and the run-cache answers for them at the cost of a clone).
This is not a DVC stage: it drives DVC.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli import add_params, command_parser
from pipeline.cluster.config import BACKENDS, scaleout_settings
from pipeline.cluster.grid import run_grid, select_runs
from pipeline.config import load_params
from pipeline.errors import ParamsError, ScaleoutError


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.grid", __doc__)
    parser.add_argument("--backend", choices=BACKENDS, help="where the runs train (required unless --list)")
    parser.add_argument(
        "--runs",
        help="comma-separated run names or globs ('ptb-*'); required unless --list, which lists every run without it",
    )
    add_params(parser)
    parser.add_argument("--force", action="store_true", help="resubmit runs already ok at this commit too")
    parser.add_argument(
        "--resubmit-failed",
        action="store_true",
        help="the default behaviour, spelled out: submit only runs not ok at this commit",
    )
    parser.add_argument("--no-fan-in", action="store_true", help="do not run the fan-in `dvc repro --pull` here")
    parser.add_argument("--list", action="store_true", help="print the selected runs and exit (no --backend needed)")
    slurm = parser.add_argument_group("overrides of the scaleout: section of params.yaml")
    slurm.add_argument("--partition")
    slurm.add_argument("--account")
    slurm.add_argument("--time-min", type=int)
    slurm.add_argument("--gpus-per-task", type=int)
    slurm.add_argument("--cpus-per-task", type=int)
    slurm.add_argument("--mem-gb", type=float)
    slurm.add_argument("--array-parallelism", type=int)
    slurm.add_argument("--git-remote")
    slurm.add_argument("--workdir", help="where the task clones go (node-local scratch)")
    slurm.add_argument("--log-dir")
    slurm.add_argument("--jobs", dest="local_jobs", type=int, help="local backend: dvc queue workers")
    args = parser.parse_args(argv)
    if not args.list and not (args.backend and args.runs):
        parser.error("--backend and --runs are required (or --list to print the runs they select)")

    try:
        params = load_params(args.params)
        overrides = {
            k: getattr(args, k)
            for k in (
                "partition",
                "account",
                "time_min",
                "gpus_per_task",
                "cpus_per_task",
                "mem_gb",
                "array_parallelism",
                "git_remote",
                "workdir",
                "log_dir",
                "local_jobs",
            )
        }
        settings = scaleout_settings(params, overrides)
        runs = select_runs(params, args.runs or "*")
        if args.list:
            print("\n".join(runs))
            return 0
        result = run_grid(
            Path.cwd(), params, runs, args.backend, settings, force=args.force, do_fan_in=not args.no_fan_in
        )
    except (ParamsError, ScaleoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
