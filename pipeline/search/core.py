"""The pure part of the random search: space, sampling, selection, shrinking, settings, results.

Section 5 of the paper tunes, separately under naive and under variational dropout,

    p_i, p_h, p_o ~ U[0.01, 0.6],  initial LR ~ U[0.5, 0.99],
    LR decay ~ U[0.5, 0.89],       init scale ~ U[0.05, 0.3],

and after each round of runs shrinks the ranges "to the neighbourhoods of the values that give
best performances". Our rule (issue #5): after a round, every range becomes the span of that
parameter over the best quarter of the round's samples, widened on each side by 10% of the
*original* width and clipped to the original range:

    [max(a, min_best - 0.1 (b - a)), min(b, max_best + 0.1 (b - a))]    for U[a, b].

The best quarter is the ceil(n / 4) samples of lowest valid PPL (at least one); a sample that
diverged, produced NaN or failed has PPL ∞ and is never among them. When every sample of a round
has PPL ∞ the ranges stay as they were.

Nothing here runs anything: execution is behind :class:`pipeline.search.backends.Backend`.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from pipeline.config import run_names
from pipeline.errors import ParamsError, SearchError
from pipeline.fsutil import atomic_write_json
from pipeline.validation import as_int, as_mapping, check_known, choice, fail

RESULTS_FORMAT = 1
BEST_FRACTION = 0.25  # the best quarter of a round's samples defines the next ranges
WIDEN = 0.10  # ... widened on each side by this fraction of the original width

Range = tuple[float, float]


@dataclass(frozen=True)
class SearchParam:
    name: str
    low: float
    high: float
    path: str  # within runs.<base run>


# Section 5's marginal distributions, U[low, high], in the order they are sampled.
SECTION5 = (
    SearchParam("p_i", 0.01, 0.6, "model.dropout.p_i"),
    SearchParam("p_h", 0.01, 0.6, "model.dropout.p_h"),
    SearchParam("p_o", 0.01, 0.6, "model.dropout.p_o"),
    SearchParam("lr", 0.5, 0.99, "training.lr"),
    SearchParam("lr_decay", 0.5, 0.89, "training.lr_decay"),
    SearchParam("init_scale", 0.05, 0.3, "training.init_scale"),
)
PARAMS = {p.name: p for p in SECTION5}

# The dropout rates each regime uses: naive dropout never touches the recurrence (no p_h), and a
# run without dropout has no rates to tune (params.yaml rejects rates with regime none).
REGIME_RATES = {"none": (), "naive": ("p_i", "p_o"), "variational": ("p_i", "p_h", "p_o")}


def search_space(regime: str) -> dict[str, Range]:
    """Section 5's ranges for the parameters a run of dropout ``regime`` uses."""
    if regime not in REGIME_RATES:
        raise ValueError(f"unknown dropout regime {regime!r}")
    names = [*REGIME_RATES[regime], "lr", "lr_decay", "init_scale"]
    return {n: (PARAMS[n].low, PARAMS[n].high) for n in names}


def param_path(base_run: str, name: str) -> str:
    """The params.yaml key (``dvc exp run -S`` path) that sets ``name`` for the base run."""
    return f"runs.{base_run}.{PARAMS[name].path}"


def sample_round(ranges: dict[str, Range], n: int, seed: int, round_no: int) -> list[dict[str, float]]:
    """``n`` independent draws, each parameter uniform over its range; the same seed and round
    give the same draws, so a resumed search re-draws exactly what it drew before."""
    rng = np.random.default_rng([seed, round_no])
    return [{name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()} for _ in range(n)]


def best_quarter(ppls: Sequence[float]) -> list[int]:
    """Indices of the ceil(n/4) (at least one) lowest finite PPLs, best first, ties by index.

    ∞ and NaN (diverged or failed samples) are never selected, so fewer are returned when fewer
    than that many samples finished."""
    k = max(1, math.ceil(len(ppls) * BEST_FRACTION))
    finite = sorted((p, i) for i, p in enumerate(ppls) if math.isfinite(p))
    return [i for _, i in finite[:k]]


