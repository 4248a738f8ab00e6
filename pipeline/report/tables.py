"""Paper numbers (paper.yaml) + our results (results/<profile>/<run>/metrics.json) -> tables.

Every cell says what it is: a full-schedule number (profile ``paper``) with a footnote on its
numerics, "unvalidated (...)" for a paper-profile result whose change of numerics has no passing
paired check (pipeline/report/numerics.py), "smoke run only" where only the quick profile ran
(its numbers go to the report's appendix, never to an "ours" column), "data missing", or
"not run". Results of the paper profile are preferred wherever they exist.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from pipeline.config import RunConfig
from pipeline.errors import DataFormatError
from pipeline.models import parameter_count
from pipeline.report.numerics import Verdict, judge

PAPER_FILE = Path(__file__).with_name("paper.yaml")
PROFILE_PREFERENCE = ("paper", "quick")
LEGACY_DIR = "legacy-torch"  # results/legacy-torch/<run>/metrics.json, written by the legacy container
SMOKE_PROFILE = "quick"
SMOKE_CELL = "smoke run only"
FAR_FROM_PAPER = 1.5  # test PPL: a difference beyond this is flagged beside the cell


def load_paper(path: Path = PAPER_FILE) -> dict:
    return yaml.safe_load(Path(path).read_text())


@dataclass(frozen=True)
class Result:
    run: str
    status: str  # "ok", "data_missing", "diverged" (legacy container: NaN) or "not_run"
    profile: str | None = None
    path: Path | None = None
    metrics: dict | None = None
    verdict: Verdict | None = None  # paper-profile results only: may it fill its cell?

    @property
    def reduced(self) -> bool:
        return self.status == "ok" and bool(self.metrics.get("reduced", self.profile != "paper"))

    @property
    def reproduced(self) -> bool:
        """A full-schedule result that may fill its cell (its numerics accepted)."""
        return self.status == "ok" and not self.reduced and (self.verdict is None or self.verdict.accepted)

    @property
    def smoke_only(self) -> bool:
        return self.status == "ok" and self.reduced and self.profile == SMOKE_PROFILE


def _read_metrics(path: Path) -> dict | None:
    """The JSON object at ``path`` (None: no file); one that cannot be read fails naming the file."""
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(metrics, dict) else f"holds a JSON {type(metrics).__name__}, not an object"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"cannot be read ({exc})"
    if problem:
        raise DataFormatError(f"{path} {problem}: it is truncated or corrupt. Restore it (`git checkout -- {path}` "
                              "where it is committed) or re-run the stage that writes it")
    return metrics


def find_result(results_root: Path, run: str, sources: tuple[str, ...] = PROFILE_PREFERENCE) -> Result:
    """The first usable result of ``run`` among ``sources`` (subdirectories of ``results_root``)."""
    missing = None
    for source in sources:
        path = Path(results_root) / source / run / "metrics.json"
        metrics = _read_metrics(path)
        if metrics is None:
            continue
        status = metrics.get("status", "ok")
        if status == "ok":
            profile = metrics.get("profile", source)
            verdict = judge(metrics, results_root) if profile == "paper" else None
            return Result(run, "ok", profile, path, metrics, verdict)
        if missing is None:
            missing = Result(run, status, metrics.get("profile", source), path, metrics)
    return missing or Result(run, "not_run")


# ---------------------------------------------------------------------------- cell formatting


def fmt_number(x: float | int) -> str:
    """Paper numbers keep the precision they were printed with; ours get one decimal."""
    return str(x) if isinstance(x, int) else f"{x:.1f}"


def fmt_pair(pair: dict) -> str:
    return f"{fmt_number(pair['valid'])} / {fmt_number(pair['test'])}"


def footnote_refs(keys) -> str:
    """Markdown footnote references (their texts: paper.yaml's ``footnotes``, defined by the report)."""
    return " ".join(f"[^{k}]" for k in keys)


def status_cell(result: Result) -> str | None:
    """The cell of a result that has no number to show (None: it has one)."""
    if result.status == "not_run":
        return "not run"
    if result.status == "data_missing":
        return "data missing"
    if result.status == "diverged":
        epoch = (result.metrics or {}).get("diverged_epoch")
        return f"diverged (NaN, epoch {epoch})" if epoch else "diverged (NaN)"
    if result.smoke_only:
        return SMOKE_CELL
    if result.verdict is not None and not result.verdict.accepted:
        return result.verdict.unvalidated_text()
    return None


def numerics_mark(result: Result) -> str:
    """The footnote reference that states a paper-profile number's numerics."""
    return f" [^{result.verdict.footnote()[0]}]" if result.verdict is not None else ""


def result_cell(result: Result) -> str:
    """"valid / test" of a result that may fill its cell, else what stands in its place."""
    text = status_cell(result)
    if text is not None:
        return text
    m = result.metrics
    cell = f"{m['best_valid_ppl']:.1f} / {m['test_ppl']:.1f}"
    return f"{cell} ({result.profile})" if result.reduced else cell + numerics_mark(result)


def beyond_tolerance(difference: float) -> bool:
    """More than FAR_FROM_PAPER from the paper (a float's last bit does not make 1.5 more than 1.5)."""
    return abs(difference) > FAR_FROM_PAPER + 1e-9


def far_from_paper(result: Result, reference: dict) -> bool:
    return beyond_tolerance(result.metrics["test_ppl"] - reference["test"])


def difference_cell(result: Result, reference: dict) -> str:
    """Ours minus the paper for the splits ``reference`` gives (valid and test, or test alone),
    flagged where the test PPL lies more than FAR_FROM_PAPER from the paper's."""
    if status_cell(result) is not None:
        return "—"
    if result.reduced:
        return f"n/a ({result.profile})"
    ours = {"valid": result.metrics["best_valid_ppl"], "test": result.metrics["test_ppl"]}
    text = " / ".join(f"{ours[k] - reference[k]:+.1f}" for k in ("valid", "test") if k in reference)
    return text + (f" (test beyond ±{FAR_FROM_PAPER:g})" if far_from_paper(result, reference) else "")


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


def table1(paper: dict, cfgs: list[RunConfig]) -> pd.DataFrame:
    rows = []
    for row in paper["table1"]["rows"]:
        ours = _summarise(cfgs, OUR_TABLE1_VALUES[row["key"]])
        same = "yes" if ours == row["paper_ours"] else ("—" if row["paper_ours"] == "—" else "no")
        rows.append({
            "Hyperparameter": row["name"],
            "Mikolov et al. (2015)": row["mikolov"],
            "paper: our implementation": row["paper_ours"],
            "ours (params.yaml)": ours,
            "same as paper": same,
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Table 2


def table2(paper: dict, results_root: Path) -> tuple[pd.DataFrame, list[Result]]:
    rows, used = [], []
    for row in paper["table2"]["rows"]:
        ours = find_result(results_root, row["run"])
        legacy = find_result(results_root, row["run"], sources=(LEGACY_DIR,))
        used += [r for r in (ours, legacy) if r.status != "not_run"]
        rows.append({
            "d_h": row["hidden"],
            "d_s": row["context"],
            "Mikolov et al. (2015), reported": " ".join(filter(None, [fmt_pair(row["reported"]),
                                                                      footnote_refs(row.get("notes", []))])),
            "their code, run by the paper": fmt_pair(row["their_code"]),
            "paper's implementation": fmt_pair(row["paper_impl"]),
            "legacy container (their code, run by us)": result_cell(legacy),
            "ours": result_cell(ours),
            "ours − paper's implementation": difference_cell(ours, row["paper_impl"]),
        })
    return pd.DataFrame(rows), used


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
    "lr_schedule": lambda c: ("when valid PPL does not improve" if c.training.lr_schedule == "plateau"
                              else f"after {c.training.decay_after} epochs"),
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


def table3(paper: dict, cfgs: dict[str, RunConfig]) -> pd.DataFrame:
    columns = paper["table3"]["columns"]
    rows = []
    for row in paper["table3"]["rows"]:
        out = {"Hyperparameter": row["name"]}
        for column, paper_value in zip(columns, row["paper"]):
            ours = _ptb_and_wt2(cfgs, column, OUR_TABLE3_VALUES[row["key"]])
            # one value where ours is the paper's; "paper / ours ≠" where they differ
            value = paper_value if ours == paper_value else f"{paper_value} / {ours}" + ("" if paper_value == "—" else " ≠")
            notes = footnote_refs(row.get("notes", {}).get(column["name"], []))
            out[column["name"]] = " ".join(filter(None, [value, notes]))
        rows.append(out)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Tables 4 and 5

CORPUS_OF_PREFIX = {"ptb": ("ptb", "PTB"), "wt2": ("wikitext-2", "WikiText-2")}


def vocab_sizes(stats_dir: Path) -> dict[str, int]:
    """Vocabulary size per prepared corpus, from the prepare stage's statistics files."""
    sizes = {}
    for path in sorted(Path(stats_dir).glob("*.json")):
        stats = json.loads(path.read_text())
        if stats.get("status", "ok") == "ok" and "vocab_size" in stats:
            sizes[stats["corpus"]] = stats["vocab_size"]
    return sizes


def parameters_cell(cfg: RunConfig | None, vocab: dict[str, int], budget: float | None) -> str:
    if cfg is None:
        return "—"
    if cfg.corpus not in vocab:
        return "—"  # no vocabulary yet: the corpus is missing or not prepared
    n = parameter_count(cfg.model, vocab[cfg.corpus])
    text = f"{n / 1e6:.2f}M"
    # The paper's budget bounds its own SCRN models; the cited LSTMs are sized by their authors.
    if budget is not None and cfg.model.arch != "lstm" and n > budget:
        text += f" > {budget / 1e6:g}M {footnote_refs(['over-budget'])}"
    return text


def configuration_notes(cfg: RunConfig | None) -> list[str]:
    """Footnote keys that follow from a run's configuration: how LSTM runs differ from their sources."""
    if cfg is None or cfg.model.arch != "lstm":
        return []
    return ["single-stream"] + (["kim-plateau"] if cfg.training.plateau_threshold else [])


def _run_cells(run: str | None, results_root: Path) -> Result:
    return find_result(results_root, run) if run else Result("", "not_run")


def test_ppl_table(
    spec: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int],
    describe: Callable[[str], tuple[str, float | None]],
) -> tuple[pd.DataFrame, list[Result]]:
    """A paper table of test perplexities in long form: one row per (model, cell).

    ``describe`` maps a cell key of paper.yaml to its data label and parameter budget (or None).
    """
    rows, used = [], []
    for row in spec["rows"]:
        for key, cell in row["cells"].items():
            data, budget = describe(key)
            run = cell.get("run")
            result = _run_cells(run, results_root)
            if result.status != "not_run":
                used.append(result)
            notes = footnote_refs([*cell.get("notes", []), *configuration_notes(cfgs.get(run))])
            if run is None:
                notes = "published number only"
            elif run not in cfgs:
                notes = f"run {run} not configured"
            elif cell.get("note"):
                notes = " ".join(filter(None, [cell["note"], notes]))
            rows.append({
                "model": row["model"],
                "data": data,
                "run": run or "—",
                "parameters": parameters_cell(cfgs.get(run), vocab, budget),
                "paper (test)": fmt_number(cell["paper"]),
                "ours (valid / test)": result_cell(result) if run else "—",
                "ours − paper (test)": difference_cell(result, {"test": cell["paper"]}) if run else "—",
                "notes": notes,
            })
    return pd.DataFrame(rows), used


def table4(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int]) -> tuple[pd.DataFrame, list[Result]]:
    spec = paper["table4"]

    def describe(key: str) -> tuple[str, float]:
        prefix, size = key.split("-")
        return f"{CORPUS_OF_PREFIX[prefix][1]} {size}", spec["budgets"][size]

    return test_ppl_table(spec, results_root, cfgs, vocab, describe)


def table6(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int]) -> tuple[pd.DataFrame, list[Result]]:
    """Medium models on the Botha & Blunsom data; cells are keyed by corpus name."""
    language = {c["corpus"]: c["language"] for c in paper["table6_stats"]["columns"]}
    return test_ppl_table(paper["table6"], results_root, cfgs, vocab, lambda key: (language[key], None))


