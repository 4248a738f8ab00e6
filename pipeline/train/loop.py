"""One training run: truncated BPTT with carried state, SGD, LR schedule, clipping, resume.

Conventions follow the authors' TensorFlow code (../shared/notes/authors-code.md §1.3-1.9):
the loss of a window is the cross-entropy summed over its time steps and averaged over the
batch; the global gradient norm of that loss is clipped; the state is zero at the start of
every pass and carried from window to window; the best-valid parameters are tested once.

A run has three phases: ``_set_up`` (data, model, resume, timing probe, the graphed step),
``_train_epochs`` and ``_finish`` (test, outputs). The LR rules are pipeline/train/schedule.py's.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm import tqdm

from pipeline.config import RunConfig
from pipeline.data.batching import BatchLayout, make_layout
from pipeline.data.prepare import load_prepared
from pipeline.errors import ParamsError, TrainingDiverged
from pipeline.fsutil import atomic_directory, atomic_write_bytes, atomic_write_json, read_missing_marker
from pipeline.models import build_model, count_parameters, init_uniform
from pipeline.models.common import detach_state
from pipeline.train import checkpoint as ckpt
from pipeline.train.allocator import keep_freed_memory
from pipeline.train.evaluate import MAX_LOG_PPL, evaluate_ppl
from pipeline.train.graphed import GraphedStep
from pipeline.train.outputs import EPOCH_FIELDS, git_revision, write_data_missing  # noqa: F401  (re-exported)
from pipeline.train.outputs import write_epoch_log as _write_epoch_log
from pipeline.train.provenance import provenance
from pipeline.train.schedule import LRSchedule
from pipeline.train.step import sgd_step, window_loss


@dataclass
class RunState:
    """Everything an end-of-epoch checkpoint holds besides the model and optimiser.

    Checkpoints pickle it by its qualified name, so it stays in this module with these fields."""

    epoch: int = 0  # epochs completed
    lr: float = 0.0
    best_valid: float = math.inf
    best_epoch: int = 0
    best_state: dict | None = None
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens: int = 0
    # Where Numerics.lr_floor stopped the run (or, in check mode, would have), with the test PPL of
    # the best state at that point; None until then.
    floor_stop: dict | None = None


PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Numerics:
    """How a run's numbers are computed beyond its params: recorded in metrics, outside params_hash.

    ``precision: bf16`` runs the eager training step's forward under ``torch.autocast`` (bfloat16
    matrix products on CPUs with AVX512-BF16 or AMX); the weights, the SGD update and every
    evaluation stay fp32.

    ``lr_floor`` ends a run once the next epoch's LR would fall below ``lr_floor`` x the initial LR
    (the authors' schedules always run every epoch). The plateau rule then halves the LR at least
    every other epoch, so what the remaining epochs could still move is bounded by a few epochs at
    that LR. ``check_floor`` trains the whole schedule anyway and records where the floor would have
    stopped and the test PPL there: the paired check that the stop is harmless.
    """

    precision: str = "fp32"  # bf16: the training step's forward under CPU autocast; weights and evaluation stay fp32
    lr_floor: float | None = None
    check_floor: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ParamsError(f"precision {self.precision!r} is not supported (have: {', '.join(PRECISIONS)})")
        if self.lr_floor is not None and not 0.0 < self.lr_floor < 1.0:
            raise ParamsError(f"lr_floor {self.lr_floor} must lie in (0, 1): a fraction of the initial LR")

    def to_dict(self) -> dict:
        return {"precision": self.precision, "lr_floor": self.lr_floor, "check_floor": self.check_floor}


class Paused(Exception):
    """The run stopped at a checkpoint because its next epoch would not end before the deadline."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


# The wall-time projection trains 3 windows on a copy of the model. Below this many training windows
# left it would add a noticeable share to the run (a quick-profile run has 4: the probe would be
# nearly half of its compute), and a run that short needs no projection.
PROBE_MIN_WINDOWS = 100


def project_wall_time(
    model,
    train: BatchLayout,
    eval_windows: int,
    epochs: int,
    device,
    lr: float,
    clip: float,
    warmup: int = 1,
    timed: int = 2,
    bf16: bool = False,
) -> float:
    """Time a few steps on a throwaway copy of the model, without touching any RNG or weights;
    ``bf16``: the forward under autocast, as the trainer's ``precision: bf16`` step."""
    probe = copy.deepcopy(model)
    windows = list(zip(range(warmup + timed), train.windows()))
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        state = probe.zero_state(train.data.shape[0], device=device)
        timings = []
        for _, (x, y) in windows:
            start = time.perf_counter()
            probe.train()
            loss, _, state = window_loss(probe, x.to(device), y.to(device), detach_state(state), bf16)
            sgd_step(probe, loss, lr, clip)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - start)
    steady = timings[warmup:] or timings
    per_window = sorted(steady)[len(steady) // 2]
    # a forward-only evaluation window costs about a third of a training window
    return epochs * per_window * (train.num_windows + eval_windows / 3)


def _train_epoch(
    model, layout: BatchLayout, device, lr: float, clip: float, epoch: int, progress: bool, bf16: bool = False
) -> float:
    model.train()
    state = model.zero_state(layout.data.shape[0], device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    bar = tqdm(
        total=layout.num_windows, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None if progress else True
    )
    for step, (x, y) in enumerate(layout.windows(), start=1):
        loss, mean_ce, state = window_loss(model, x.to(device), y.to(device), detach_state(state), bf16)
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDiverged(
                f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}/{layout.num_windows}"
            )
        sgd_step(model, loss, lr, clip)
        total += mean_ce.detach().double()
        bar.update(1)
    bar.close()
    return _train_ppl(total.item() / layout.num_windows, epoch)


def _train_ppl(mean_ce: float, epoch: int) -> float:
    """exp(mean cross-entropy); a finite loss whose perplexity overflows a float has diverged too."""
    if not mean_ce < MAX_LOG_PPL:
        raise TrainingDiverged(f"diverged: training perplexity exp({mean_ce:.4g}) overflows at epoch {epoch}")
    return math.exp(mean_ce)


def use_cuda_graph(mode: str, device: torch.device) -> bool:
    """``training.cuda_graph``: auto = on on CUDA, off on a CPU (where ``on`` runs the same
    static-buffer step uncaptured, for tests)."""
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def make_graphed_step(model, layout: BatchLayout, device, clip: float) -> GraphedStep:
    """The run's one captured step (every training window has the layout's full shape).

    A failed capture is not retried eagerly in the same process: it can leave the CUDA RNG in a
    state that later dropout draws reject, so the run stops and says how to turn the graph off."""
    try:
        return GraphedStep(model, layout.data.shape[0], layout.bptt, device, clip, capture=device.type == "cuda")
    except RuntimeError as exc:
        raise ParamsError(
            f"capturing the training step as a CUDA graph failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "train without it: set training.cuda_graph: off for this run "
            "(e.g. dvc exp run -S runs.<run>.training.cuda_graph=off)"
        ) from exc


def _train_epoch_graphed(
    step: GraphedStep, data: torch.Tensor, layout: BatchLayout, lr: float, epoch: int, progress: bool
) -> float:
    """``_train_epoch`` with the step replayed; ``data`` is the layout's data on the device.

    The NaN guard reads the device's record of the first non-finite window once, at the end of
    the epoch (the eager loop syncs on every window), and raises the same error for that step.
    """
    step.model.train()
    step.set_lr(lr)
    step.start_epoch()
    bptt, n = layout.bptt, layout.num_windows
    bar = tqdm(total=n, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None if progress else True)
    for k in range(n):
        start = k * bptt
        step.step(data[:, start : start + bptt], data[:, start + 1 : start + bptt + 1])
        bar.update(1)
    bar.close()
    total, bad_step, bad_loss = step.end_epoch()
    if bad_step:
        raise TrainingDiverged(f"non-finite loss ({bad_loss}) at epoch {epoch}, step {bad_step}/{n}")
    return _train_ppl(total / n, epoch)


def _floor_stop(model, run: RunState, test: BatchLayout, device, epoch: int, next_lr: float, measure: bool) -> dict:
    """Where the LR floor stops the run; in check mode also the test PPL the stop would report."""
    stop = {
        "epoch": epoch,
        "next_lr": next_lr,
        "best_epoch": run.best_epoch,
        "best_valid_ppl": round(run.best_valid, 4),
    }
    if measure:
        probe = copy.deepcopy(model)
        probe.load_state_dict(run.best_state)
        stop["test_ppl"] = round(evaluate_ppl(probe, test, device), 4)
    return stop


@dataclass(frozen=True)
class Layouts:
    """The run's three splits, cut into windows under its budget."""

    train: BatchLayout
    valid: BatchLayout
    test: BatchLayout


@dataclass
class Session:
    """A run's live objects from setup to finish: what the epoch loop reads and updates.

    A checkpoint holds ``run``, the model's weights and the RNG states; the rest is rebuilt from the
    config at every start."""

    cfg: RunConfig
    device: torch.device
    out_dir: Path
    ckpt_dir: Path
    fingerprint: str  # of the code that runs: a checkpoint written by other code is not resumed
    layouts: Layouts
    vocab_size: int
    model: torch.nn.Module
    run: RunState
    schedule: LRSchedule
    numerics: Numerics
    log: Callable[[str], None]
    progress: bool
    # What the deadline check expects the next epoch to take: the probe's projection, then the last epoch.
    epoch_estimate: float = 0.0
    graphed: GraphedStep | None = None
    train_data: torch.Tensor | None = None  # the train layout's data on the device, for the graphed step

    @property
    def epochs_left(self) -> int:
        return self.cfg.epochs - self.run.epoch

    @property
    def floor_stopped(self) -> bool:
        """Whether the LR floor has ended the run (in check mode it only records where it would have)."""
        return self.run.floor_stop is not None and not self.numerics.check_floor

    def last_good_checkpoint(self) -> str:
        if not self.run.epoch:
            return "none yet"
        return f"{self.ckpt_dir / ckpt.CHECKPOINT_NAME} (after epoch {self.run.epoch})"


class EpochResult(NamedTuple):
    train_ppl: float
    valid_ppl: float
    train_seconds: float  # the training pass alone: what tokens_per_s divides by
    seconds: float  # training and validation: what epochs.csv and the deadline check use


def run_training(
    cfg: RunConfig, prepared_dir: Path, out_dir: Path, checkpoint_root: Path, device: torch.device, **options
) -> dict:
    """Train ``cfg`` (see ``_train``) while holding the run's lock: a second process of the same run
    stops with ``RunInProgress`` instead of writing the same checkpoint and results."""
    with ckpt.exclusive(ckpt.checkpoint_dir(checkpoint_root, cfg)):
        return _train(cfg, prepared_dir, out_dir, checkpoint_root, device, **options)


def _train(
    cfg: RunConfig,
    prepared_dir: Path,
    out_dir: Path,
    checkpoint_root: Path,
    device: torch.device,
    progress: bool = True,
    log=print,
    numerics: Numerics = Numerics(),
    deadline: float | None = None,
) -> dict:
    """Train ``cfg`` on the prepared corpus, resuming from its checkpoint; returns the metrics.

    ``deadline`` (a ``time.time()``) pauses the run at its last checkpoint, raising ``Paused``,
    before an epoch that is not projected to end by then; the same call later resumes it.
    """
    started = time.time()
    keep_freed_memory()
    out_dir = Path(out_dir)
    missing = read_missing_marker(prepared_dir)
    if missing is not None:
        log(f"{cfg.name}: corpus {cfg.corpus!r} is missing; writing data-missing outputs")
        return write_data_missing(cfg, out_dir, missing["reason"])
    session = _set_up(cfg, prepared_dir, out_dir, checkpoint_root, device, progress, log, numerics)
    _train_epochs(session, deadline)
    return _finish(session, started)


# --- setup and resume ---------------------------------------------------------------------------


def _set_up(
    cfg: RunConfig,
    prepared_dir: Path,
    out_dir: Path,
    checkpoint_root: Path,
    device: torch.device,
    progress: bool,
    log,
    numerics: Numerics,
) -> Session:
    """Load the corpus, build the initialised model, resume from the run's checkpoint if there is
    one, project the wall time and prepare the training step."""
    layouts, vocab_size = _load_layouts(cfg, prepared_dir)
    model = _initial_model(cfg, vocab_size, device)
    session = Session(
        cfg=cfg,
        device=device,
        out_dir=out_dir,
        ckpt_dir=ckpt.checkpoint_dir(checkpoint_root, cfg),
        fingerprint=ckpt.code_fingerprint(),
        layouts=layouts,
        vocab_size=vocab_size,
        model=model,
        run=RunState(lr=cfg.training.lr),
        schedule=LRSchedule(cfg.training, floor=numerics.lr_floor),
        numerics=numerics,
        log=log,
        progress=progress,
    )
    _resume(session)
    _log_model_and_budget(session)
    session.epoch_estimate = _projected_epoch_seconds(session)
    _prepare_graphed_step(session)
    return session


def _load_layouts(cfg: RunConfig, prepared_dir: Path) -> tuple[Layouts, int]:
    """The three splits as windows of batch_size x bptt, and the vocabulary size."""
    t = cfg.training
    vocab, arrays = load_prepared(prepared_dir)
    train = make_layout(arrays["train"], t.batch_size, t.bptt, cfg.budget.max_train_tokens)
    valid = make_layout(arrays["valid"], t.batch_size, t.bptt, cfg.budget.max_eval_tokens)
    test = make_layout(arrays["test"], t.batch_size, t.bptt, cfg.budget.max_eval_tokens)
    return Layouts(train, valid, test), len(vocab)


def _initial_model(cfg: RunConfig, vocab_size: int, device: torch.device) -> torch.nn.Module:
    """The model at its seeded initialisation; the seed also starts the RNG stream that dropout draws from."""
    torch.manual_seed(cfg.training.seed)
    model = build_model(cfg.model, vocab_size)
    init_uniform(model, cfg.training.init_scale)
    return model.to(device)


def _resume(s: Session) -> None:
    """Continue from the run's last checkpoint: weights, run state and RNG states, so that the
    resumed run computes the same numbers as one that was never stopped."""
    saved = ckpt.load_checkpoint(s.ckpt_dir, s.fingerprint)
    if saved is None:
        return
    saved_precision = saved.get("precision", "fp32")
    if saved_precision != s.numerics.precision:
        raise ParamsError(
            f"{s.cfg.name}: the checkpoint in {s.ckpt_dir} was trained in {saved_precision}, this run asks for "
            f"{s.numerics.precision}; resuming would mix the two. Resume with --precision {saved_precision}, "
            f"or give this precision its own --checkpoints directory"
        )
    s.model.load_state_dict(saved["model"])
    s.run = saved["run"]
    ckpt.restore_rng_states(saved["rng"])
    s.log(f"{s.cfg.name}: resuming from {s.ckpt_dir / ckpt.CHECKPOINT_NAME} after epoch {s.run.epoch}")


def _save_checkpoint(s: Session) -> None:
    """What ``_resume`` reads back: changing these keys would stop existing checkpoints resuming."""
    ckpt.save_checkpoint(
        s.ckpt_dir,
        {
            "model": s.model.state_dict(),
            "run": s.run,
            "rng": ckpt.rng_states(),
            "code_fingerprint": s.fingerprint,
            "config": s.cfg.to_dict(),
            "precision": s.numerics.precision,
        },
    )


def _log_model_and_budget(s: Session) -> None:
    cfg, t, lay = s.cfg, s.cfg.training, s.layouts
    s.log(
        f"{cfg.name}: {cfg.model.arch} {cfg.model.hidden}/{cfg.model.context}, "
        f"{count_parameters(s.model):,} parameters, "
        f"device {s.device}, profile {cfg.profile}, params hash {cfg.params_hash}"
    )
    s.log(
        f"{cfg.name}: {cfg.epochs} epochs x {lay.train.num_windows} windows of {t.batch_size}x{t.bptt} "
        f"({lay.train.tokens_per_pass:,} train tokens/epoch; valid {lay.valid.tokens_per_pass:,}, "
        f"test {lay.test.tokens_per_pass:,})"
    )


def _projected_epoch_seconds(s: Session) -> float:
    """Log the projected wall time of the epochs left and return its share per epoch (0.0 when
    nothing is left or the run is too short to probe)."""
    remaining, train = s.epochs_left, s.layouts.train
    if remaining <= 0:
        return 0.0
    windows = remaining * train.num_windows
    if windows <= PROBE_MIN_WINDOWS:
        s.log(f"{s.cfg.name}: {windows} training windows to go: too short to be worth a timing probe")
        return 0.0
    projected = project_wall_time(
        s.model,
        train,
        s.layouts.valid.num_windows,
        remaining,
        s.device,
        s.run.lr,
        s.cfg.training.clip_norm,
        bf16=s.numerics.precision == "bf16",
    )
    s.log(
        f"{s.cfg.name}: projected wall time for {remaining} epoch(s): {format_seconds(projected)}"
        + (" (eager steps; the CUDA graph is faster)" if use_cuda_graph(s.cfg.training.cuda_graph, s.device) else "")
    )
    return projected / remaining


def _prepare_graphed_step(s: Session) -> None:
    """Capture the training step when the run uses a CUDA graph (training.cuda_graph) and has epochs left."""
    t = s.cfg.training
    if s.epochs_left <= 0 or not use_cuda_graph(t.cuda_graph, s.device):
        return
    if s.numerics.precision != "fp32":
        raise ParamsError(
            f"{s.cfg.name}: precision {s.numerics.precision} runs the eager step only; set "
            "training.cuda_graph: off for this run or train in fp32"
        )
    s.graphed = make_graphed_step(s.model, s.layouts.train, s.device, t.clip_norm)
    s.train_data = s.layouts.train.data.to(s.device)
    s.log(
        f"{s.cfg.name}: training step "
        f"{'captured as a CUDA graph' if s.graphed.graph is not None else 'on static buffers (not captured)'}"
    )


# --- the epoch loop -----------------------------------------------------------------------------


def _train_epochs(s: Session, deadline: float | None) -> None:
    """Train the epochs the run has left, each followed by validation, the LR rules, a checkpoint
    and epochs.csv; ends early where the LR floor stops the run."""
    for epoch in range(s.run.epoch + 1, s.cfg.epochs + 1):
        if s.floor_stopped:
            break  # resumed after the floor had stopped the run
        _pause_if_past_deadline(s, epoch, deadline)
        s.run.lr = s.schedule.epoch_lr(epoch, s.run.lr)
        epoch_lr = s.run.lr
        result = _train_and_validate(s, epoch, epoch_lr)
        _record_epoch(s, epoch, epoch_lr, result)
        _check_floor(s, epoch)
        # After the last epoch the outputs follow at once; a kill in between re-trains that epoch.
        if epoch < s.cfg.epochs and not s.floor_stopped:
            _save_checkpoint(s)
        _write_epoch_log(s.out_dir / "epochs.csv", s.run.history)
        if s.floor_stopped:
            break


def _pause_if_past_deadline(s: Session, epoch: int, deadline: float | None) -> None:
    """Raise ``Paused`` before an epoch projected to end after ``deadline``; the run resumes from
    its last checkpoint (the previous epoch's)."""
    if deadline is not None and time.time() + s.epoch_estimate > deadline:
        where = s.ckpt_dir / ckpt.CHECKPOINT_NAME if s.run.epoch else "no checkpoint yet"
        raise Paused(
            f"{s.cfg.name}: paused before epoch {epoch}/{s.cfg.epochs}: it would end after the deadline "
            f"(about {format_seconds(s.epoch_estimate)} an epoch); resumes from {where}"
        )


def _train_and_validate(s: Session, epoch: int, lr: float) -> EpochResult:
    """One training pass at ``lr`` and the valid PPL after it; a divergence names the checkpoint to go back to."""
    start = time.perf_counter()
    try:
        if s.graphed is not None:
            train_ppl = _train_epoch_graphed(s.graphed, s.train_data, s.layouts.train, lr, epoch, s.progress)
        else:
            train_ppl = _train_epoch(
                s.model,
                s.layouts.train,
                s.device,
                lr,
                s.cfg.training.clip_norm,
                epoch,
                s.progress,
                bf16=s.numerics.precision == "bf16",
            )
        train_seconds = time.perf_counter() - start
        valid_ppl = evaluate_ppl(s.model, s.layouts.valid, s.device)
        if not math.isfinite(valid_ppl):
            raise TrainingDiverged(f"diverged: non-finite valid perplexity ({valid_ppl}) at epoch {epoch}")
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"{s.cfg.name}: {exc}; last good checkpoint: {s.last_good_checkpoint()}") from None
    return EpochResult(train_ppl, valid_ppl, train_seconds, time.perf_counter() - start)