def shrink(
    original: dict[str, Range], current: dict[str, Range], samples: Sequence[dict[str, float]], ppls: Sequence[float]
) -> dict[str, Range]:
    """The next round's ranges (module docstring): span of the best quarter, widened by
    ``WIDEN`` of the original width on each side, clipped to the original range."""
    if len(samples) != len(ppls):
        raise ValueError(f"{len(samples)} samples but {len(ppls)} PPLs")
    best = best_quarter(ppls)
    if not best:
        return dict(current)
    out = {}
    for name, (a, b) in original.items():
        values = [samples[i][name] for i in best]
        pad = WIDEN * (b - a)
        out[name] = (max(a, min(values) - pad), min(b, max(values) + pad))
    return out


# ---------------------------------------------------------------------------- what a backend runs


@dataclass(frozen=True)
class Sample:
    """One configuration to train, in backend-neutral terms."""

    name: str  # unique experiment / job name: <search>-r<round>-<i>
    stage: str  # the one DVC stage to run: train@<base run>
    params: dict[str, str]  # params.yaml overrides, dotted key -> value as `dvc exp run -S key=value` takes it
    metrics: str  # repo-relative metrics.json the stage writes; its best_valid_ppl is the score

    def set_args(self) -> list[str]:
        """The ``-S ++key=value`` arguments of ``dvc exp run``: ``++`` (Hydra's force-add) sets a
        key that the run takes from its preset (``training: {preset: ...}`` has no ``lr``)."""
        return [arg for key, value in self.params.items() for arg in ("-S", f"++{key}={value}")]


@dataclass(frozen=True)
class Outcome:
    """What became of one sample. Every failure is PPL ∞, never an exception."""

    valid_ppl: float  # best valid PPL; math.inf when diverged or failed
    status: str  # ok | diverged | failed
    test_ppl: float | None = None
    message: str = ""

    @classmethod
    def from_metrics(cls, metrics: dict | None) -> "Outcome":
        if not metrics:
            return cls(math.inf, "failed", message="no metrics.json")
        if metrics.get("status") != "ok":
            return cls(
                math.inf, "failed", message=f"status {metrics.get('status')!r}: {metrics.get('reason', '')}".strip()
            )
        ppl = metrics.get("best_valid_ppl")
        if not isinstance(ppl, (int, float)) or not math.isfinite(ppl):
            return cls(math.inf, "diverged", message=f"best_valid_ppl {ppl!r}")
        return cls(float(ppl), "ok", test_ppl=metrics.get("test_ppl"))


DIVERGED_PATTERN = re.compile(r"non-finite|diverged|\bnan\b", re.IGNORECASE)


