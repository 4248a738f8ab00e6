"""The reproduction ledger: which paper-profile runs exist, which to train next, and how long each takes.

The report fills a paper cell from ``results/paper/<run>/metrics.json``. The ledger trains those
runs in the order that fills the most important cells first (``PRIORITY``), skips a run whose
committed result has the run's current ``params_hash``, resumes one that has a checkpoint, and
projects each run's wall time on this device. ``stages.ledger`` is its command line.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import RunConfig, run_config, run_names
from pipeline.fsutil import read_missing_marker

PROFILE = "paper"

# (group, what it fills, predicate on the run name), in the order the ledger trains them. A run
# belongs to the first group whose predicate accepts it; runs of no group come last, in params order.
PRIORITY: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("table2", "Table 2: the one-layer baselines", lambda r: re.fullmatch(r"ptb-baseline-\d+-\d+", r) is not None),
    (
        "table4-small",
        "Table 4: PTB small",
        lambda r: (
            r
            in (
                "ptb-small-scrn-nd",
                "ptb-small-scrn-vd",
                "ptb-small-lstm-nd-kim",
                "ptb-small-lstm-vd-inan",
                "ptb-small-lstm-vd-wt-inan",
                "ptb-small-scrn-nd-wt",
                "ptb-small-scrn-vd-wt",
            )
        ),
    ),
    (
        "table5-small",
        "Table 5: PTB small ablations",
        lambda r: (
            r in ("ptb-small-scrn-noreg", "ptb-small-scrn-nd-wt-no-ctx-dropout", "ptb-small-scrn-nd-wt-no-ctx-softmax")
        ),
    ),
    ("section7-small", "Section 7: PTB small Sobolev runs", lambda r: r.startswith("ptb-small-") and "-sob" in r),
    ("seeds-small", "seed repeats of PTB small and the baseline", lambda r: r.startswith("ptb-") and "-seed" in r),
    ("ptb-medium", "PTB medium (Tables 4, 5, 7)", lambda r: r.startswith("ptb-medium-")),
    ("wt2", "WikiText-2 (Tables 4, 7)", lambda r: r.startswith("wt2-")),
)
# Table 2's order is the paper's order of importance, not params order.
TABLE2_ORDER = ("ptb-baseline-40-10", "ptb-baseline-90-10", "ptb-baseline-100-40", "ptb-baseline-300-40")
GROUPS = tuple(g for g, _, _ in PRIORITY) + ("other",)


def group_of(run: str) -> str:
    return next((g for g, _, accepts in PRIORITY if accepts(run)), "other")


def ordered_runs(params: dict) -> list[str]:
    """Every run of params.yaml in the ledger's order."""
    names = run_names(params)
    rank = {g: i for i, g in enumerate(GROUPS)}

    def key(item: tuple[int, str]) -> tuple:
        index, run = item
        inner = TABLE2_ORDER.index(run) if run in TABLE2_ORDER else len(TABLE2_ORDER)
        return rank[group_of(run)], inner, index

    return [run for _, run in sorted(enumerate(names), key=key)]


def select_runs(params: dict, only: list[str] | None) -> list[str]:
    """The ledger's runs, restricted to ``only`` (run names or group names) when given."""
    runs = ordered_runs(params)
    if not only:
        return runs
    unknown = [x for x in only if x not in runs and x not in GROUPS]
    if unknown:
        raise ValueError(
            f"--only: {', '.join(unknown)} is neither a run of params.yaml nor a group ({', '.join(GROUPS)})"
        )
    return [r for r in runs if r in only or group_of(r) in only]


@dataclass(frozen=True)
class Entry:
    """One run's standing in the ledger."""

    run: str
    cfg: RunConfig
    status: str  # done | busy | stale | resumable | todo | no-data
    detail: str  # a sentence for the plan and the log
    epochs_done: int = 0


def result_dir(results_root: Path, run: str) -> Path:
    return Path(results_root) / PROFILE / run


def precision_check_root(root: Path, precision: str) -> Path:
    """Where paired checks of ``precision`` keep their results (or checkpoints), beside the fp32
    ones under ``root``: a check retrains a run that already has its fp32 result."""
    return Path(root) / "checks" / precision


