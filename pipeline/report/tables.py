"""The report's tables: one builder per table, each registered under the name of its template block.

Adding a table to the report takes two things: a builder here, decorated with ``@report_table``,
that takes the ``ReportInputs`` and returns a ``Table``; and a block ``{{ <builder's name> }}``
in templates/tables.md.j2. render.py builds every registered table in the order they are
registered here (the paper's order), and lists the results each one shows under "Where each
number comes from" in that order.

Results are read by pipeline/report/results.py, cells formatted by pipeline/report/cells.py.
Results of the paper profile are preferred wherever they exist; differences between two of our
runs (a Sobolev gain, a mean over seeds) compare the same profile on both sides: here the paper
profile; the quick profile's like-for-like gains are in the appendix (pipeline/report/smoke.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from pipeline.config import RunConfig
from pipeline.report.cells import (
    SMOKE_CELL,
    configuration_notes,
    difference_cell,
    fmt_mean_std,
    fmt_number,
    fmt_pair,
    footnote_refs,
    mean_std,
    noise_cell,
    numerics_mark,
    parameters_cell,
    result_cell,
    test_ppl_cell,
)
from pipeline.report.corpora import STATS_DIR, table7_type_token_ratios
from pipeline.report.results import (
    LEGACY_DIR,
    NOT_RUN,
    SMOKE_PROFILE,
    Result,
    commit_text,
    coverage_cells,
    delta_test_ppl,
    device_name,
    find_result,
    seed_group,
    seed_groups,
    seed_results,
    sobolev_gain,
    sobolev_pairs,
    wall_seconds,
)


@dataclass(frozen=True)
class ReportInputs:
    """Everything a table builder reads."""

    paper: dict  # paper.yaml
    results_root: Path
    cfgs: dict[str, RunConfig]  # run -> its configuration, from params.yaml
    stats_dir: Path = STATS_DIR
    vocab: dict[str, int] = field(default_factory=dict)  # corpus -> vocabulary size, for parameter counts
    sobolev_grid: dict | None = None  # the sobolev-grid stage's output


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    sources: list[Result] = field(default_factory=list)  # the results its cells show


TABLES: dict[str, Callable[[ReportInputs], Table]] = {}


def report_table(build: Callable[[ReportInputs], Table]) -> Callable[[ReportInputs], Table]:
    """Register ``build`` as the table of the template block named like it."""
    TABLES[build.__name__] = build
    return build


def build_tables(inputs: ReportInputs) -> dict[str, Table]:
    return {name: build(inputs) for name, build in TABLES.items()}


def shown_results(tables: list[Table]) -> list[Result]:
    """The results the tables show, each once (a run can fill cells of several tables), in table order."""
    seen, shown = set(), []
    for table in tables:
        for result in table.sources:
            if result.path not in seen:
                shown.append(result)
                seen.add(result.path)
    return shown


# ---------------------------------------------------------------------------- Table 1


def _summarise(cfgs: list[RunConfig], fmt: Callable[[RunConfig], str]) -> str:
    """The common value, with the exceptions in brackets, as in the paper's Table 1."""
    values = [fmt(c) for c in cfgs]
    if not values:
        return "not configured"
    main = Counter(values).most_common(1)[0][0]
    exceptions = []
    for cfg, value in zip(cfgs, values):
        if value != main:
            size = f"{cfg.model.hidden}/{cfg.model.context}"
            exceptions.append(f"({value})" if size == "300/40" else f"({value} for {size})")
    return " ".join([main, *exceptions])


def _schedule_text(cfg: RunConfig) -> str:
    t = cfg.training
    return "valid PPL doesn't improve" if t.lr_schedule == "plateau" else f"every epoch after {t.decay_after}"


def _epochs_text(cfg: RunConfig) -> str:
    text = str(cfg.training.epochs)
    return f"{text} (capped at {cfg.epochs} by profile {cfg.profile})" if cfg.epochs < cfg.training.epochs else text


