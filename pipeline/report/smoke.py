"""The report's appendix: every smoke-run number (the quick profile), in one table.

The quick profile checks that the whole pipeline runs on a CPU in minutes: a couple of epochs
over a few windows. Its numbers are no reproduction, so no main table shows them; this appendix
does, with the Section 7 gains that compare two smoke runs (like with like).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from pipeline.config import RunConfig
from pipeline.report.cells import noise_cell
from pipeline.report.results import (
    SMOKE_PROFILE,
    Result,
    coverage_cells,
    find_result,
    seed_groups,
    sobolev_gain,
    sobolev_pairs,
)


def smoke_results(cfgs: dict[str, RunConfig], results_root: Path) -> list[Result]:
    """The finished smoke runs, in params.yaml's order."""
    found = (find_result(results_root, run, (SMOKE_PROFILE,)) for run in cfgs)
    return [r for r in found if r.status == "ok"]


def budget_sentence(results: list[Result]) -> str:
    """What a typical smoke run trained and was tested on, from its metrics ("" if they do not say)."""

    def typical(values):
        return Counter(values).most_common(1)[0][0] if results else None

    epochs = typical(r.metrics.get("epochs") for r in results)
    train = typical(r.metrics.get("train_tokens_per_epoch") for r in results)
    test = typical((r.metrics.get("eval_tokens") or {}).get("test") for r in results)
    if None in (epochs, train, test):
        return ""
    return (
        f"A typical smoke run trains {epochs} epoch(s) of {train:,} training tokens and is tested on {test:,} tokens."
    )


def uniform_sentence(vocab: dict[str, int]) -> str:
    """The perplexity of a model that finds every word equally likely: its vocabulary size."""
    sizes = [f"{vocab[c]:,} on {c}" for c in ("ptb", "wikitext-2") if c in vocab]
    return "equal to its vocabulary size" + (f" ({' and '.join(sizes)})" if sizes else "")


def _tables_of(paper: dict, cfgs: dict[str, RunConfig]) -> dict[str, list[str]]:
    """Run -> the report's tables that have a cell for it."""
    tables: dict[str, list[str]] = {}
    for table, runs in coverage_cells(paper, seed_groups(paper, cfgs)).items():
        for run in runs:
            short = table.split(" (")[0]  # "Seeds (not in the paper)" -> "Seeds"
            if run and short not in tables.setdefault(run, []):
                tables[run].append(short)
    return tables


def _gain_notes(paper: dict, results_root: Path, cfgs: dict[str, RunConfig]) -> dict[str, str]:
    """Run with the Sobolev penalty -> its gain over the same run without it, both smoke runs."""
    notes = {}
    for row, run, without, with_ in sobolev_pairs(paper, results_root, SMOKE_PROFILE):
        gain = sobolev_gain(without, with_)
        if gain is not None:
            noise = noise_cell(row["without"], cfgs, results_root, SMOKE_PROFILE)
            notes[run] = f"gain over {row['without']}: {gain:+.1f}; its seed std: {noise}"
    return notes


def smoke_table(paper: dict, results_root: Path, cfgs: dict[str, RunConfig]) -> pd.DataFrame:
    results = smoke_results(cfgs, results_root)
    tables = _tables_of(paper, cfgs)
    gains = _gain_notes(paper, results_root, cfgs)
    return pd.DataFrame(
        [
            {
                "run": r.run,
                "in": ", ".join(tables.get(r.run, [])) or "—",
                "valid / test": f"{r.metrics['best_valid_ppl']:,.0f} / {r.metrics['test_ppl']:,.0f}",
                "epochs": str(r.metrics.get("epochs", "—")),
                "note": gains.get(r.run, ""),
            }
            for r in results
        ]
    )