def read_json(path: Path) -> dict | None:
    """A JSON file's content, None if absent; a file that does not parse is an error naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc}); delete it or restore it with git checkout") from None


def epochs_logged(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def standing(params: dict, run: str, results_root: Path, checkpoint_root: Path, prepared_root: Path) -> Entry:
    cfg = run_config(params, run, PROFILE)
    prepared = Path(prepared_root) / cfg.corpus
    if read_missing_marker(prepared) is not None or not (prepared / "train.npy").is_file():
        return Entry(
            run,
            cfg,
            "no-data",
            f"corpus {cfg.corpus} is not prepared (python -m stages.prepare "
            f"--corpus {cfg.corpus}) or its data is missing",
        )
    out = result_dir(results_root, run)
    metrics = read_json(out / "metrics.json")
    if metrics and metrics.get("status") == "ok" and metrics.get("profile") == PROFILE:
        if metrics.get("params_hash") == cfg.params_hash:
            return Entry(
                run,
                cfg,
                "done",
                f"result with params hash {cfg.params_hash} exists: skipped (test ppl {metrics['test_ppl']:.2f})",
                metrics.get("epochs", 0),
            )
        stale = f"result has params hash {metrics.get('params_hash')}, the run now {cfg.params_hash}: re-run"
    else:
        stale = None
    from pipeline.train.checkpoint import holder  # imports torch

    checkpoint = Path(checkpoint_root) / f"{run}-{cfg.params_hash}" / "last.pt"
    trainer = holder(checkpoint.parent)
    if trainer is not None:
        return Entry(run, cfg, "busy", f"being trained by {trainer}: skipped")
    if checkpoint.is_file():
        done = epochs_logged(out / "epochs.csv")
        return Entry(
            run, cfg, "resumable", f"resumes from {checkpoint} (about {done} of {cfg.epochs} epochs done)", done
        )
    if stale:
        return Entry(run, cfg, "stale", stale)
    return Entry(run, cfg, "todo", "not trained yet")


# ---------------------------------------------------------------------------- wall-time projection


def measured_epoch_seconds(
    results_root: Path, run: str, device_name: str, precision: str = "fp32", code: str | None = None
) -> float | None:
    """Mean epoch time of this run's own result, if it was trained on a device of this name in this
    precision by the training code of fingerprint ``code`` (a faster step makes older times stale)."""
    out = result_dir(results_root, run)
    metrics = read_json(out / "metrics.json") or {}
    if (metrics.get("provenance") or {}).get("device_name") != device_name:
        return None
    if metrics.get("code_fingerprint") != code:
        return None
    if (metrics.get("numerics") or {}).get("precision", "fp32") != precision:
        return None
    path = out / "epochs.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    return sum(seconds) / len(seconds) if seconds else None


def shape_key(cfg: RunConfig) -> tuple:
    """What a training step's cost depends on: runs that differ only in rates, seeds or schedules share it."""
    m = cfg.model
    return (
        cfg.corpus,
        m.arch,
        m.layers,
        m.hidden,
        m.context,
        m.tie,
        m.context_in_softmax,
        m.dropout.regime,
        m.sobolev.beta > 0,
        cfg.training.batch_size,
        cfg.training.bptt,
    )


def format_duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m"


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """``2h30m``, ``45m``, ``90s``, ``1.5h`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: write it like 2h30m, 45m or 90s")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s


def probe_epoch_seconds(cfg: RunConfig, prepared_dir: Path, device, bf16: bool = False) -> float:
    """One epoch's projected wall time (training plus validation) from a few timed training windows,
    with the forward under bf16 autocast when the runs will train so."""
    import torch

    from pipeline.data.batching import make_layout
    from pipeline.data.prepare import load_prepared
    from pipeline.models import build_model, init_uniform
    from pipeline.train.allocator import keep_freed_memory
    from pipeline.train.loop import project_wall_time

    keep_freed_memory()  # as the trainer runs
    t = cfg.training
    vocab, arrays = load_prepared(prepared_dir)
    train = make_layout(arrays["train"], t.batch_size, t.bptt, cfg.budget.max_train_tokens)
    valid = make_layout(arrays["valid"], t.batch_size, t.bptt, cfg.budget.max_eval_tokens)
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg.model, len(vocab))
        init_uniform(model, t.init_scale)
    model.to(device)
    return project_wall_time(
        model, train, valid.num_windows, 1, device, t.lr, t.clip_norm, warmup=3, timed=5, bf16=bf16
    )


@dataclass(frozen=True)
class Projection:
    epoch_seconds: float
    source: str  # "measured" (this run's own epochs on this device) or "probe"
    epochs: int | None = None  # where an LR floor stopped this run's result; None: every epoch of the schedule

    def run_epochs(self, entry: Entry) -> int:
        return entry.cfg.epochs if self.epochs is None else min(self.epochs, entry.cfg.epochs)

    def run_seconds(self, entry: Entry) -> float:
        """Seconds still to go: every epoch not yet done, up to the floor stop where one is known."""
        return (
            max(0, self.run_epochs(entry) - entry.epochs_done) * self.epoch_seconds if entry.status != "done" else 0.0
        )

    def full_seconds(self, entry: Entry) -> float:
        return self.run_epochs(entry) * self.epoch_seconds


def floor_stop_epoch(results_root: Path, run: str, lr_floor: float) -> int | None:
    """The epoch at which ``lr_floor`` ended (or, in a floor check, would have ended) this run's
    result, if its result ran with that floor and it did stop it."""
    metrics = read_json(result_dir(results_root, run) / "metrics.json") or {}
    if (metrics.get("numerics") or {}).get("lr_floor") != lr_floor:
        return None
    return (metrics.get("lr_floor_stop") or {}).get("epoch")


def project(
    entries: list[Entry],
    results_root: Path,
    prepared_root: Path,
    device,
    device_name: str,
    precision: str = "fp32",
    lr_floor: float | None = None,
) -> dict[str, Projection]:
    """Each run's epoch time on this device in ``precision``: its own measured epochs where this
    training code measured them, else a probe, shared by runs of one step shape (``shape_key``).
    With ``lr_floor``, a run whose result (or, for bf16, paired check) recorded where that floor
    stops it is projected to there."""
    from pipeline.train.checkpoint import code_fingerprint  # imports torch

    probes: dict[tuple, float] = {}
    out = {}
    code = code_fingerprint()
    for entry in entries:
        if entry.status == "no-data":
            continue
        stop = None
        if lr_floor is not None:  # the run's own result, else its paired check in this precision
            roots = [results_root] + ([precision_check_root(results_root, precision)] if precision != "fp32" else [])
            stop = next((e for r in roots if (e := floor_stop_epoch(r, entry.run, lr_floor)) is not None), None)
        measured = measured_epoch_seconds(results_root, entry.run, device_name, precision, code)
        if measured is not None:
            out[entry.run] = Projection(measured, "measured", stop)
            continue
        key = shape_key(entry.cfg)
        if key not in probes:
            probes[key] = probe_epoch_seconds(
                entry.cfg, Path(prepared_root) / entry.cfg.corpus, device, bf16=precision == "bf16"
            )
        out[entry.run] = Projection(probes[key], "probe", stop)
    return out
