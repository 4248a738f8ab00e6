"""Render reports/tables.md from the report's DataFrames with jinja2 and tabulate."""
from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pandas as pd
from tabulate import tabulate

from pipeline.config import RunConfig
from pipeline.report import analyses
from pipeline.report import corpora as corpus_tables
from pipeline.report import headline as headlines
from pipeline.report import smoke, speed, tables
from pipeline.report.search import search_summaries

TEMPLATES = Path(__file__).with_name("templates")


def markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(nothing yet)_"
    return tabulate(df, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


FOOTNOTE_REF = re.compile(r"\[\^([\w.-]+)\](?!:)")


def with_footnotes(text: str, footnotes: dict[str, str]) -> str:
    """``text`` followed by the definition of every footnote it refers to, in order of first use;
    a reference with no definition is a bug of the report, not of the results."""
    used = list(dict.fromkeys(FOOTNOTE_REF.findall(text)))
    missing = [k for k in used if k not in footnotes]
    if missing:
        raise ValueError(f"the report refers to undefined footnote(s): {', '.join(missing)}")
    definitions = "\n".join(f"[^{k}]: {' '.join(footnotes[k].split())}" for k in used)
    return text.rstrip("\n") + ("\n\n" + definitions + "\n" if used else "\n")


def render_report(results_root: Path, profile: str, run_cfgs: dict[str, RunConfig],
                  stats_dir: Path = corpus_tables.STATS_DIR, paper: dict | None = None,
                  corpora: list[str] | None = None, figures: list[tuple[str, str]] | None = None,
                  figure2_dir: Path | None = None, sobolev_grid: Path | None = None,
                  table7_figure: str | None = None, benchmarks_dir: Path | None = None,
                  report_dir: Path = Path("reports")) -> str:
    """The Markdown report; ``figures`` are (title, file name) pairs already drawn in reports/figures/,
    ``table7_figure`` the Table 7 figure's path relative to the report (None: not drawn),
    ``report_dir`` where the report lives (figures elsewhere are linked relative to it)."""
    paper = paper or tables.load_paper()
    vocab = tables.vocab_sizes(stats_dir)
    corpus_stats = corpus_tables.corpus_stats_table(paper, stats_dir, list(corpora or []))
    roundtrip, roundtrip_meta = corpus_tables.roundtrip_table(stats_dir)
    table2_runs = [row["run"] for row in paper["table2"]["rows"]]
    t1 = tables.table1(paper, [run_cfgs[r] for r in table2_runs if r in run_cfgs])
    t2, used = tables.table2(paper, results_root)
    t4, used4 = tables.table4(paper, results_root, run_cfgs, vocab)
    t5, used5 = tables.table5(paper, results_root, run_cfgs, vocab)
    t6, used6 = tables.table6(paper, results_root, run_cfgs, vocab)
    grid = analyses.load_sobolev_grid(sobolev_grid)
    t_sob, used_sob = analyses.sobolev_table(paper, results_root, run_cfgs, grid)
    t7, used7 = analyses.table7(paper, results_root, run_cfgs, vocab)
    ttr = analyses.type_token_ratios(paper, stats_dir, [c["corpus"] for c in paper["table7"]["columns"]])
    t_seeds, used_seeds = analyses.seeds_table(paper, results_root, run_cfgs)
    seed_runs = {row["run"]: analyses.seed_group(row["run"], run_cfgs) for row in paper["seeds"]["rows"]}
    seen = {r.path for r in used}
    for r in used4 + used5 + used_sob + used6 + used7 + used_seeds:  # a run can appear in several tables; list its source once
        if r.path not in seen:
            used.append(r)
            seen.add(r.path)
    figure2 = tables.figure2_summary(figure2_dir, results_root, report_dir)
    head = headlines.headline(paper, results_root)
    footnotes = dict(paper.get("footnotes", {}))
    footnotes.update(r.verdict.footnote() for r in used if r.verdict is not None and r.verdict.accepted)
    smoke_results = smoke.smoke_results(run_cfgs, results_root)
    searches = search_summaries(results_root)
    for s in searches:
        if "table" in s:
            s["markdown"] = markdown(s["table"])
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    text = env.get_template("tables.md.j2").render(
        paper=paper,
        profile=profile,
        headline=head,
        reproduced=markdown(headlines.reproduced_table(head, run_cfgs)),
        awaiting=markdown(headlines.awaiting_table(head)) if head.awaiting_check else "",
        smoke_budget=smoke.budget_sentence(smoke_results),
        smoke_uniform=smoke.uniform_sentence(vocab),
        smoke_table=markdown(smoke.smoke_table(paper, results_root, run_cfgs)),
        table1=markdown(t1),
        table2=markdown(t2),
        table3=markdown(tables.table3(paper, run_cfgs)),
        table4=markdown(t4),
        table5=markdown(t5),
        table6=markdown(t6),
        sobolev=markdown(t_sob),
        sobolev_grid=grid,
        sobolev_grid_table=markdown(analyses.sobolev_grid_table(grid)),
        table7=markdown(t7),
        table7_best=markdown(analyses.table7_best_alpha(paper, results_root, ttr)),
        table7_figure=table7_figure,
        seeds=markdown(t_seeds),
        sources=markdown(tables.sources_table(used)),
        corpus_stats=markdown(corpus_stats),
        roundtrip=markdown(roundtrip),
        roundtrip_meta=roundtrip_meta,
        coverage=markdown(tables.coverage_table(paper, results_root, seed_runs)),
        figure2=figure2,
        figure2_table=markdown(figure2["table"]) if figure2["table"] is not None else "",
        figures=figures or [],
        speed=[{**sec, "table": markdown(sec["table"])} for sec in speed.speed_sections(benchmarks_dir)],
        searches=searches,
        search_space=paper["search_space"],
    )
    return with_footnotes(text, footnotes)