OUR_TABLE1_VALUES: dict[str, Callable[[RunConfig], str]] = {
    "alpha": lambda c: f"{c.model.alpha:g}",
    "batch_size": lambda c: str(c.training.batch_size),
    "lr": lambda c: f"{c.training.lr:g}",
    "lr_decay": lambda c: f"{c.training.lr_decay:g}",
    "lr_schedule": _schedule_text,
    "bptt": lambda c: str(c.training.bptt),
    # non-overlapping windows with the state carried: one backward pass every bptt steps
    "bptt_frequency": lambda c: str(c.training.bptt),
    "clip_norm": lambda c: f"norms clipped at {c.training.clip_norm:g}",
    "init_scale": lambda c: f"[-{c.training.init_scale:g}, {c.training.init_scale:g}]",
    "epochs": _epochs_text,
}


@report_table
def table1(inputs: ReportInputs) -> Table:
    """The baseline's hyperparameters: Mikolov et al.'s, the paper's, and ours (the Table 2 runs)."""
    paper = inputs.paper
    cfgs = [inputs.cfgs[row["run"]] for row in paper["table2"]["rows"] if row["run"] in inputs.cfgs]
    rows = []
    for row in paper["table1"]["rows"]:
        ours = _summarise(cfgs, OUR_TABLE1_VALUES[row["key"]])
        same = "yes" if ours == row["paper_ours"] else ("—" if row["paper_ours"] == "—" else "no")
        rows.append(
            {
                "Hyperparameter": row["name"],
                "Mikolov et al. (2015)": row["mikolov"],
                "paper: our implementation": row["paper_ours"],
                "ours (params.yaml)": ours,
                "same as paper": same,
            }
        )
    return Table(pd.DataFrame(rows))


# ---------------------------------------------------------------------------- Table 2


@report_table
def table2(inputs: ReportInputs) -> Table:
    """The baseline on PTB: the paper's numbers, the legacy container's and ours."""
    rows, shown = [], []
    for row in inputs.paper["table2"]["rows"]:
        ours = find_result(inputs.results_root, row["run"])
        legacy = find_result(inputs.results_root, row["run"], sources=(LEGACY_DIR,))
        shown += [r for r in (ours, legacy) if r.status != "not_run"]
        rows.append(
            {
                "d_h": row["hidden"],
                "d_s": row["context"],
                "Mikolov et al. (2015), reported": " ".join(
                    filter(None, [fmt_pair(row["reported"]), footnote_refs(row.get("notes", []))])
                ),
                "their code, run by the paper": fmt_pair(row["their_code"]),
                "paper's implementation": fmt_pair(row["paper_impl"]),
                "legacy container (their code, run by us)": result_cell(legacy),
                "ours": result_cell(ours),
                "ours − paper's implementation": difference_cell(ours, row["paper_impl"]),
            }
        )
    return Table(pd.DataFrame(rows), shown)


# ---------------------------------------------------------------------------- Table 3


def _rate(cfg: RunConfig, key: str) -> str:
    d = cfg.model.dropout
    if key == "p_h" and d.regime != "variational":
        return "—"
    return f"{getattr(d, key):g}"


OUR_TABLE3_VALUES: dict[str, Callable[[RunConfig], str]] = {
    "p_i": lambda c: _rate(c, "p_i"),
    "p_h": lambda c: _rate(c, "p_h"),
    "p_o": lambda c: _rate(c, "p_o"),
    "alpha": lambda c: f"{c.model.alpha:g}",
    "lr": lambda c: f"{c.training.lr:g}",
    "lr_decay": lambda c: f"{c.training.lr_decay:g}",
    "lr_schedule": lambda c: (
        "when valid PPL does not improve"
        if c.training.lr_schedule == "plateau"
        else f"after {c.training.decay_after} epochs"
    ),
    "init_scale": lambda c: f"{c.training.init_scale:g}",
    "epochs": lambda c: str(c.training.epochs),
}


