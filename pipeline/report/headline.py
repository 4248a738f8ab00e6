"""The report's first screen: how many of the paper's cells we reproduce, how close, and each one.

A cell is one number of the paper's Tables 2, 4, 5, 6 and 7 that a run of ours reproduces; a run
can fill cells of several tables (the Table 4 SCRN + ND + WT runs are Table 5's first row and
Table 7's α = 0.90 row), and each table's cell counts. Only paper-profile results whose numerics
are accepted count (pipeline/report/numerics.py); the comparison is on test PPL, the one split
every table gives.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import RunConfig
from pipeline.ledger import format_duration
from pipeline.report.cells import FAR_FROM_PAPER, beyond_tolerance, difference_cell, fmt_number
from pipeline.report.results import Result, device_name, find_result, wall_seconds
from pipeline.report.tables import table4_data_label


@dataclass(frozen=True)
class PaperCell:
    table: str
    row: str
    run: str
    paper: dict  # {"test": x} or {"valid": v, "test": x}


def paper_cells(paper: dict) -> list[PaperCell]:
    """Every cell with a paper number and a run of ours, in the paper's order."""
    cells = [
        PaperCell("Table 2", f"({row['hidden']}, {row['context']})", row["run"], row["paper_impl"])
        for row in paper["table2"]["rows"]
    ]
    for row in paper["table4"]["rows"]:
        for key, cell in row["cells"].items():
            if cell.get("run"):
                cells.append(
                    PaperCell(
                        "Table 4", f"{row['model']}, {table4_data_label(key)}", cell["run"], {"test": cell["paper"]}
                    )
                )
    for row in paper["table5"]["rows"]:
        for size, cell in row["cells"].items():
            cells.append(PaperCell("Table 5", f"{row['model']}, {size}", cell["run"], cell["paper"]))
    language = {c["corpus"]: c["language"] for c in paper["table6_stats"]["columns"]}
    for row in paper["table6"]["rows"]:
        for corpus, cell in row["cells"].items():
            if cell.get("run"):
                cells.append(
                    PaperCell("Table 6", f"{row['model']}, {language[corpus]}", cell["run"], {"test": cell["paper"]})
                )
    label = {c["corpus"]: c["label"] for c in paper["table7"]["columns"]}
    for row in paper["table7"]["rows"]:
        for corpus, cell in row["cells"].items():
            cells.append(
                PaperCell("Table 7", f"α = {row['alpha']:.2f}, {label[corpus]}", cell["run"], {"test": cell["paper"]})
            )
    return cells


def device_text(metrics: dict) -> str:
    """The machine a result ran on, compactly (a CPU's family and model numbers left out)."""
    return re.sub(r", family \d+ model \d+", "", device_name(metrics))


def wall_time_text(metrics: dict) -> str:
    seconds = wall_seconds(metrics)
    return "—" if seconds is None else format_duration(seconds)


@dataclass(frozen=True)
class Headline:
    cells: int  # cells with a paper number and a run of ours
    reproduced: list[tuple[PaperCell, Result]]
    awaiting_check: list[tuple[PaperCell, Result]]
    smoke_only: int

    @property
    def differences(self) -> list[float]:
        return [r.metrics["test_ppl"] - c.paper["test"] for c, r in self.reproduced]

    @property
    def within(self) -> int:
        return sum(not beyond_tolerance(d) for d in self.differences)

    @property
    def runs(self) -> int:
        return len({r.run for _, r in self.reproduced})

    def summary(self) -> str:
        """The headline's sentences (Markdown)."""
        n = len(self.reproduced)
        text = (
            f"**{n} of the paper's {self.cells} cells are reproduced at the paper profile** "
            f"(full schedules, from {self.runs} run{'s' if self.runs != 1 else ''} of ours)"
        )
        if n:
            gaps = [abs(d) for d in self.differences]
            largest, (cell, _) = max(zip(gaps, self.reproduced), key=lambda x: x[0])
            text += (
                f"; **{self.within} of the {n} lie within ±{FAR_FROM_PAPER:g} test PPL of the paper.** "
                f"|ours − paper| on test PPL: median {statistics.median(gaps):.1f}, "
                f"largest {largest:.1f} ({cell.table}, {cell.row})."
            )
        else:
            text += "."
        if self.awaiting_check:
            text += (
                f" {len(self.awaiting_check)} more cell(s) have a paper-profile result whose change of "
                "numerics still awaits a paired check, and are not counted."
            )
        text += (
            f" {self.smoke_only} cell(s) have only a smoke run (the quick profile: a few windows of training "
            "data), which shows the pipeline works and is not a result; its numbers are in the appendix."
        )
        return text


def headline(paper: dict, results_root: Path) -> Headline:
    cells = paper_cells(paper)
    reproduced, awaiting, smoke = [], [], 0
    for cell in cells:
        result = find_result(results_root, cell.run)
        if result.reproduced:
            reproduced.append((cell, result))
        elif result.status == "ok" and not result.reduced:
            awaiting.append((cell, result))
        elif result.smoke_only:
            smoke += 1
    return Headline(len(cells), reproduced, awaiting, smoke)


def reproduced_table(head: Headline, cfgs: dict[str, RunConfig]) -> pd.DataFrame:
    """One row per reproduced cell: the paper's test PPL, ours, the difference, how it was computed."""
    rows = []
    for cell, result in head.reproduced:
        m = result.metrics
        cfg = cfgs.get(cell.run)
        rows.append(
            {
                "table": cell.table,
                "cell": cell.row,
                "paper (test)": fmt_number(cell.paper["test"]),
                "ours (test)": f"{m['test_ppl']:.1f}",
                "ours − paper": difference_cell(result, {"test": cell.paper["test"]}),
                "numerics": result.verdict.label(cfg.training.epochs if cfg else None) if result.verdict else "fp32",
                "device": device_text(m),
                "wall time": wall_time_text(m),
            }
        )
    return pd.DataFrame(rows)


def awaiting_table(head: Headline) -> pd.DataFrame:
    """Paper-profile results not counted: why, and which check would admit them."""
    rows = []
    for cell, result in head.awaiting_check:
        v = result.verdict
        if not v.precision_accepted and v.precision_checks:
            why = f"its {v.precision} checks disagree: " + ", ".join(c.describe() for c in v.precision_checks)
        elif not v.precision_accepted:
            why = f"no paired check of precision {v.precision} yet (--check-precision)"
        elif v.checks:
            why = "its checks disagree: " + ", ".join(c.describe() for c in v.checks)
        else:
            why = f"no run in check mode (--check-floor) with LR floor {v.lr_floor:g} yet"
        rows.append({"table": cell.table, "cell": cell.row, "run": cell.run, "numerics": v.label(), "why": why})
    return pd.DataFrame(rows)