def table5(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int]) -> tuple[pd.DataFrame, list[Result]]:
    rows, used = [], []
    for row in paper["table5"]["rows"]:
        for size, cell in row["cells"].items():
            result = find_result(results_root, cell["run"])
            if result.status != "not_run":
                used.append(result)
            rows.append({
                "model": row["model"],
                "size": size,
                "run": cell["run"],
                "parameters": parameters_cell(cfgs.get(cell["run"]), vocab, None),
                "paper (valid / test)": fmt_pair(cell["paper"]),
                "ours (valid / test)": result_cell(result),
                "ours − paper": difference_cell(result, cell["paper"]),
            })
    return pd.DataFrame(rows), used


# ---------------------------------------------------------------------------- Figure 2


FIGURE2_RESULTS = Path("paper") / "figure2"  # under the results root: paper-profile Figure 2 numbers


def _figure2_table(summary: dict) -> pd.DataFrame | None:
    rows = [{
        "model": m["model"], "run": m["run"], "test tokens": f"{m['tokens']:,}",
        f"mean change, {m['top_types']} most frequent types": f"{m['top_mean']:.4g}",
        "mean change, other tokens": f"{m['rest_mean']:.4g}", "other / frequent": f"{m['ratio']:.3f}",
    } for m in summary.get("models", [])]
    return pd.DataFrame(rows) if rows else None