def _ptb_and_wt2(cfgs: dict[str, RunConfig], column: dict, fmt: Callable[[RunConfig], str]) -> str:
    """'PTB value (WikiText-2 value)', the bracket only where they differ, as in the paper."""
    ptb, wt2 = cfgs.get(column["ptb"]), cfgs.get(column["wt2"])
    if ptb is None:
        return "not configured"
    value = fmt(ptb)
    if wt2 is not None and fmt(wt2) != value:
        value += f" ({fmt(wt2)})"
    return value


@report_table
def table3(inputs: ReportInputs) -> Table:
    """The stacked SCRN's tuned hyperparameters: one value where ours is the paper's."""
    spec = inputs.paper["table3"]
    rows = []
    for row in spec["rows"]:
        out = {"Hyperparameter": row["name"]}
        for column, paper_value in zip(spec["columns"], row["paper"]):
            ours = _ptb_and_wt2(inputs.cfgs, column, OUR_TABLE3_VALUES[row["key"]])
            # one value where ours is the paper's; "paper / ours ≠" where they differ
            value = paper_value
            if ours != paper_value:
                value = f"{paper_value} / {ours}" + ("" if paper_value == "—" else " ≠")
            notes = footnote_refs(row.get("notes", {}).get(column["name"], []))
            out[column["name"]] = " ".join(filter(None, [value, notes]))
        rows.append(out)
    return Table(pd.DataFrame(rows))


# ---------------------------------------------------------------------------- Tables 4 to 7: test perplexities

CORPUS_LABEL_OF_PREFIX = {"ptb": "PTB", "wt2": "WikiText-2"}  # Table 4's cell keys: <prefix>-<size>


def _notes_cell(cell: dict, run: str | None, cfgs: dict[str, RunConfig]) -> str:
    """A cell's footnotes and note, or why it has no run of ours."""
    if run is None:
        return "published number only"
    if run not in cfgs:
        return f"run {run} not configured"
    notes = footnote_refs([*cell.get("notes", []), *configuration_notes(cfgs.get(run))])
    return " ".join(filter(None, [cell.get("note"), notes]))


def test_ppl_table(spec: dict, inputs: ReportInputs, describe: Callable[[str], tuple[str, float | None]]) -> Table:
    """A paper table of test perplexities in long form: one row per (model, cell).

    ``describe`` maps a cell key of paper.yaml to its data label and parameter budget (or None).
    """
    rows, shown = [], []
    for row in spec["rows"]:
        for key, cell in row["cells"].items():
            data, budget = describe(key)
            run = cell.get("run")
            result = find_result(inputs.results_root, run) if run else NOT_RUN
            if result.status != "not_run":
                shown.append(result)
            rows.append(
                {
                    "model": row["model"],
                    "data": data,
                    "run": run or "—",
                    "parameters": parameters_cell(inputs.cfgs.get(run), inputs.vocab, budget),
                    "paper (test)": fmt_number(cell["paper"]),
                    "ours (valid / test)": result_cell(result) if run else "—",
                    "ours − paper (test)": difference_cell(result, {"test": cell["paper"]}) if run else "—",
                    "notes": _notes_cell(cell, run, inputs.cfgs),
                }
            )
    return Table(pd.DataFrame(rows), shown)


def table4_data_label(key: str) -> str:
    """A Table 4 cell key of paper.yaml ('ptb-small') as the table names its data ('PTB small')."""
    prefix, size = key.split("-")
    return f"{CORPUS_LABEL_OF_PREFIX[prefix]} {size}"


@report_table
def table4(inputs: ReportInputs) -> Table:
    """SCRN against LSTM under each regularisation, PTB and WikiText-2, with the paper's budgets."""
    spec = inputs.paper["table4"]
    return test_ppl_table(spec, inputs, lambda key: (table4_data_label(key), spec["budgets"][key.split("-")[1]]))


