"""Whether a paper-profile result may fill a cell: the numerics it was computed with, and the
paired check that a change of numerics needs before its numbers count.

A result records its numerics in metrics.json: ``numerics`` (precision, lr_floor, check_floor)
and ``lr_floor_stop`` (where the LR floor stopped the run, or in check mode would have, with the
test PPL there). A result without ``numerics`` predates the fields: fp32, every epoch run.

- fp32, every epoch of the schedule run: accepted.
- Check mode (``check_floor``): every epoch was run, so the result is accepted as fp32, and its
  ``lr_floor_stop`` is a paired check of floor F: it passes when the test PPL at the stop lies
  within CHECK_TOLERANCE of the full schedule's.
- LR floor F that ended the run early: accepted only if some check of the same F passes and
  none fails.
- LR floor F never reached: every epoch was run, accepted as fp32.
- A precision P other than fp32: accepted only if some paired check of P passes and none fails
  (and, with an LR floor, the floor's rule above as well). A check of P is a run trained again in P
  (``stages.ledger --precision P --check-precision``, results under ``results/checks/P/paper/``)
  beside its fp32 result of the same params hash: it passes when their test PPLs lie within
  CHECK_TOLERANCE, or within REFERENCE_TOLERANCE of a reference the issue names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.ledger import precision_check_root

CHECK_TOLERANCE = 0.5  # PPL (test): issue 21's agreement bound for a paired check
# Issue 21 also admits a new precision whose PTB small SCRN + ND + WT lands within 1.0 of the fp32
# result, which came from another device (an H200).
REFERENCE_TOLERANCE = {"ptb-small-scrn-nd-wt": 1.0}
PAPER_PROFILE = "paper"


@dataclass(frozen=True)
class FloorCheck:
    """A check-mode run: test PPL where floor ``floor`` would have stopped it, against its full schedule."""

    run: str
    floor: float
    stop_epoch: int
    difference: float  # test PPL at the stop minus test PPL of the full schedule

    @property
    def passed(self) -> bool:
        return abs(self.difference) <= CHECK_TOLERANCE

    def describe(self) -> str:
        return f"`{self.run}` (stop at epoch {self.stop_epoch}: {self.difference:+.2f} test PPL)"


@dataclass(frozen=True)
class PrecisionCheck:
    """A run trained again in ``precision`` against its fp32 result: test PPL of each."""

    run: str
    precision: str
    test_ppl: float
    fp32_test_ppl: float
    stop_epoch: int | None = None  # where an LR floor ended the check run (None: every epoch)

    @property
    def difference(self) -> float:
        return self.test_ppl - self.fp32_test_ppl

    @property
    def tolerance(self) -> float:
        return REFERENCE_TOLERANCE.get(self.run, CHECK_TOLERANCE)

    @property
    def passed(self) -> bool:
        return abs(self.difference) <= self.tolerance

    def describe(self) -> str:
        stop = f", LR floor stop at epoch {self.stop_epoch}" if self.stop_epoch is not None else ""
        return (
            f"`{self.run}` ({self.precision}{stop}: test {self.test_ppl:.2f} against fp32 {self.fp32_test_ppl:.2f}, "
            f"{self.difference:+.2f}; tolerance ±{self.tolerance:g})"
        )


@dataclass(frozen=True)
class Verdict:
    """How a paper-profile result was computed and whether it may fill its cell."""

    accepted: bool
    precision: str = "fp32"
    lr_floor: float | None = None
    stop_epoch: int | None = None  # where the floor ended the run (None: every epoch run)
    check_of: FloorCheck | None = None  # the run's own check, in check mode
    checks: tuple[FloorCheck, ...] = ()  # the checks that accept (or reject) an early stop
    precision_checks: tuple[PrecisionCheck, ...] = ()  # those that accept (or reject) the precision

    @property
    def precision_accepted(self) -> bool:
        return _precision_accepted(self.precision, self.precision_checks)

    def label(self, planned_epochs: int | None = None) -> str:
        """Compact numerics text: "fp32", "fp32, LR floor 0.001 (epoch 47 of 120)", ..."""
        if self.stop_epoch is not None:
            of = f" of {planned_epochs}" if planned_epochs else ""
            return f"{self.precision}, LR floor {self.lr_floor:g} (epoch {self.stop_epoch}{of})"
        if self.check_of is not None:
            return f"{self.precision} (checks LR floor {self.lr_floor:g}: {self.check_of.difference:+.2f})"
        return self.precision

    def unvalidated_text(self) -> str:
        """What a cell reads when the result may not fill it."""
        if not self.precision_accepted:
            return f"unvalidated ({self.precision})"
        return f"unvalidated (LR floor {self.lr_floor:g})"

    def footnote(self) -> tuple[str, str]:
        """(key, text) of the footnote that states these numerics beside an accepted number."""
        precision = "fp32" if self.precision == "fp32" else self.precision_text()
        if self.stop_epoch is None:
            return self.precision, (
                f"{precision}, every epoch of the schedule (a run in check mode also records where an "
                "LR floor would have stopped it)"
            )
        passing = ", ".join(c.describe() for c in self.checks if c.passed)
        key = f"floor-{self.lr_floor:g}" if self.precision == "fp32" else f"{self.precision}-floor-{self.lr_floor:g}"
        return (
            key,
            f"{precision}, training ended once the next epoch's LR fell below {self.lr_floor:g} x the initial LR; "
            f"accepted by the paired check of {passing} (tolerance ±{CHECK_TOLERANCE} test PPL)",
        )

    def precision_text(self) -> str:
        passing = ", ".join(c.describe() for c in self.precision_checks if c.passed)
        return f"the training forward in {self.precision} (autocast), accepted by the paired check of {passing}"


def numerics_of(metrics: dict) -> dict:
    """The recorded numerics; a result that predates the field is fp32 with no LR floor."""
    recorded = metrics.get("numerics") or {}
    return {
        "precision": recorded.get("precision", "fp32"),
        "lr_floor": recorded.get("lr_floor"),
        "check_floor": bool(recorded.get("check_floor", False)),
    }


def as_check(metrics: dict) -> FloorCheck | None:
    """The paired check a check-mode result carries (None: not check mode, or the floor never reached)."""
    n, stop = numerics_of(metrics), metrics.get("lr_floor_stop")
    if not (n["check_floor"] and n["lr_floor"] is not None and stop and stop.get("test_ppl") is not None):
        return None
    return FloorCheck(
        metrics.get("run", "?"),
        float(n["lr_floor"]),
        int(stop["epoch"]),
        float(stop["test_ppl"]) - float(metrics["test_ppl"]),
    )


def floor_checks(results_root: Path, floor: float) -> tuple[FloorCheck, ...]:
    """Every paired check of LR floor ``floor`` among the paper-profile results."""
    found = []
    for path in sorted((Path(results_root) / PAPER_PROFILE).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        check = as_check(metrics) if metrics.get("status", "ok") == "ok" else None
        if check is not None and check.floor == floor:
            found.append(check)
    return tuple(found)


def precision_checks(results_root: Path, precision: str) -> tuple[PrecisionCheck, ...]:
    """Every paired check of ``precision``: a finished run under results/checks/<precision>/paper/
    whose fp32 result of the same params hash is in results/paper/."""
    root = Path(results_root)
    found = []
    for path in sorted((precision_check_root(root, precision) / PAPER_PROFILE).glob("*/metrics.json")):
        check = json.loads(path.read_text())
        fp32_path = root / PAPER_PROFILE / path.parent.name / "metrics.json"
        if not fp32_path.is_file() or check.get("status", "ok") != "ok":
            continue
        fp32 = json.loads(fp32_path.read_text())
        pair = (
            numerics_of(check)["precision"] == precision
            and numerics_of(fp32)["precision"] == "fp32"
            and fp32.get("status", "ok") == "ok"
            and check.get("params_hash") == fp32.get("params_hash")
        )
        if pair:
            stop = check.get("lr_floor_stop") if not numerics_of(check)["check_floor"] else None
            found.append(
                PrecisionCheck(
                    path.parent.name,
                    precision,
                    float(check["test_ppl"]),
                    float(fp32["test_ppl"]),
                    int(stop["epoch"]) if stop else None,
                )
            )
    return tuple(found)


def _all_pass(checks) -> bool:
    return any(c.passed for c in checks) and all(c.passed for c in checks)


def _precision_accepted(precision: str, checks: tuple[PrecisionCheck, ...]) -> bool:
    return precision == "fp32" or _all_pass(checks)


def judge(metrics: dict, results_root: Path) -> Verdict:
    """The verdict on a finished paper-profile result (``results_root``: where its checks live)."""
    n = numerics_of(metrics)
    floor, stop, precision = n["lr_floor"], metrics.get("lr_floor_stop"), n["precision"]
    pchecks = precision_checks(results_root, precision) if precision != "fp32" else ()
    numerics = {"precision": precision, "lr_floor": floor, "precision_checks": pchecks}
    precision_ok = _precision_accepted(precision, pchecks)
    if floor is None or not stop:
        return Verdict(precision_ok, **numerics)
    if n["check_floor"]:
        return Verdict(precision_ok, check_of=as_check(metrics), **numerics)
    checks = floor_checks(results_root, float(floor))
    return Verdict(precision_ok and _all_pass(checks), stop_epoch=int(stop["epoch"]), checks=checks, **numerics)
