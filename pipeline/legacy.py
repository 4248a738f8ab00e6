"""Parse the logs of Mikolov et al.'s original Torch7 SCRNN code (the legacy-torch container).

The container (docker/legacy-torch/) runs the four Table 2 configurations and captures each
run's stdout in ``results/legacy-torch/<run>/train.log``. This module turns such a log into the
project's metrics JSON, ``results/legacy-torch/<run>/metrics.json``, which the report's Table 2
"legacy container" column reads (pipeline/report/results.py, ``LEGACY_DIR``).

The log format is that of the code's ``train.lua`` (../shared/notes/legacy-torch.md §5): per
epoch ``Epoch: %d. Training time: %.2fs. Words/s: %.2f``, then ``Training:``, ``Validation:``
and ``Testing:`` lines (``Entropy (base 2) : %.5f || Perplexity : %0.5f``), then, when the epoch
did not improve validation, ``Decreasing the learning rate to <lr>``. There is no summary line:
the reported numbers are the Testing PPL of the epoch with the lowest Validation PPL. A NaN in
the weights prints ``Not a Number detected`` and exits 0; a killed run leaves a truncated log.

What is refused, with the file (and line) named: a log with no line of that format at all (not a
log of this code), and a perplexity that is not a finite number above 1, except the non-finite
ones of a run that reports ``Not a Number detected`` (that divergence is a result).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

LEGACY_PROFILE = "legacy-torch"
LOG_NAME = "train.log"
# The Table 2 command line runs 100 epochs (-nepochs 100, the code's default; notes §4).
PAPER_EPOCHS = 100
DEFAULT_LR = 0.05  # -eta of the Table 2 command, used when the log has no parameter dump
RUNS = {  # run name -> (hidden, context), the four Table 2 configurations
    "ptb-baseline-40-10": (40, 10),
    "ptb-baseline-90-10": (90, 10),
    "ptb-baseline-100-40": (100, 40),
    "ptb-baseline-300-40": (300, 40),
}

_NUM = r"([-+]?(?:\d+\.\d+|inf|nan))"  # %.2f / %.5f, or what C prints for inf and nan
_EPOCH = re.compile(r"^Epoch: (\d+)\. Training time: (\d+\.\d{2})s\. Words/s: (\d+\.\d{2}|[-+]?inf|[-+]?nan)$")
_SPLIT = re.compile(
    r"^(Training|Validation|Testing): Entropy \(base 2\) : " + _NUM + r" \|\| Perplexity : " + _NUM + "$"
)
_LR = re.compile(r"^Decreasing the learning rate to (\S+)$")
_NAN = "Not a Number detected"
_STARTUP = re.compile(
    r"^\[\[ (building dictionary|generating training data using new dictionary|"
    r"Loading dataset and dictionary|Data not found: fetching a fresh copy) \]\]$"
)
_DUMP_SECTIONS = ("dataset", "model", "trainer")  # the sections of the parameter dump
_SECTION = re.compile(r"^(\w+):$")
_PARAM = re.compile(r"^(\w+): (.*)$")
_SUBPARAM = re.compile(r"^  (\w+): (.*)$")


class LegacyLogError(ValueError):
    """A legacy log that cannot be turned into metrics; the message names the file."""


class NoCompleteEpoch(LegacyLogError):
    """A log with no complete epoch yet: a run still in (or stopped during) its first epoch."""


@dataclass
class Epoch:
    epoch: int
    train_time_s: float
    words_per_s: float
    lr: float
    train_ppl: float | None = None
    valid_ppl: float | None = None
    test_ppl: float | None = None

    @property
    def complete(self) -> bool:
        """Valid and test were both evaluated: the epoch's numbers can be reported."""
        return self.valid_ppl is not None and self.test_ppl is not None


@dataclass
class ParsedLog:
    params: dict = field(default_factory=dict)  # {"trainer": {...}, "model": {...}, "user": "..."}
    epochs: list[Epoch] = field(default_factory=list)
    lr_decreases: list[dict] = field(default_factory=list)  # [{"after_epoch": e, "lr": lr}]
    nan_detected: bool = False
    recognised: int = 0  # lines in the format of train.lua (startup, dump sections, epochs, LR, NaN)
    # every perplexity read, with its line number: (lineno, split, value)
    perplexities: list[tuple[int, str, float]] = field(default_factory=list)