@report_table
def table5(inputs: ReportInputs) -> Table:
    """Ablations of SCRN + ND + WT on PTB (valid and test), each with its effect: its test PPL minus
    the full model's of the same size (the table's first row), the paper's and ours."""
    full_row, *_ = inputs.paper["table5"]["rows"]
    rows, shown = [], []
    for row in inputs.paper["table5"]["rows"]:
        for size, cell in row["cells"].items():
            result = find_result(inputs.results_root, cell["run"])
            if result.status != "not_run":
                shown.append(result)
            full = full_row["cells"][size]
            rows.append(
                {
                    "model": row["model"],
                    "size": size,
                    "run": cell["run"],
                    "parameters": parameters_cell(inputs.cfgs.get(cell["run"]), inputs.vocab, None),
                    "paper (valid / test)": fmt_pair(cell["paper"]),
                    "ours (valid / test)": result_cell(result),
                    "ours − paper": difference_cell(result, cell["paper"]),
                    "effect (test): paper / ours": "—"
                    if row is full_row
                    else _ablation_effect_cell(cell, full, inputs.results_root),
                }
            )
    return Table(pd.DataFrame(rows), shown)


def _ablation_effect_cell(cell: dict, full: dict, root: Path) -> str:
    """'paper / ours' test PPL of an ablation minus the full model's (positive: the ablation hurts);
    ours only between two paper-profile results."""
    ours = delta_test_ppl(find_result(root, cell["run"], ("paper",)), find_result(root, full["run"], ("paper",)))
    paper = cell["paper"]["test"] - full["paper"]["test"]
    return f"{paper:+.1f} / " + ("—" if ours is None else f"{ours:+.1f}")


# ---------------------------------------------------------------------------- Section 7: Sobolev


@report_table
def sobolev_table(inputs: ReportInputs) -> Table:
    """One row per (regularisation, β): the share of the loss the penalty is at init, test PPL
    without and with it, the gain (without − with) and the seed noise of the run without, all at
    the paper profile (like with like; the smoke runs' gains are in the appendix)."""
    grid, root, cfgs = inputs.sobolev_grid, inputs.results_root, inputs.cfgs
    shares = {}
    if grid and grid.get("status") == "ok":
        shares = {(run, c["beta"]): share for c in grid["configured"] for run, share in c.items() if run != "beta"}
    rows, shown = [], []
    for row, run, without_paper, with_paper in sobolev_pairs(inputs.paper, root, "paper"):
        without, with_ = find_result(root, row["without"]), find_result(root, run)
        shown += [r for r in (without_paper, with_paper) if r.status != "not_run"]
        beta = cfgs[run].model.sobolev.beta if run in cfgs else None
        share = shares.get((row["without"], beta))
        gain = sobolev_gain(without_paper, with_paper)
        rows.append(
            {
                "model": row["model"],
                "β": "not configured" if beta is None else f"{beta:g}",
                "penalty / loss at init": f"{share:.1%}" if share is not None else "— (run the sobolev-grid stage)",
                "run": run,
                "test without": test_ppl_cell(without),
                "test with": test_ppl_cell(with_),
                "gain": "—" if gain is None else f"{gain:+.1f}",
                "seed std of the run without": noise_cell(row["without"], cfgs, root, "paper"),
                "paper: gain": row["paper_gain"],
            }
        )
    return Table(pd.DataFrame(rows), shown)