def failure_outcome(log_text: str) -> Outcome:
    """∞ for a run that exited with an error: ``diverged`` when its log says so (the trainer's NaN
    guard, ``TrainingDiverged``), else ``failed``; the message is the log's last error line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")] or lines[-1:]
    own = [line for line in errors if "failed to reproduce" not in line] or errors
    message = own[0] if own else "failed (no log)"
    status = "diverged" if DIVERGED_PATTERN.search(log_text) else "failed"
    return Outcome(math.inf, status, message=message[:500])


# ---------------------------------------------------------------------------- settings


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
SETTING_KEYS = ("name", "base_run", "rounds", "samples", "jobs", "seed", "backend", "timeout_s")


@dataclass(frozen=True)
class SearchSettings:
    name: str  # results/search/<name>.json; experiments <name>-r<round>-<i>
    base_run: str  # the run of params.yaml whose parameters are searched
    rounds: int
    samples: int  # per round (the paper: 100)
    jobs: int  # runs at once
    seed: int
    backend: str
    timeout_s: float | None  # per round; samples still running then are stopped and count as failed


def search_settings(
    params: dict, cli: dict[str, Any] | None = None, backends: Sequence[str] = ("local",)
) -> SearchSettings:
    """``search:`` of params.yaml, with ``cli`` values (None = not given) taking precedence.

    Errors name the key (``search.rounds``), and the flag when the value came from the command line."""
    section = dict(as_mapping(params.get("search") or {}, "search"))
    check_known(section, set(SETTING_KEYS), "search")
    given = {k: v for k, v in (cli or {}).items() if v is not None}
    unknown = sorted(set(given) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"unknown search setting {unknown[0]!r}")
    section.update(given)

    def where(key: str) -> str:
        return f"search.{key}" + (f" (--{key.replace('_', '-')})" if key in given else "")

    base_run = section.get("base_run")
    if base_run is None:
        raise fail(where("base_run"), "missing: name the run of runs: whose parameters are searched")
    runs = run_names(params)
    if base_run not in runs:
        raise fail(where("base_run"), f"no such run {base_run!r} in runs:")
    name = section.get("name") or base_run
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise fail(where("name"), f"expected letters, digits, '-' or '_' (at most 80), got {name!r}")
    timeout = section.get("timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise fail(where("timeout_s"), f"expected a number of seconds > 0 or null, got {timeout!r}")
    return SearchSettings(
        name=name,
        base_run=base_run,
        rounds=as_int(section.get("rounds", 1), where("rounds")),
        samples=as_int(section.get("samples", 100), where("samples")),
        jobs=as_int(section.get("jobs", 1), where("jobs")),
        seed=as_int(section.get("seed", 1), where("seed"), minimum=0),
        backend=choice(section.get("backend", "local"), tuple(backends), where("backend")),
        timeout_s=None if timeout is None else float(timeout),
    )


def parse_assignment(text: str, flag: str) -> tuple[str, str]:
    """``KEY=VALUE`` as ``dvc exp run -S`` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key or not re.match(r"^[A-Za-z0-9_.-]+$", key):
        raise ParamsError(f"{flag} {text!r}: expected KEY=VALUE with a dotted params.yaml key")
    return key, value


def parse_forced(text: str) -> tuple[tuple[int, int], str, str]:
    """``ROUND:INDEX:KEY=VALUE`` (1-based round and sample index) of ``--sample-set``."""
    m = re.match(r"^(\d+):(\d+):(.+)$", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ParamsError(f"--sample-set {text!r}: expected ROUND:INDEX:KEY=VALUE, ROUND and INDEX from 1")
    key, value = parse_assignment(m.group(3), "--sample-set")
    return (int(m.group(1)), int(m.group(2))), key, value


def with_overrides(params: dict, overrides: dict[str, str]) -> dict:
    """A copy of ``params`` with dotted-key overrides applied the way ``dvc exp run -S`` applies
    them (values parsed as YAML), so that a sample is validated before it is queued."""
    out = copy.deepcopy(params)
    for key, raw in overrides.items():
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ParamsError(f"params.yaml: {'.'.join(parts[: i + 1])}: is not a mapping, cannot set {key}")
            node = nxt
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as exc:
            raise ParamsError(f"params.yaml: {key}: value {raw!r} is not valid YAML: {exc}") from exc
        if isinstance(value, str):  # DVC's (Hydra's) -S grammar reads 1e9 as a number, YAML 1.1 does not
            try:
                value = float(value)
            except ValueError:
                pass
        node[parts[-1]] = value
    return out


def format_value(x: float) -> str:
    """A float as an -S value: the shortest repr that reads back as the same float."""
    return repr(float(x))


# ---------------------------------------------------------------------------- results file


def results_path(root: Path, name: str) -> Path:
    return Path(root) / f"{name}.json"


def read_results(path: Path) -> dict | None:
    """The results file, or None when absent. ∞ is stored as JSON ``Infinity`` (Python's json)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SearchError(f"{path}: not a search results file ({exc}); move it away or use --restart") from exc
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise SearchError(
            f"{path}: not a search results file of format {RESULTS_FORMAT}; move it away or use --restart"
        )
    return data


def write_results(path: Path, results: dict) -> None:
    atomic_write_json(Path(path), results)


def ranges_to_json(ranges: dict[str, Range]) -> dict[str, list[float]]:
    return {k: [float(lo), float(hi)] for k, (lo, hi) in ranges.items()}


def ranges_from_json(data: dict[str, list[float]]) -> dict[str, Range]:
    return {k: (float(v[0]), float(v[1])) for k, v in data.items()}