def figure2_summary(stage_dir: Path | None, results_root: Path | None = None,
                    report_dir: Path = Path("reports")) -> dict:
    """Figure 2 from paper-profile models only: the numbers under results/paper/figure2/ (computed
    while the weights existed, which stay out of git), else the figure2 stage's output if it ran on
    paper-profile models; otherwise its status says it awaits them. ``image`` is the figure's path
    relative to the report (None: no figure)."""
    sources = [Path(results_root) / FIGURE2_RESULTS] if results_root is not None else []
    sources += [Path(stage_dir)] if stage_dir is not None else []
    for directory in sources:
        summary = _read_metrics(directory / "summary.json")
        if summary and summary.get("status") == "ok" and summary.get("profile") == "paper":
            image = directory / "figure2.png"
            return {**summary, "reason": "", "table": _figure2_table(summary),
                    "image": os.path.relpath(image, report_dir) if image.is_file() else None}
    stage = _read_metrics(Path(stage_dir) / "summary.json") if stage_dir is not None else None
    reason = (stage or {}).get("reason") or "no paper-profile models of the two runs yet"
    return {"status": "awaiting paper-profile models", "reason": reason, "table": None, "image": None}


# ---------------------------------------------------------------------------- coverage


def coverage_cells(paper: dict, seed_runs: dict[str, list[str]] | None = None) -> dict[str, list[str | None]]:
    """Per results table, in the paper's order, the run behind each cell (None: published only).

    Section 7 counts its runs with the penalty (its runs without it are cells of Tables 4 and 5);
    the seed table counts every seed of every repeated run (``seed_runs``: run -> its seeds' runs).
    """
    seed_runs = seed_runs or {}
    return {
        "Table 2": [row["run"] for row in paper["table2"]["rows"]],
        "Table 4": [c.get("run") for row in paper["table4"]["rows"] for c in row["cells"].values()],
        "Table 5": [c["run"] for row in paper["table5"]["rows"] for c in row["cells"].values()],
        "Section 7 (Sobolev)": [run for row in paper["sobolev"]["rows"] for run in row["runs"]],
        "Table 6": [c.get("run") for row in paper["table6"]["rows"] for c in row["cells"].values()],
        "Table 7": [c["run"] for row in paper["table7"]["rows"] for c in row["cells"].values()],
        "Seeds (not in the paper)": [run for row in paper["seeds"]["rows"]
                                     for run in seed_runs.get(row["run"], [row["run"]])],
    }