def _record_epoch(s: Session, epoch: int, epoch_lr: float, result: EpochResult) -> None:
    """Keep the best-valid weights, apply the plateau rule and add the epoch to the run's history."""
    run = s.run
    best_before = run.best_valid
    if result.valid_ppl < run.best_valid:
        run.best_valid, run.best_epoch = result.valid_ppl, epoch
        run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in s.model.state_dict().items()}
    run.lr = s.schedule.after_validation(run.lr, result.valid_ppl, best_before)
    run.epoch = epoch
    run.train_seconds += result.train_seconds
    run.train_tokens += s.layouts.train.tokens_per_pass
    run.history.append(
        {
            "epoch": epoch,
            "lr": epoch_lr,
            "train_ppl": round(result.train_ppl, 4),
            "valid_ppl": round(result.valid_ppl, 4),
            "seconds": round(result.seconds, 3),
        }
    )
    s.log(
        f"{s.cfg.name}: epoch {epoch}/{s.cfg.epochs}  train ppl {result.train_ppl:8.2f}  "
        f"valid ppl {result.valid_ppl:8.2f}  lr {epoch_lr:.5f}  {result.seconds:6.1f}s"
    )
    s.epoch_estimate = result.seconds


def _check_floor(s: Session, epoch: int) -> None:
    """Record ``run.floor_stop`` once, after the epoch whose successor's LR would fall below the floor."""
    if s.run.floor_stop is not None or epoch >= s.cfg.epochs:
        return
    next_lr = s.schedule.epoch_lr(epoch + 1, s.run.lr)
    if not s.schedule.below_floor(next_lr):
        return
    s.run.floor_stop = _floor_stop(s.model, s.run, s.layouts.test, s.device, epoch, next_lr, s.numerics.check_floor)
    s.log(
        f"{s.cfg.name}: the next LR {next_lr:.3g} is below the floor {s.schedule.floor:g} x {s.schedule.initial:g}; "
        + (
            f"the stop would keep best epoch {s.run.best_epoch}, test ppl {s.run.floor_stop['test_ppl']:.2f}; "
            "training on (check mode)"
            if s.numerics.check_floor
            else "stopping here"
        )
    )


