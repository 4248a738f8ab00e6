"""The numbers the report reads: the paper's (paper.yaml) and ours (results/<source>/<run>/metrics.json),
with the files beside them (Figure 2's summary, the Sobolev β grid).

A run's result comes from the first source that has one (``PROFILE_PREFERENCE``: the paper profile
before the quick one); a result of the paper profile carries the verdict on its numerics
(pipeline/report/numerics.py). Nothing here formats a cell: see pipeline/report/cells.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.config import SEED_SUFFIX, RunConfig
from pipeline.errors import DataFormatError
from pipeline.report.numerics import Verdict, judge

PAPER_FILE = Path(__file__).with_name("paper.yaml")
PROFILE_PREFERENCE = ("paper", "quick")
LEGACY_DIR = "legacy-torch"  # results/legacy-torch/<run>/metrics.json, written by the legacy container
SMOKE_PROFILE = "quick"
SOBOLEV_GRID_FILE = Path("reports/sobolev-grid.json")
FIGURE2_RESULTS = Path("paper") / "figure2"  # under the results root: paper-profile Figure 2 numbers


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

    @property
    def comparable(self) -> bool:
        """May its number enter a mean or a gain: a reproduced result, or a smoke run (with other smoke runs)."""
        return self.reproduced or self.smoke_only


NOT_RUN = Result("", "not_run")  # the result of a cell with no run of ours


def read_metrics(path: Path) -> dict | None:
    """The JSON object at ``path`` (None: no file); one that cannot be read fails naming the file."""
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(metrics, dict) else f"holds a JSON {type(metrics).__name__}, not an object"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"cannot be read ({exc})"
    if problem:
        raise DataFormatError(
            f"{path} {problem}: it is truncated or corrupt. Restore it (`git checkout -- {path}` "
            "where it is committed) or re-run the stage that writes it"
        )
    return metrics


def find_result(results_root: Path, run: str, sources: tuple[str, ...] = PROFILE_PREFERENCE) -> Result:
    """The first usable result of ``run`` among ``sources`` (subdirectories of ``results_root``)."""
    missing = None
    for source in sources:
        path = Path(results_root) / source / run / "metrics.json"
        metrics = read_metrics(path)
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


# ---------------------------------------------------------------------------- provenance


def commit_text(metrics: dict) -> str:
    """The commit a result ran at (provenance's, which corrects a stale one), marked when the tree was dirty."""
    provenance = metrics.get("provenance") or {}
    rev = str(provenance.get("git_rev") or metrics.get("git_rev") or "—")[:10]
    return rev + (" (dirty)" if provenance.get("git_dirty") else "")


def wall_seconds(metrics: dict) -> float | None:
    """The run's wall time. Provenance's covers the last process from start to end (setup and test
    included); a run resumed from a checkpoint spent longer, which the sum of its epochs' times
    (``wall_time_s``, over every process) shows. The larger of the two is the better total."""
    recorded = [
        t for t in ((metrics.get("provenance") or {}).get("wall_time_s"), metrics.get("wall_time_s")) if t is not None
    ]
    return max(recorded) if recorded else None


def device_name(metrics: dict) -> str:
    """The machine a result ran on: its recorded model name where there is one, else cpu/cuda."""
    name = (metrics.get("provenance") or {}).get("device_name") or metrics.get("device", "—")
    return name.replace("(1 threads)", "(1 thread)")  # provenance.device_name counts threads in the plural


# ---------------------------------------------------------------------------- the runs behind each table


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
        "Seeds (not in the paper)": [
            run for row in paper["seeds"]["rows"] for run in seed_runs.get(row["run"], [row["run"]])
        ],
    }


def seed_group(run: str, cfgs: dict[str, RunConfig]) -> list[str]:
    """``run`` and its repeats ``<run>-seed<N>`` among the configured runs, ordered by seed."""
    repeats = [(int(m["seed"]), name) for name in cfgs if (m := SEED_SUFFIX.match(name)) and m["base"] == run]
    return [run] + [name for _, name in sorted(repeats)]


def seed_groups(paper: dict, cfgs: dict[str, RunConfig]) -> dict[str, list[str]]:
    """Each repeated run of the seeds table -> its seeds' runs."""
    return {row["run"]: seed_group(row["run"], cfgs) for row in paper["seeds"]["rows"]}


def seed_results(runs: list[str], results_root: Path, profiles: tuple[str, ...] = PROFILE_PREFERENCE) -> list[Result]:
    """The comparable results of ``runs`` from one profile (never mixed): the first of ``profiles``
    that has any."""
    for profile in profiles:
        found = [find_result(results_root, run, (profile,)) for run in runs]
        comparable = [r for r in found if r.comparable]
        if comparable:
            return comparable
    return []


def sobolev_pairs(paper: dict, results_root: Path, profile: str) -> list[tuple[dict, str, Result, Result]]:
    """(row of paper.yaml, run with the penalty, result without, result with), both at ``profile``."""
    pairs = []
    for row in paper["sobolev"]["rows"]:
        without = find_result(results_root, row["without"], (profile,))
        pairs += [(row, run, without, find_result(results_root, run, (profile,))) for run in row["runs"]]
    return pairs


def delta_test_ppl(a: Result, b: Result) -> float | None:
    """Test PPL of ``a`` minus that of ``b``; None unless both finished at the same profile."""
    if not (a.comparable and b.comparable) or a.profile != b.profile:
        return None
    return a.metrics["test_ppl"] - b.metrics["test_ppl"]


def sobolev_gain(without: Result, with_: Result) -> float | None:
    """Test PPL of the run without the penalty minus the run with it (positive: the penalty helps)."""
    return delta_test_ppl(without, with_)


# ---------------------------------------------------------------------------- files beside the results


def load_sobolev_grid(path: Path | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path is not None and Path(path).is_file() else None


def figure2_summary(
    stage_dir: Path | None, results_root: Path | None = None, report_dir: Path = Path("reports")
) -> dict:
    """Figure 2 from paper-profile models only: the numbers under results/paper/figure2/ (computed
    while the weights existed, which stay out of git), else the figure2 stage's output if it ran on
    paper-profile models; otherwise its status says it awaits them. ``image`` is the figure's path
    relative to the report (None: no figure)."""
    sources = [Path(results_root) / FIGURE2_RESULTS] if results_root is not None else []
    sources += [Path(stage_dir)] if stage_dir is not None else []
    for directory in sources:
        summary = read_metrics(directory / "summary.json")
        if summary and summary.get("status") == "ok" and summary.get("profile") == "paper":
            image = directory / "figure2.png"
            return {**summary, "reason": "", "image": os.path.relpath(image, report_dir) if image.is_file() else None}
    stage = read_metrics(Path(stage_dir) / "summary.json") if stage_dir is not None else None
    reason = (stage or {}).get("reason") or "no paper-profile models of the two runs yet"
    return {"status": "awaiting paper-profile models", "reason": reason, "image": None}
