"""DVC stage ``report``: render reports/tables.md (paper values, ours, and their difference).

Reads the paper's numbers from pipeline/report/paper.yaml, the configuration from params.yaml,
the results from results/<profile>/<run>/metrics.json (paper profile preferred), and from
data/stats/ the corpus statistics (vocabulary sizes for the parameter counts too) and the
tokeniser round-trip figures; the training-speed section from benchmarks/results/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import data_settings, load_params, profile_name, run_config, run_names
from pipeline.fsutil import atomic_directory, atomic_write_text
from pipeline.report.figures import draw_learning_curves
from pipeline.report.tables import load_paper
from pipeline.report.render import render_report
from stages._common import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: %(default)s)")
    parser.add_argument("--stats", type=Path, default=Path("data/stats"), help="corpus statistics (default: %(default)s)")
    parser.add_argument("--benchmarks", type=Path, default=Path("benchmarks/results"),
                        help="benchmark results, newest per device (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/tables.md"),
                        help="output (default: %(default)s); figures go to figures/ beside it")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    profile = profile_name(params)
    cfgs = {name: run_config(params, name) for name in run_names(params)}
    corpora = list(data_settings(params).corpora)
    figures_dir = args.out.parent / "figures" / "learning-curves"
    with atomic_directory(figures_dir) as staging:  # all figures appear together, or none change
        figures = draw_learning_curves(load_paper(), args.results, staging)
    report = render_report(args.results, profile, cfgs, args.stats, corpora=corpora, figures=figures,
                           figure2_dir=args.out.parent / "figures" / "figure2", benchmarks_dir=args.benchmarks)
    atomic_write_text(args.out, report)
    print(f"report: wrote {args.out} and {len(figures)} figure(s) in {figures_dir}")
    return 0


if __name__ == "__main__":
    run_stage(main)