@report_table
def sobolev_grid_table(inputs: ReportInputs) -> Table:
    """The measurement behind the β grid: loss and penalty at init, per model."""
    grid = inputs.sobolev_grid
    if not grid or grid.get("status") != "ok":
        return Table(pd.DataFrame())
    return Table(
        pd.DataFrame(
            [
                {
                    "model at init (run)": m["run"],
                    "windows": str(m["windows"]),
                    "loss L (CE summed over 35 steps, batch mean)": f"{m['loss']:.1f}",
                    "penalty P at β = 1 (both layers)": f"{m['penalty_beta1']:.0f}",
                    "P / L": f"{m['ratio']:.3f}",
                    "β for 1% / 10% of L": f"{0.01 / m['ratio']:.2g} / {0.1 / m['ratio']:.2g}",
                }
                for m in grid["measured"]
            ]
        )
    )


# ---------------------------------------------------------------------------- Table 6


@report_table
def table6(inputs: ReportInputs) -> Table:
    """Medium models on the Botha & Blunsom data; cells are keyed by corpus name."""
    language = {c["corpus"]: c["language"] for c in inputs.paper["table6_stats"]["columns"]}
    return test_ppl_table(inputs.paper["table6"], inputs, lambda key: (language[key], None))


# ---------------------------------------------------------------------------- Table 7


def _table7_rows(paper: dict) -> list[dict]:
    """Table 7's rows as test_ppl_table reads them, α for the model; the α = 0.90 cells note the
    Table 4 or 6 run they share."""
    elsewhere = {
        cell["run"]: name
        for name in ("table4", "table6")
        for row in paper[name]["rows"]
        for cell in row["cells"].values()
        if cell.get("run")
    }
    rows = []
    for row in paper["table7"]["rows"]:
        cells = {}
        for corpus in (c["corpus"] for c in paper["table7"]["columns"]):
            cell = dict(row["cells"][corpus])
            if cell["run"] in elsewhere:
                table = elsewhere[cell["run"]].replace("table", "Table ")
                cell["note"] = f"the {table} run (α = 0.9 is the preset's value)"
            cells[corpus] = cell
        rows.append({"model": f"{row['alpha']:.2f}", "cells": cells})
    return rows


@report_table
def table7(inputs: ReportInputs) -> Table:
    """Test PPL per (α, corpus) in long form, rows in the paper's order (α, then its columns)."""
    spec = inputs.paper["table7"]
    label = {c["corpus"]: c["label"] for c in spec["columns"]}
    budget = inputs.paper["table4"]["budgets"]["medium"]
    table = test_ppl_table({"rows": _table7_rows(inputs.paper)}, inputs, lambda key: (label[key], budget))
    return Table(table.frame.rename(columns={"model": "α"}), table.sources)


def table7_series(paper: dict, results_root: Path) -> dict[str, dict]:
    """Corpus -> {label, alpha, paper, ours (None where no reproduced result), profiles and statuses
    of its results}: the figure's data, columns and rows in the paper's order. Smoke runs are no
    result: only paper-profile results whose numerics are accepted give a point."""
    spec = paper["table7"]
    series = {}
    for column in spec["columns"]:
        corpus = column["corpus"]
        s = {"label": column["label"], "alpha": [], "paper": [], "ours": [], "profiles": set(), "statuses": set()}
        for row in spec["rows"]:
            cell = row["cells"][corpus]
            result = find_result(results_root, cell["run"])
            s["alpha"].append(row["alpha"])
            s["paper"].append(cell["paper"])
            s["ours"].append(result.metrics["test_ppl"] if result.reproduced else None)
            s["statuses"].add("smoke_only" if result.smoke_only else result.status)
            if result.reproduced:
                s["profiles"].add(result.profile)
        series[corpus] = s
    return series


def _best_alphas(alphas: list[float], values: list[float | None]) -> str:
    known = [(v, a) for a, v in zip(alphas, values) if v is not None]
    if not known:
        return "—"
    best = min(v for v, _ in known)
    return ", ".join(f"{a:.2f}" for v, a in known if v == best)


def _none_reason(statuses: set[str]) -> str:
    """Why a corpus has no reproduced α: its cells' statuses in one phrase."""
    if statuses == {"data_missing"}:
        return "data missing"
    return "smoke runs only" if "smoke_only" in statuses else "not run"


