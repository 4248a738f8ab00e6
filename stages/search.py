"""Section 5's random search (not a DVC stage: run it by hand, outside `dvc repro`).

Samples the paper's ranges for the parameters the base run's dropout regime uses (p_i, p_o, and
p_h under variational dropout only; initial LR; LR decay; init scale), trains every sample as a
DVC experiment of the one stage train@<base run>, and after each round shrinks every range to
the span of the best quarter of the round's samples, widened on each side by 10% of the original
width and clipped to the original range. A sample that diverges (NaN/∞ loss) or fails counts as
PPL ∞; it never stops the search.

Settings come from `search:` in params.yaml; the flags override them. Results (every sample, its
valid PPL, the ranges of every round) go to results/search/<name>.json after every round; the
`report` stage renders them. Running it again with the same settings resumes at the first
unfinished round. Example (quick profile, the small VD SCRN on PTB, 2 rounds of 8, 2 at a time):

    python -m stages.search --base-run ptb-small-scrn-vd --rounds 2 --samples 8 --jobs 2

On a cluster, each round is one Slurm job array (one clone of the pushed commit per sample,
`dvc exp run` there, `dvc exp push`; then `dvc exp pull` here); resources from `scaleout:` of
params.yaml and the flags below; the driver itself can be a small CPU job:

    python -m stages.search --backend slurm --rounds 3 --samples 100 --jobs 20 --partition gpu
    sbatch --time=2-0 --cpus-per-task=1 --wrap "python -m stages.search --backend slurm --jobs 20"
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import add_params, add_path, command_parser
from pipeline.cluster.config import scaleout_settings
from pipeline.config import load_params
from pipeline.search import core
from pipeline.search.backends import BACKENDS, make_backend
from pipeline.search.driver import run_search
from stages._common import run_stage

# the scaleout: keys a search may override from the command line (as python -m stages.grid does)
SCALEOUT_FLAGS = (
    ("--partition", str),
    ("--account", str),
    ("--time-min", int),
    ("--gpus-per-task", int),
    ("--cpus-per-task", int),
    ("--mem-gb", float),
    ("--git-remote", str),
    ("--workdir", str),
    ("--log-dir", str),
)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.search", __doc__)
    add_params(parser)
    parser.add_argument(
        "--name",
        help="search name: results/search/<name>.json, experiments <name>-r<round>-<i> "
        "(default: search.name, else the base run)",
    )
    parser.add_argument("--base-run", help="the run of runs: whose parameters are searched (search.base_run)")
    parser.add_argument("--rounds", type=int, help="rounds (search.rounds)")
    parser.add_argument("--samples", type=int, help="samples per round (search.samples; the paper: 100)")
    parser.add_argument(
        "--jobs", type=int, help="runs at once (search.jobs; local: `dvc queue start -j`, slurm: the array's throttle)"
    )
    parser.add_argument("--seed", type=int, help="seed of the draws (search.seed)")
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        help="how rounds run (search.backend): local: DVC's queue here; slurm: one job array per "
        "round; debug: the same tasks in this process, one after another",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        help="seconds per round; runs still going then are stopped and count as failed (search.timeout_s)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a params.yaml override for every sample, as `dvc exp run -S` (repeatable), "
        "e.g. profiles.quick.max_epochs=5",
    )
    parser.add_argument(
        "--sample-set",
        dest="forced",
        action="append",
        default=[],
        metavar="ROUND:INDEX:KEY=VALUE",
        help="override one sample only (repeatable); for tests, e.g. to force a divergence",
    )
    add_path(parser, "--results", "results/search", "results folder")
    parser.add_argument("--restart", action="store_true", help="discard an existing results file of this name")
    cluster = parser.add_argument_group(
        "--backend slurm|debug: overrides of the scaleout: section of params.yaml "
        "(--jobs is the array's throttle, sbatch --array=0-N%jobs)"
    )
    for flag, kind in SCALEOUT_FLAGS:
        cluster.add_argument(flag, type=kind)
    args = parser.parse_args(argv)

    params = load_params(args.params)
    cli = {k: getattr(args, k) for k in core.SETTING_KEYS}
    settings = core.search_settings(params, cli, backends=tuple(BACKENDS))
    sets = dict(core.parse_assignment(s, "--set") for s in args.sets)
    forced: dict[tuple[int, int], dict[str, str]] = {}
    for text in args.forced:
        where, key, value = core.parse_forced(text)
        forced.setdefault(where, {})[key] = value
    scaleout = None
    if settings.backend != "local":
        scaleout = scaleout_settings(
            params,
            {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag, _ in SCALEOUT_FLAGS},
        )
    backend = make_backend(
        settings.backend,
        repo=Path.cwd(),
        jobs=settings.jobs,
        timeout_s=settings.timeout_s,
        log=lambda line: print(line, flush=True),
        scaleout=scaleout,
    )
    results = run_search(
        params,
        settings,
        backend,
        core.results_path(args.results, settings.name),
        sets=sets,
        forced=forced,
        restart=args.restart,
        log=lambda line: print(line, flush=True),
    )
    best = results.get("best")
    if best:
        print(
            f"search {settings.name}: best valid PPL {best['valid_ppl']:.2f} ({best['name']}); "
            f"`dvc exp apply {best['name']}` puts it in the workspace"
        )
    return 0


if __name__ == "__main__":
    run_stage(main)
