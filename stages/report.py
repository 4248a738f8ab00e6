"""DVC stage ``report``: render reports/tables.md (paper values, ours, and their difference).

Opens with the headline (how many of the paper's cells are reproduced at the paper profile, how
close) and the coverage of each table. Reads the paper's numbers and the report's footnotes from
pipeline/report/paper.yaml, the configuration from params.yaml, the results from
results/<profile>/<run>/metrics.json (paper profile preferred; smoke runs of the quick profile
only in the appendix), Figure 2 from results/paper/figure2/ or the figure2 stage's output when
drawn from paper-profile models, Section 5 from results/search/, and from data/stats/ the corpus
statistics (vocabulary sizes for the parameter counts too) and the tokeniser round-trip figures,
from reports/sobolev-grid.json the Sobolev β grid, and the training-speed section from
benchmarks/results/. Draws the learning curves of paper-profile runs
(reports/figures/learning-curves/) and Table 7's figure (reports/figures/table7/).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import data_settings, load_params, profile_name, run_config, run_names
from pipeline.fsutil import atomic_directory, atomic_write_text
from pipeline.report.corpora import table7_type_token_ratios
from pipeline.report.figures import draw_learning_curves, table7_figure
from pipeline.report.render import render_report
from pipeline.report.results import SOBOLEV_GRID_FILE, load_paper
from pipeline.report.tables import table7_series
from stages._common import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.report", __doc__)
    add_params(parser)
    add_path(parser, "--results", "results", "results root")
    add_path(parser, "--stats", "data/stats", "corpus statistics")
    add_path(parser, "--sobolev-grid", SOBOLEV_GRID_FILE, "the sobolev-grid stage's output")
    add_path(parser, "--benchmarks", "benchmarks/results", "benchmark results, newest per device")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/tables.md"),
        help="output (default: %(default)s); figures go to figures/ beside it",
    )
    args = parser.parse_args(argv)

    params = load_params(args.params)
    profile = profile_name(params)
    cfgs = {name: run_config(params, name) for name in run_names(params)}
    corpora = list(data_settings(params).corpora)
    paper = load_paper()
    figures_dir = args.out.parent / "figures" / "learning-curves"
    with atomic_directory(figures_dir) as staging:  # all figures appear together, or none change
        figures = draw_learning_curves(paper, args.results, staging)
    table7_dir = args.out.parent / "figures" / "table7"
    with atomic_directory(table7_dir) as staging:
        table7_figure(
            table7_series(paper, args.results), table7_type_token_ratios(paper, args.stats), staging / "table7.png"
        )
    report = render_report(
        args.results,
        profile,
        cfgs,
        args.stats,
        corpora=corpora,
        figures=figures,
        figure2_dir=args.out.parent / "figures" / "figure2",
        sobolev_grid=args.sobolev_grid,
        table7_figure="figures/table7/table7.png",
        benchmarks_dir=args.benchmarks,
        report_dir=args.out.parent,
    )
    atomic_write_text(args.out, report)
    print(
        f"report: wrote {args.out}, {len(figures)} learning-curve figure(s) in {figures_dir} "
        f"and {table7_dir}/table7.png"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
