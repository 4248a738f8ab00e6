"""DVC stage ``sobolev-grid``: the Sobolev penalty's share of the loss at initialisation, and the β grid.

For each PTB small SCRN run that the Section 7 runs build on (ptb-small-scrn-noreg: the penalty
alone; ptb-small-scrn-nd-wt, ptb-small-scrn-vd-wt: on top of dropout), measures at the paper's
initialisation the mean training loss L of a window and the penalty P at β = 1 over the first
windows of PTB train (pipeline/analysis/sobolev_init.py), derives the β grid that spans a
penalty of 1% to 10% of the loss for the unregularised model, and lists, for every β configured
in params.yaml, the share β P / L for each. Writes reports/sobolev-grid.json; the report shows it.
Independent of the profile (nothing is trained).
"""

from __future__ import annotations

from pipeline.analysis import sobolev_init
from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import load_params, run_config, run_names
from pipeline.data.prepare import load_prepared
from pipeline.fsutil import atomic_write_json, read_missing_marker
from stages._common import run_stage

GRID_FROM = "ptb-small-scrn-noreg"
BASES = (GRID_FROM, "ptb-small-scrn-nd-wt", "ptb-small-scrn-vd-wt")


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.sobolev_grid", __doc__)
    add_params(parser)
    add_path(parser, "--prepared", "data/prepared/ptb", "prepared PTB")
    parser.add_argument("--windows", type=int, default=10, help="training windows averaged over (default: %(default)s)")
    add_path(parser, "--out", "reports/sobolev-grid.json", "output")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    missing = read_missing_marker(args.prepared)
    if missing is not None:
        atomic_write_json(args.out, {"status": "data_missing", "reason": missing["reason"]})
        print(f"sobolev-grid: PTB is missing; wrote {args.out}")
        return 0
    vocab, arrays = load_prepared(args.prepared)
    measured = [
        sobolev_init.penalty_and_loss_at_init(run_config(params, run), arrays["train"], len(vocab), args.windows)
        for run in BASES
    ]
    grid = sobolev_init.beta_grid(measured[0]["ratio"])
    configured = sorted(
        {
            cfg.model.sobolev.beta
            for cfg in (run_config(params, n) for n in run_names(params))
            if cfg.model.sobolev.beta > 0
        }
    )
    shares = [{"beta": beta, **{m["run"]: beta * m["ratio"] for m in measured}} for beta in configured]
    atomic_write_json(
        args.out, {"status": "ok", "grid_from": GRID_FROM, **grid, "measured": measured, "configured": shares}
    )
    for m in measured:
        print(
            f"sobolev-grid: {m['run']}: loss {m['loss']:.1f}, "
            f"penalty at beta=1 {m['penalty_beta1']:.1f}, P/L {m['ratio']:.3f}"
        )
    print(
        f"sobolev-grid: beta for {grid['shares'][0]:.0%} .. {grid['shares'][1]:.0%} of the loss: "
        + ", ".join(f"{b:.2g}" for b in grid["beta_exact"])
        + f"; configured: {configured}"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