@report_table
def table7_best_alpha(inputs: ReportInputs) -> Table:
    """Per corpus: its TTR and the α with the lowest test PPL, the paper's and ours (the paper's
    reading: 0.9 for TTR > 0.03, 0.95 for TTR ≈ 0.03, 0.97 for TTR < 0.03)."""
    ttr = table7_type_token_ratios(inputs.paper, inputs.stats_dir)
    rows = []
    for corpus, s in table7_series(inputs.paper, inputs.results_root).items():
        value, source = ttr.get(corpus, (None, "no statistics yet"))
        n_ours = sum(v is not None for v in s["ours"])
        ours = _best_alphas(s["alpha"], s["ours"])
        if n_ours and n_ours < len(s["alpha"]):
            ours += f" (only {n_ours} of {len(s['alpha'])} α reproduced)"
        rows.append(
            {
                "corpus": s["label"],
                "TTR": "—" if value is None else f"{value:.4f}",
                "TTR from": source,
                "paper: best α": _best_alphas(s["alpha"], s["paper"]),
                "ours: best α": ours if n_ours else f"— ({_none_reason(s['statuses'])})",
            }
        )
    return Table(pd.DataFrame(rows))


# ---------------------------------------------------------------------------- seeds


def _seeds_finished(runs: list[str], results: list[Result], results_root: Path) -> str:
    """ "n of m", and where the smoke profile has more seeds finished, how many (so that a single
    paper-profile seed beside three smoke runs does not read as two seeds missing)."""
    text = f"{len(results)} of {len(runs)}"
    smoke = len(seed_results(runs, results_root, (SMOKE_PROFILE,)))
    return text + (f" ({smoke} of {len(runs)} as smoke runs)" if smoke > len(results) else "")


def paper_reference(paper: dict, table: str, run: str) -> dict | None:
    """The paper's valid/test (or test) numbers for ``run`` in ``table`` of paper.yaml."""
    if table == "table2":
        return next((row["paper_impl"] for row in paper["table2"]["rows"] if row["run"] == run), None)
    for row in paper[table]["rows"]:
        for cell in row["cells"].values():
            if cell.get("run") == run:
                return cell["paper"] if isinstance(cell["paper"], dict) else {"test": cell["paper"]}
    return None


def _paper_pair_cell(ref: dict | None) -> str:
    if ref is None:
        return "—"
    return fmt_pair(ref) if "valid" in ref else f"— / {fmt_number(ref['test'])}"


def _seed_numbers(results: list[Result], cfgs: dict[str, RunConfig]) -> dict[str, str]:
    """The cells of seeds finished at the paper profile: test per seed, valid and test mean ± std."""
    test = [r.metrics["test_ppl"] for r in results]
    seeds = [(cfgs[r.run].training.seed if r.run in cfgs else "?") for r in results]
    return {
        "test per seed": ", ".join(f"{s}: {t:.1f}" for s, t in zip(seeds, test)),
        "ours: valid, mean ± std": fmt_mean_std([r.metrics["best_valid_ppl"] for r in results]),
        "ours: test, mean ± std": fmt_mean_std(test) + numerics_mark(results[0]),
    }


def _mean_minus_paper(results: list[Result], ref: dict | None) -> str:
    if not results or ref is None:
        return "—"
    means = {
        "valid": mean_std([r.metrics["best_valid_ppl"] for r in results])[0],
        "test": mean_std([r.metrics["test_ppl"] for r in results])[0],
    }
    return " / ".join(f"{means[k] - ref[k]:+.1f}" for k in ("valid", "test") if k in ref)


