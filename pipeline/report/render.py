"""Render reports/tables.md from the report's DataFrames with jinja2 and tabulate.

Every table registered in pipeline/report/tables.py reaches the template under its builder's
name, with no change here; the sections built elsewhere (headline, smoke-run appendix, corpus
statistics, Figure 2, training speed, random search) each have a ``*_context`` function below.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pandas as pd
from tabulate import tabulate

from pipeline.config import RunConfig
from pipeline.report import corpora as corpus_tables
from pipeline.report import headline as headlines
from pipeline.report import smoke, speed, tables
from pipeline.report.results import figure2_summary, load_paper, load_sobolev_grid
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


def render_report(
    results_root: Path,
    profile: str,
    run_cfgs: dict[str, RunConfig],
    stats_dir: Path = corpus_tables.STATS_DIR,
    paper: dict | None = None,
    corpora: list[str] | None = None,
    figures: list[tuple[str, str]] | None = None,
    figure2_dir: Path | None = None,
    sobolev_grid: Path | None = None,
    table7_figure: str | None = None,
    benchmarks_dir: Path | None = None,
    report_dir: Path = Path("reports"),
) -> str:
    """The Markdown report; ``figures`` are (title, file name) pairs already drawn in reports/figures/,
    ``table7_figure`` the Table 7 figure's path relative to the report (None: not drawn),
    ``report_dir`` where the report lives (figures elsewhere are linked relative to it)."""
    paper = paper or load_paper()
    inputs = tables.ReportInputs(
        paper, results_root, run_cfgs, stats_dir, corpus_tables.vocab_sizes(stats_dir), load_sobolev_grid(sobolev_grid)
    )
    built = tables.build_tables(inputs)
    shown = tables.shown_results(list(built.values()))
    footnotes = dict(paper.get("footnotes", {}))
    footnotes.update(r.verdict.footnote() for r in shown if r.verdict is not None and r.verdict.accepted)
    context = {
        **{name: markdown(table.frame) for name, table in built.items()},
        "sources": markdown(tables.sources_table(shown)),
        "paper": paper,
        "profile": profile,
        "sobolev_grid": inputs.sobolev_grid,
        "table7_figure": table7_figure,
        "figures": figures or [],
        "search_space": paper["search_space"],
        **headline_context(paper, results_root, run_cfgs),
        **smoke_context(paper, results_root, run_cfgs, inputs.vocab),
        **corpus_context(paper, stats_dir, list(corpora or [])),
        **figure2_context(figure2_summary(figure2_dir, results_root, report_dir)),
        "speed": [{**sec, "table": markdown(sec["table"])} for sec in speed.speed_sections(benchmarks_dir)],
        "searches": searches_context(results_root),
    }
    return with_footnotes(template().render(**context), footnotes)


def template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("tables.md.j2")


def headline_context(paper: dict, results_root: Path, cfgs: dict[str, RunConfig]) -> dict:
    head = headlines.headline(paper, results_root)
    return {
        "headline": head,
        "reproduced": markdown(headlines.reproduced_table(head, cfgs)),
        "awaiting": markdown(headlines.awaiting_table(head)) if head.awaiting_check else "",
    }


def smoke_context(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int]) -> dict:
    return {
        "smoke_budget": smoke.budget_sentence(smoke.smoke_results(cfgs, results_root)),
        "smoke_uniform": smoke.uniform_sentence(vocab),
        "smoke_table": markdown(smoke.smoke_table(paper, results_root, cfgs)),
    }


def corpus_context(paper: dict, stats_dir: Path, corpora: list[str]) -> dict:
    roundtrip, roundtrip_meta = corpus_tables.roundtrip_table(stats_dir)
    return {
        "corpus_stats": markdown(corpus_tables.corpus_stats_table(paper, stats_dir, corpora)),
        "roundtrip": markdown(roundtrip),
        "roundtrip_meta": roundtrip_meta,
    }


def figure2_context(summary: dict) -> dict:
    table = tables.figure2_table(summary) if summary["status"] == "ok" else None
    return {"figure2": summary, "figure2_table": markdown(table) if table is not None else ""}


def searches_context(results_root: Path) -> list[dict]:
    searches = search_summaries(results_root)
    for s in searches:
        if "table" in s:
            s["markdown"] = markdown(s["table"])
    return searches
