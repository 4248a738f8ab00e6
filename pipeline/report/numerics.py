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
- A precision other than fp32: unvalidated (no paired check of precision exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHECK_TOLERANCE = 0.5  # PPL (test): issue 21's agreement bound for a paired check
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
class Verdict:
    """How a paper-profile result was computed and whether it may fill its cell."""

    accepted: bool
    precision: str = "fp32"
    lr_floor: float | None = None
    stop_epoch: int | None = None  # where the floor ended the run (None: every epoch run)
    check_of: FloorCheck | None = None  # the run's own check, in check mode
    checks: tuple[FloorCheck, ...] = ()  # the checks that accept (or reject) an early stop

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
        if self.precision != "fp32":
            return f"unvalidated ({self.precision})"
        return f"unvalidated (LR floor {self.lr_floor:g})"

    def footnote(self) -> tuple[str, str]:
        """(key, text) of the footnote that states these numerics beside an accepted number."""
        if self.stop_epoch is None:
            return "fp32", (
                "fp32, every epoch of the schedule (a run in check mode also records where an "
                "LR floor would have stopped it)"
            )
        passing = ", ".join(c.describe() for c in self.checks if c.passed)
        return (
            f"floor-{self.lr_floor:g}",
            f"fp32, training ended once the next epoch's LR fell below {self.lr_floor:g} x the initial LR; "
            f"accepted by the paired check of {passing} (tolerance ±{CHECK_TOLERANCE} test PPL)",
        )


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


def judge(metrics: dict, results_root: Path) -> Verdict:
    """The verdict on a finished paper-profile result (``results_root``: where its checks live)."""
    n = numerics_of(metrics)
    floor, stop = n["lr_floor"], metrics.get("lr_floor_stop")
    if n["precision"] != "fp32":
        return Verdict(False, n["precision"], floor)
    if floor is None or not stop:
        return Verdict(True, lr_floor=floor)
    if n["check_floor"]:
        return Verdict(True, lr_floor=floor, check_of=as_check(metrics))
    checks = floor_checks(results_root, float(floor))
    accepted = any(c.passed for c in checks) and all(c.passed for c in checks)
    return Verdict(accepted, lr_floor=floor, stop_epoch=int(stop["epoch"]), checks=checks)