# --- finish -------------------------------------------------------------------------------------


def _finish(s: Session, started: float) -> dict:
    """Test the best-valid weights once, write the model, epochs.csv and metrics.json, and only
    then remove the checkpoint (a kill before that resumes and writes them again)."""
    s.model.load_state_dict(s.run.best_state)
    test_ppl = evaluate_ppl(s.model, s.layouts.test, s.device)
    metrics = _metrics(s, test_ppl, started)
    _write_outputs(s, metrics)
    s.log(f"{s.cfg.name}: best valid ppl {s.run.best_valid:.2f} (epoch {s.run.best_epoch}), test ppl {test_ppl:.2f}")
    if ckpt.discard_checkpoints(s.ckpt_dir):
        s.log(f"{s.cfg.name}: run complete; removed its checkpoint {s.ckpt_dir}")
    return metrics


def _metrics(s: Session, test_ppl: float, started: float) -> dict:
    """metrics.json: the result, the budget and numerics it ran under, and its provenance."""
    cfg, run, lay = s.cfg, s.run, s.layouts
    return {
        "run": cfg.name,
        "status": "ok",
        "corpus": cfg.corpus,
        "profile": cfg.profile,
        "reduced": cfg.budget.is_reduced,
        "budget": cfg.to_dict()["budget"],
        "best_valid_ppl": round(run.best_valid, 4),
        "best_epoch": run.best_epoch,
        "test_ppl": round(test_ppl, 4),
        "epochs": run.epoch,
        "final_lr": run.lr,
        "train_tokens_per_epoch": lay.train.tokens_per_pass,
        "eval_tokens": {"valid": lay.valid.tokens_per_pass, "test": lay.test.tokens_per_pass},
        "parameters": count_parameters(s.model),
        "device": str(s.device),
        "params_hash": cfg.params_hash,
        "git_rev": git_revision(),
        "code_fingerprint": s.fingerprint,  # of the training code: what its epoch times measured
        "numerics": s.numerics.to_dict(),
        "lr_floor_stop": run.floor_stop,
        "provenance": provenance(s.device, started),
        "wall_time_s": round(sum(h["seconds"] for h in run.history), 3),
        "tokens_per_s": round(run.train_tokens / run.train_seconds, 1) if run.train_seconds else None,
    }


def _write_outputs(s: Session, metrics: dict) -> None:
    """The best model (with its config, to rebuild it), epochs.csv and, last, metrics.json."""
    buffer = io.BytesIO()
    torch.save({"state_dict": s.run.best_state, "config": s.cfg.to_dict(), "vocab_size": s.vocab_size}, buffer)
    with atomic_directory(s.out_dir / "model") as tmp:
        atomic_write_bytes(tmp / "model.pt", buffer.getvalue())
    _write_epoch_log(s.out_dir / "epochs.csv", s.run.history)
    atomic_write_json(s.out_dir / "metrics.json", metrics)