def _lines(text: str) -> list[str]:
    # xlua progress bars use \r. A killed run may leave a partial last line: the patterns are
    # anchored at both ends, so a line cut inside its text does not match; one cut inside its last
    # number would (the code writes each line whole and flushes, so that is not seen in practice).
    # `th` (trepl) ends every line that print() writes with a tab: trailing whitespace is dropped.
    return [line.rstrip() for line in re.split(r"\r\n|\r|\n", text)]


def _number(text: str, path: Path, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise LegacyLogError(f"{path}:{lineno}: cannot read the number {text!r}") from None


def _value(text: str) -> object:
    """A parameter-dump value as Lua printed it: a number where it reads as one."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return {"true": True, "false": False}.get(text, text)


def parse_text(text: str, path: Path) -> ParsedLog:
    """Read the parameter dump, the per-epoch lines, the LR decreases and the NaN line."""
    log = ParsedLog()
    section = None
    lr = None
    for lineno, line in enumerate(_lines(text), start=1):
        if _recognised(line):
            log.recognised += 1
        if m := _EPOCH.match(line):
            if lr is None:
                lr = float(log.params.get("trainer", {}).get("initial_learning_rate", DEFAULT_LR))
            number = int(m.group(1))
            if log.epochs and number != log.epochs[-1].epoch + 1:
                raise LegacyLogError(
                    f"{path}:{lineno}: epoch {number} follows epoch {log.epochs[-1].epoch}: "
                    "two runs' output in one log?"
                )
            log.epochs.append(Epoch(number, _number(m.group(2), path, lineno), _number(m.group(3), path, lineno), lr))
            section = None
        elif m := _SPLIT.match(line):
            if not log.epochs:
                raise LegacyLogError(f"{path}:{lineno}: a {m.group(1)} line before the first 'Epoch:' line")
            attr = {"Training": "train_ppl", "Validation": "valid_ppl", "Testing": "test_ppl"}[m.group(1)]
            ppl = _number(m.group(3), path, lineno)
            log.perplexities.append((lineno, m.group(1), ppl))
            setattr(log.epochs[-1], attr, ppl)
        elif m := _LR.match(line):
            lr = _number(m.group(1), path, lineno)
            log.lr_decreases.append({"after_epoch": log.epochs[-1].epoch if log.epochs else 0, "lr": lr})
        elif line.strip() == _NAN:
            log.nan_detected = True
        elif not log.epochs:  # the parameter dump comes before the first epoch
            if m := _SECTION.match(line):
                section = m.group(1)
                log.params.setdefault(section, {})
            elif section and (m := _SUBPARAM.match(line)):
                log.params[section][m.group(1)] = _value(m.group(2))
            elif m := _PARAM.match(line):
                section = None
                log.params.setdefault(m.group(1), _value(m.group(2)))
    return log


def _recognised(line: str) -> bool:
    return bool(
        _EPOCH.match(line)
        or _SPLIT.match(line)
        or _LR.match(line)
        or _STARTUP.match(line)
        or line.strip() == _NAN
        or (_SECTION.match(line) and line[:-1] in _DUMP_SECTIONS)
    )


def check_log(log: ParsedLog, path: Path) -> None:
    """Refuse a file that is no log of train.lua, and perplexities no model can have."""
    if not log.recognised:
        raise LegacyLogError(
            f"{path}: no line of the legacy train.lua format (startup lines, a parameter dump, "
            "'Epoch:' or 'Perplexity' lines): not a log of the legacy container's run"
        )
    for lineno, split, ppl in log.perplexities:
        if math.isfinite(ppl) and ppl <= 1:
            raise LegacyLogError(
                f"{path}:{lineno}: {split} perplexity {ppl} is not above 1, which no model "
                "can score: the log is corrupt or edited"
            )
        if not math.isfinite(ppl) and not log.nan_detected:
            raise LegacyLogError(
                f"{path}:{lineno}: {split} perplexity {ppl} is not finite, and the log has no "
                f"'{_NAN}' line (the code's own report of a diverged run): the log is corrupt"
            )


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _json_number(x: float | None) -> float | None:
    return x if _finite(x) else None


def summarise(log: ParsedLog, run: str, source_log: str, path: Path) -> dict:
    """The metrics JSON of one parsed log (see the module docstring for the selection rule)."""
    trainer, model = log.params.get("trainer", {}), log.params.get("model", {})
    expected = RUNS.get(run)
    if expected is None:
        raise LegacyLogError(f"{path}: unknown run {run!r}; expected one of {', '.join(RUNS)}")
    logged = (model.get("n_hidden"), model.get("n_slow"))
    if None not in logged and tuple(logged) != expected:
        raise LegacyLogError(f"{path}: the log is of a (hidden, context) = {logged} run, not {run} {expected}")

    complete = [e for e in log.epochs if e.complete]
    if log.epochs and not complete and not log.nan_detected and trainer.get("use_test_set") != 1:
        # (with use_test_set 1 in its dump, the run was stopped before epoch 1's test: no complete epoch)
        if all(e.test_ppl is None for e in log.epochs) and any(e.valid_ppl is not None for e in log.epochs):
            raise LegacyLogError(f"{path}: no 'Testing:' lines; the run needs -istest 1 (the default is 0)")
    finite = [e for e in complete if _finite(e.valid_ppl) and _finite(e.test_ppl)]
    blown = next(
        (
            e
            for e in log.epochs
            if any(v is not None and not math.isfinite(v) for v in (e.train_ppl, e.valid_ppl, e.test_ppl))
        ),
        None,
    )
    diverged = log.nan_detected or blown is not None
    if not finite and not diverged:
        raise NoCompleteEpoch(
            f"{path}: no complete epoch (an 'Epoch:' line followed by 'Validation:' and "
            "'Testing:' lines): the run was stopped, or is still in, its first epoch"
        )

    budget = int(trainer.get("n_epochs", PAPER_EPOCHS))
    truncated = not diverged and len(complete) < budget
    metrics: dict = {
        "run": run,
        "status": "diverged" if diverged else "ok",
        "profile": LEGACY_PROFILE,
        "reduced": budget < PAPER_EPOCHS or len(complete) < budget,
        "epochs": len(complete),
        "epoch_budget": budget,
        "paper_epochs": PAPER_EPOCHS,
        "truncated": truncated,
        "nan_detected": log.nan_detected,
        "hidden": expected[0],
        "context": expected[1],
        "device": "cpu (Torch7, float64)",
        "source_log": source_log,
        # the reported numbers; null when no epoch finished with finite perplexities (a NaN run)
        "best_valid_ppl": None,
        "test_ppl": None,
        "best_epoch": None,
        "words_per_s": None,
        "train_time_s": None,
    }
    if finite:
        best = min(finite, key=lambda e: (e.valid_ppl, e.epoch))  # the earliest of equal minima
        speeds = [e.words_per_s for e in complete if _finite(e.words_per_s)]
        metrics.update(
            {
                "best_valid_ppl": best.valid_ppl,
                "test_ppl": best.test_ppl,
                "best_epoch": best.epoch,
                "words_per_s": sum(speeds) / len(speeds) if speeds else None,
                "train_time_s": round(sum(e.train_time_s for e in complete), 2),
            }
        )
    if diverged:
        if blown is not None:
            metrics["diverged_epoch"] = blown.epoch
        else:  # the NaN check runs every 1000 training steps, before the epoch's own lines
            metrics["diverged_epoch"] = (log.epochs[-1].epoch + 1) if log.epochs else 1
    lr_start = float(trainer.get("initial_learning_rate", DEFAULT_LR))
    metrics.update(
        {
            "lr_initial": lr_start,
            "lr_final": log.lr_decreases[-1]["lr"] if log.lr_decreases else lr_start,
            "lr_decreases": log.lr_decreases,
            "history": [
                {
                    "epoch": e.epoch,
                    "lr": e.lr,
                    "train_ppl": _json_number(e.train_ppl),
                    "valid_ppl": _json_number(e.valid_ppl),
                    "test_ppl": _json_number(e.test_ppl),
                    "words_per_s": _json_number(e.words_per_s),
                    "train_time_s": e.train_time_s,
                }
                for e in log.epochs
            ],
        }
    )
    return metrics


def parse_log(path: Path, run: str, source_log: str | None = None) -> dict:
    """Metrics JSON of the legacy log at ``path`` for Table 2 run ``run``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise LegacyLogError(f"{path}: no such log; run `docker compose run legacy-torch` first") from None
    log = parse_text(text, path)
    check_log(log, path)
    return summarise(log, run, source_log or str(path), path)
