"""The report's tables beyond the paper's Tables 1-6: Table 7 (the α sweep), Section 7 (the Sobolev
penalty) and the seed repeats (run-to-run noise).

Cells follow pipeline/report/tables.py: a full-schedule number, "smoke run only" where only the
quick profile ran, "data missing" or "not run". Differences between two of our runs (a Sobolev
gain) compare the same profile on both sides: here the paper profile; the quick profile's
like-for-like gains are in the report's appendix (pipeline/report/smoke.py).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd

from pipeline.config import SEED_SUFFIX, RunConfig
from pipeline.report.tables import (
    PROFILE_PREFERENCE, SMOKE_CELL, SMOKE_PROFILE, Result, find_result, fmt_number, fmt_pair, numerics_mark,
    status_cell, test_ppl_table,
)

SOBOLEV_GRID_FILE = Path("reports/sobolev-grid.json")


# ---------------------------------------------------------------------------- type/token ratio


def _count(text: str) -> float:
    """'25K' -> 25000, '1M' -> 1e6 (the paper's Table 6 header rows)."""
    scale = {"K": 1e3, "M": 1e6}.get(text[-1].upper(), 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def type_token_ratios(paper: dict, stats_dir: Path, corpora: list[str]) -> dict[str, tuple[float | None, str]]:
    """Corpus -> (TTR, what it is computed from). TTR = vocabulary / training tokens, the ratio of
    the paper's threshold (0.03): from our prepared training split where we have it, else from the
    paper's Table 6 header rows (vocabulary / 1M tokens). The valid/test ratios are not used: the
    ratio falls with sample size, and those splits are a tenth of the training data."""
    header = {c["corpus"]: c for c in paper["table6_stats"]["columns"]}
    out: dict[str, tuple[float | None, str]] = {}
    for corpus in corpora:
        path = Path(stats_dir) / f"{corpus}.json"
        stats = json.loads(path.read_text()) if path.is_file() else None
        train_tokens = ((stats or {}).get("splits") or {}).get("train", {}).get("tokens")
        if stats and stats.get("status") == "ok" and stats.get("vocab_size") and train_tokens:
            out[corpus] = (stats["vocab_size"] / train_tokens, "ours: vocabulary / train tokens")
        elif corpus in header:
            ref = header[corpus]
            out[corpus] = (_count(ref["vocabulary"]) / _count(ref["tokens"]),
                           f"paper's Table 6: {ref['vocabulary']} types / {ref['tokens']} tokens (train files missing here)")
        else:
            out[corpus] = (None, "no statistics yet")
    return out


# ---------------------------------------------------------------------------- Table 7


def table7(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], vocab: dict[str, int]) -> tuple[pd.DataFrame, list[Result]]:
    """Test PPL per (α, corpus) in long form, rows in the paper's order (α, then its columns)."""
    spec = paper["table7"]
    label = {c["corpus"]: c["label"] for c in spec["columns"]}
    order = [c["corpus"] for c in spec["columns"]]
    elsewhere = {cell["run"]: name for name in ("table4", "table6") for row in paper[name]["rows"]
                 for cell in row["cells"].values() if cell.get("run")}
    rows = []
    for row in spec["rows"]:
        cells = {}
        for corpus in order:
            cell = dict(row["cells"][corpus])
            if cell["run"] in elsewhere:
                cell["note"] = f"the {elsewhere[cell['run']].replace('table', 'Table ')} run (α = 0.9 is the preset's value)"
            cells[corpus] = cell
        rows.append({"model": f"{row['alpha']:.2f}", "cells": cells})
    budget = paper["table4"]["budgets"]["medium"]
    df, used = test_ppl_table({"rows": rows}, results_root, cfgs, vocab, lambda key: (label[key], budget))
    return df.rename(columns={"model": "α"}), used


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


def table7_best_alpha(paper: dict, results_root: Path, ttr: dict[str, tuple[float | None, str]]) -> pd.DataFrame:
    """Per corpus: its TTR and the α with the lowest test PPL, the paper's and ours (the paper's
    reading: 0.9 for TTR > 0.03, 0.95 for TTR ≈ 0.03, 0.97 for TTR < 0.03)."""
    rows = []
    for corpus, s in table7_series(paper, results_root).items():
        value, source = ttr.get(corpus, (None, "no statistics yet"))
        n_ours = sum(v is not None for v in s["ours"])
        ours = _best_alphas(s["alpha"], s["ours"])
        if n_ours and n_ours < len(s["alpha"]):
            ours += f" (only {n_ours} of {len(s['alpha'])} α reproduced)"
        rows.append({
            "corpus": s["label"],
            "TTR": "—" if value is None else f"{value:.4f}",
            "TTR from": source,
            "paper: best α": _best_alphas(s["alpha"], s["paper"]),
            "ours: best α": ours if n_ours else f"— ({_none_reason(s['statuses'])})",
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- seeds


def seed_group(run: str, cfgs: dict[str, RunConfig]) -> list[str]:
    """``run`` and its repeats ``<run>-seed<N>`` among the configured runs, ordered by seed."""
    repeats = [(int(m["seed"]), name) for name in cfgs if (m := SEED_SUFFIX.match(name)) and m["base"] == run]
    return [run] + [name for _, name in sorted(repeats)]


def _comparable(result: Result) -> bool:
    """A result whose number may enter a mean or a gain: a reproduced one, or a smoke run."""
    return result.reproduced or result.smoke_only


def seed_results(runs: list[str], results_root: Path, profiles: tuple[str, ...] = PROFILE_PREFERENCE) -> list[Result]:
    """The finished results of ``runs`` from one profile (never mixed): the first of ``profiles``
    that has any. They count where their numbers may be compared: reproduced paper-profile results,
    or smoke runs (with each other only)."""
    for profile in profiles:
        found = [find_result(results_root, run, (profile,)) for run in runs]
        ok = [r for r in found if _comparable(r)]
        if ok:
            return ok
    return []


def _seeds_finished(runs: list[str], results: list[Result], results_root: Path) -> str:
    """"n of m", and where the smoke profile has more seeds finished, how many (so that a single
    paper-profile seed beside three smoke runs does not read as two seeds missing)."""
    text = f"{len(results)} of {len(runs)}"
    smoke = len(seed_results(runs, results_root, (SMOKE_PROFILE,)))
    return text + (f" ({smoke} of {len(runs)} as smoke runs)" if smoke > len(results) else "")


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def paper_reference(paper: dict, table: str, run: str) -> dict | None:
    """The paper's valid/test (or test) numbers for ``run`` in ``table`` of paper.yaml."""
    if table == "table2":
        return next((row["paper_impl"] for row in paper["table2"]["rows"] if row["run"] == run), None)
    for row in paper[table]["rows"]:
        for cell in row["cells"].values():
            if cell.get("run") == run:
                return cell["paper"] if isinstance(cell["paper"], dict) else {"test": cell["paper"]}
    return None


def seeds_table(paper: dict, results_root: Path, cfgs: dict[str, RunConfig]) -> tuple[pd.DataFrame, list[Result]]:
    """Mean ± std over the seeds of each repeated run, at the paper profile; smoke runs are
    counted, not shown (their numbers are in the appendix)."""
    rows, used = [], []
    for row in paper["seeds"]["rows"]:
        group = seed_group(row["run"], cfgs)
        results = seed_results(group, results_root, ("paper",))
        used += results
        ref = paper_reference(paper, row["table"], row["run"])
        repeats = ", ".join(name.removeprefix(row["run"]) for name in group[1:])
        out = {"model": row["model"], "runs": row["run"] + (f" (and {repeats})" if repeats else ""),
               "seeds finished": _seeds_finished(group, results, results_root)}
        if results:
            valid = [r.metrics["best_valid_ppl"] for r in results]
            test = [r.metrics["test_ppl"] for r in results]
            seeds = [(cfgs[r.run].training.seed if r.run in cfgs else "?") for r in results]
            out["test per seed"] = ", ".join(f"{s}: {t:.1f}" for s, t in zip(seeds, test))
            out["ours: valid, mean ± std"] = fmt_mean_std(valid)
            out["ours: test, mean ± std"] = fmt_mean_std(test) + numerics_mark(results[0])
        else:
            smoke = seed_results(group, results_root, (SMOKE_PROFILE,))
            out["test per seed"] = "—"
            out["ours: valid, mean ± std"] = out["ours: test, mean ± std"] = SMOKE_CELL if smoke else "not run"
        out["paper (valid / test)"] = "—" if ref is None else (fmt_pair(ref) if "valid" in ref else f"— / {fmt_number(ref['test'])}")
        out["paper from"] = row["table"].replace("table", "Table ")
        if not results or ref is None:
            out["mean − paper"] = "—"
        else:
            means = {"valid": mean_std(valid)[0], "test": mean_std(test)[0]}
            out["mean − paper"] = " / ".join(f"{means[k] - ref[k]:+.1f}" for k in ("valid", "test") if k in ref)
        rows.append(out)
    return pd.DataFrame(rows), used


# ---------------------------------------------------------------------------- Section 7: Sobolev


def load_sobolev_grid(path: Path | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path is not None and Path(path).is_file() else None


def sobolev_gain(without: Result, with_: Result) -> float | None:
    """Test PPL of the run without the penalty minus the run with it (positive: the penalty helps);
    None unless both finished at the same profile."""
    if not (_comparable(without) and _comparable(with_)) or without.profile != with_.profile:
        return None
    return without.metrics["test_ppl"] - with_.metrics["test_ppl"]


def _test_cell(result: Result) -> str:
    """The test PPL of a result that may fill its cell (like tables.result_cell, test only)."""
    label = f" ({result.profile})" if result.reduced else numerics_mark(result)
    return status_cell(result) or f"{result.metrics['test_ppl']:.1f}{label}"


def noise_cell(run: str, cfgs: dict[str, RunConfig], results_root: Path, profile: str) -> str:
    """The sample standard deviation of the test PPL over the seeds of ``run`` finished at ``profile``."""
    group = seed_group(run, cfgs)
    if len(group) < 2:
        return "— (no seed repeats configured)"
    results = seed_results(group, results_root, (profile,))
    if len(results) < 2:
        return f"— ({len(results)} of {len(group)} seeds finished)"
    std = mean_std([r.metrics["test_ppl"] for r in results])[1]
    return f"{std:.1f} (n = {len(results)})"


def sobolev_pairs(paper: dict, results_root: Path, profile: str) -> list[tuple[dict, str, Result, Result]]:
    """(row of paper.yaml, run with the penalty, result without, result with), both at ``profile``."""
    pairs = []
    for row in paper["sobolev"]["rows"]:
        without = find_result(results_root, row["without"], (profile,))
        pairs += [(row, run, without, find_result(results_root, run, (profile,))) for run in row["runs"]]
    return pairs


def sobolev_table(paper: dict, results_root: Path, cfgs: dict[str, RunConfig], grid: dict | None) -> tuple[pd.DataFrame, list[Result]]:
    """One row per (regularisation, β): the share of the loss the penalty is at init, test PPL
    without and with it, the gain (without − with) and the seed noise of the run without, all at
    the paper profile (like with like; the smoke runs' gains are in the appendix)."""
    shares = {}
    if grid and grid.get("status") == "ok":
        shares = {(run, c["beta"]): share for c in grid["configured"] for run, share in c.items() if run != "beta"}
    rows, used = [], []
    for row, run, without_paper, with_paper in sobolev_pairs(paper, results_root, "paper"):
        without, with_ = find_result(results_root, row["without"]), find_result(results_root, run)
        used += [r for r in (without_paper, with_paper) if r.status != "not_run"]
        beta = cfgs[run].model.sobolev.beta if run in cfgs else None
        share = shares.get((row["without"], beta))
        gain = sobolev_gain(without_paper, with_paper)
        rows.append({
            "model": row["model"],
            "β": "not configured" if beta is None else f"{beta:g}",
            "penalty / loss at init": f"{share:.1%}" if share is not None else "— (run the sobolev-grid stage)",
            "run": run,
            "test without": _test_cell(without),
            "test with": _test_cell(with_),
            "gain": "—" if gain is None else f"{gain:+.1f}",
            "seed std of the run without": noise_cell(row["without"], cfgs, results_root, "paper"),
            "paper: gain": row["paper_gain"],
        })
    return pd.DataFrame(rows), used


def sobolev_grid_table(grid: dict | None) -> pd.DataFrame:
    """The measurement behind the β grid: loss and penalty at init, per model."""
    if not grid or grid.get("status") != "ok":
        return pd.DataFrame()
    return pd.DataFrame([{
        "model at init (run)": m["run"],
        "windows": str(m["windows"]),
        "loss L (CE summed over 35 steps, batch mean)": f"{m['loss']:.1f}",
        "penalty P at β = 1 (both layers)": f"{m['penalty_beta1']:.0f}",
        "P / L": f"{m['ratio']:.3f}",
        "β for 1% / 10% of L": f"{0.01 / m['ratio']:.2g} / {0.1 / m['ratio']:.2g}",
    } for m in grid["measured"]])