COVERAGE_COLUMNS = ("paper profile", "awaiting a paired check", "smoke run only", "data missing", "not run",
                    "published only")


def coverage_category(result: Result | None) -> str:
    """Which coverage column a cell counts in (``None``: a published number with no run of ours)."""
    if result is None:
        return "published only"
    if result.status == "ok":
        if result.reproduced:
            return "paper profile"
        return "smoke run only" if result.reduced else "awaiting a paired check"
    return "data missing" if result.status == "data_missing" else "not run"


def coverage_table(paper: dict, results_root: Path, seed_runs: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per results table: how many cells are reproduced at the paper profile, await a paired check
    of their numerics, have only a smoke run, wait for data, are not yet run, or are published
    numbers with no run of ours."""
    rows = []
    for table, runs in coverage_cells(paper, seed_runs).items():
        counts = Counter(coverage_category(find_result(results_root, run) if run else None) for run in runs)
        rows.append({"table": table, "cells": len(runs), **{k: counts[k] for k in COVERAGE_COLUMNS}})
    return pd.DataFrame(rows).astype(str)


def _commit(metrics: dict) -> str:
    """The commit a result ran at (provenance's, which corrects a stale one), marked when the tree was dirty."""
    provenance = metrics.get("provenance") or {}
    rev = str(provenance.get("git_rev") or metrics.get("git_rev") or "—")[:10]
    return rev + (" (dirty)" if provenance.get("git_dirty") else "")


def wall_seconds(metrics: dict) -> float | None:
    """The run's wall time: provenance's (start to end) where recorded, else the training epochs' sum."""
    return (metrics.get("provenance") or {}).get("wall_time_s", metrics.get("wall_time_s"))


def device_name(metrics: dict) -> str:
    """The machine a result ran on: its recorded model name where there is one, else cpu/cuda."""
    return (metrics.get("provenance") or {}).get("device_name") or metrics.get("device", "—")


def sources_table(results: list[Result]) -> pd.DataFrame:
    """Where each full-schedule number comes from (results/<from>/<run>/metrics.json); smoke runs
    are listed in the appendix instead."""
    rows = []
    for r in results:
        if r.status != "ok" or r.smoke_only:
            continue
        m = r.metrics
        seconds = wall_seconds(m)
        rows.append({
            "run": r.run,
            "from": r.profile,
            "numerics": r.verdict.label() if r.verdict else "—",
            "params hash": m.get("params_hash", "—"),
            "commit": _commit(m),
            "device": device_name(m),
            "epochs": str(m.get("epochs", "—")),
            "wall time (s)": "—" if seconds is None else f"{seconds:.0f}",
        })
    return pd.DataFrame(rows)