@report_table
def seeds_table(inputs: ReportInputs) -> Table:
    """Mean ± std over the seeds of each repeated run, at the paper profile; smoke runs are
    counted, not shown (their numbers are in the appendix)."""
    root = inputs.results_root
    rows, shown = [], []
    for row in inputs.paper["seeds"]["rows"]:
        group = seed_group(row["run"], inputs.cfgs)
        results = seed_results(group, root, ("paper",))
        shown += results
        ref = paper_reference(inputs.paper, row["table"], row["run"])
        repeats = ", ".join(name.removeprefix(row["run"]) for name in group[1:])
        out = {
            "model": row["model"],
            "runs": row["run"] + (f" (and {repeats})" if repeats else ""),
            "seeds finished": _seeds_finished(group, results, root),
        }
        if results:
            out.update(_seed_numbers(results, inputs.cfgs))
        else:
            smoke = seed_results(group, root, (SMOKE_PROFILE,))
            out["test per seed"] = "—"
            out["ours: valid, mean ± std"] = out["ours: test, mean ± std"] = SMOKE_CELL if smoke else "not run"
        out["paper (valid / test)"] = _paper_pair_cell(ref)
        out["paper from"] = row["table"].replace("table", "Table ")
        out["mean − paper"] = _mean_minus_paper(results, ref)
        rows.append(out)
    return Table(pd.DataFrame(rows), shown)


# ---------------------------------------------------------------------------- coverage


COVERAGE_COLUMNS = (
    "paper profile",
    "awaiting a paired check",
    "smoke run only",
    "data missing",
    "not run",
    "published only",
)


def coverage_category(result: Result | None) -> str:
    """Which coverage column a cell counts in (``None``: a published number with no run of ours)."""
    if result is None:
        return "published only"
    if result.status == "ok":
        if result.reproduced:
            return "paper profile"
        return "smoke run only" if result.reduced else "awaiting a paired check"
    return "data missing" if result.status == "data_missing" else "not run"


@report_table
def coverage_table(inputs: ReportInputs) -> Table:
    """Per results table: how many cells are reproduced at the paper profile, await a paired check
    of their numerics, have only a smoke run, wait for data, are not yet run, or are published
    numbers with no run of ours."""
    rows = []
    for table, runs in coverage_cells(inputs.paper, seed_groups(inputs.paper, inputs.cfgs)).items():
        counts = Counter(coverage_category(find_result(inputs.results_root, run) if run else None) for run in runs)
        rows.append({"table": table, "cells": len(runs), **{k: counts[k] for k in COVERAGE_COLUMNS}})
    return Table(pd.DataFrame(rows).astype(str))


# ---------------------------------------------------------------------------- built from the tables above


def sources_table(results: list[Result]) -> pd.DataFrame:
    """Where each full-schedule number comes from (results/<from>/<run>/metrics.json); smoke runs
    are listed in the appendix instead."""
    rows = []
    for r in results:
        if r.status != "ok" or r.smoke_only:
            continue
        m = r.metrics
        seconds = wall_seconds(m)
        rows.append(
            {
                "run": r.run,
                "from": r.profile,
                "numerics": r.verdict.label() if r.verdict else "—",
                "params hash": m.get("params_hash", "—"),
                "commit": commit_text(m),
                "device": device_name(m),
                "epochs": str(m.get("epochs", "—")),
                "wall time (s)": "—" if seconds is None else f"{seconds:.0f}",
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Figure 2


def figure2_table(summary: dict) -> pd.DataFrame | None:
    """Figure 2's numbers per model (None: no model measured)."""
    rows = [
        {
            "model": m["model"],
            "run": m["run"],
            # records that predate the field all came from fp32 models
            "trained in": (m.get("trained") or {}).get("precision", "fp32"),
            "test tokens": f"{m['tokens']:,}",
            f"mean change, {m['top_types']} most frequent types": f"{m['top_mean']:.4g}",
            "mean change, other tokens": f"{m['rest_mean']:.4g}",
            "other / frequent": f"{m['ratio']:.3f}",
        }
        for m in summary.get("models", [])
    ]
    return pd.DataFrame(rows) if rows else None
