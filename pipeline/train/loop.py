"""One training run: truncated BPTT with carried state, SGD, LR schedule, clipping, resume.

Conventions follow the authors' TensorFlow code (../shared/notes/authors-code.md §1.3-1.9):
the loss of a window is the cross-entropy summed over its time steps and averaged over the
batch; the global gradient norm of that loss is clipped; the state is zero at the start of
every pass and carried from window to window; the best-valid parameters are tested once.
"""
from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.config import RunConfig
from pipeline.data.batching import BatchLayout, make_layout
from pipeline.data.prepare import load_prepared
from pipeline.errors import ParamsError, TrainingDiverged
from pipeline.fsutil import atomic_directory, atomic_write_bytes, atomic_write_json, read_missing_marker
from pipeline.models import build_model, count_parameters, init_uniform
from pipeline.train import checkpoint as ckpt
from pipeline.train.graphed import GraphedStep
from pipeline.train.outputs import EPOCH_FIELDS, git_revision, write_data_missing  # noqa: F401  (re-exported)
from pipeline.train.provenance import provenance
from pipeline.train.schedule import LRSchedule
from pipeline.train.outputs import write_epoch_log as _write_epoch_log
from pipeline.models.common import detach_state
from pipeline.train.evaluate import MAX_LOG_PPL, evaluate_ppl
from pipeline.train.step import sgd_step, window_loss


@dataclass
class RunState:
    """Everything an end-of-epoch checkpoint holds besides the model and optimiser."""

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


def project_wall_time(model, train: BatchLayout, eval_windows: int, epochs: int, device, lr: float, clip: float,
                      warmup: int = 1, timed: int = 2) -> float:
    """Time a few steps on a throwaway copy of the model, without touching any RNG or weights."""
    probe = copy.deepcopy(model)
    windows = list(zip(range(warmup + timed), train.windows()))
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        state = probe.zero_state(train.data.shape[0], device=device)
        timings = []
        for _, (x, y) in windows:
            start = time.perf_counter()
            probe.train()
            loss, _, state = window_loss(probe, x.to(device), y.to(device), detach_state(state))
            sgd_step(probe, loss, lr, clip)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - start)
    steady = timings[warmup:] or timings
    per_window = sorted(steady)[len(steady) // 2]
    # a forward-only evaluation window costs about a third of a training window
    return epochs * per_window * (train.num_windows + eval_windows / 3)


def _train_epoch(model, layout: BatchLayout, device, lr: float, clip: float, epoch: int, progress: bool,
                 bf16: bool = False) -> float:
    model.train()
    state = model.zero_state(layout.data.shape[0], device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    bar = tqdm(total=layout.num_windows, desc=f"epoch {epoch}", unit="batch", leave=False, disable=None if progress else True)
    for step, (x, y) in enumerate(layout.windows(), start=1):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, mean_ce, state = window_loss(model, x.to(device), y.to(device), detach_state(state))
        if not torch.isfinite(loss):
            bar.close()
            raise TrainingDiverged(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {step}/{layout.num_windows}")
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
            "(e.g. dvc exp run -S runs.<run>.training.cuda_graph=off)") from exc


def _train_epoch_graphed(step: GraphedStep, data: torch.Tensor, layout: BatchLayout, lr: float, epoch: int,
                         progress: bool) -> float:
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
    stop = {"epoch": epoch, "next_lr": next_lr, "best_epoch": run.best_epoch, "best_valid_ppl": round(run.best_valid, 4)}
    if measure:
        probe = copy.deepcopy(model)
        probe.load_state_dict(run.best_state)
        stop["test_ppl"] = round(evaluate_ppl(probe, test, device), 4)
    return stop


def run_training(cfg: RunConfig, prepared_dir: Path, out_dir: Path, checkpoint_root: Path, device: torch.device,
                 **options) -> dict:
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
    out_dir = Path(out_dir)
    missing = read_missing_marker(prepared_dir)
    if missing is not None:
        log(f"{cfg.name}: corpus {cfg.corpus!r} is missing; writing data-missing outputs")
        return write_data_missing(cfg, out_dir, missing["reason"])

    t = cfg.training
    vocab, arrays = load_prepared(prepared_dir)
    train = make_layout(arrays["train"], t.batch_size, t.bptt, cfg.budget.max_train_tokens)
    valid = make_layout(arrays["valid"], t.batch_size, t.bptt, cfg.budget.max_eval_tokens)
    test = make_layout(arrays["test"], t.batch_size, t.bptt, cfg.budget.max_eval_tokens)

    torch.manual_seed(t.seed)
    model = build_model(cfg.model, len(vocab))
    init_uniform(model, t.init_scale)
    model.to(device)
    run = RunState(lr=t.lr)
    schedule = LRSchedule(t, floor=numerics.lr_floor)

    fingerprint = ckpt.code_fingerprint()
    ckpt_dir = ckpt.checkpoint_dir(checkpoint_root, cfg)
    saved = ckpt.load_checkpoint(ckpt_dir, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        run = saved["run"]
        ckpt.restore_rng_states(saved["rng"])
        log(f"{cfg.name}: resuming from {ckpt_dir / ckpt.CHECKPOINT_NAME} after epoch {run.epoch}")

    n_params = count_parameters(model)
    remaining = cfg.epochs - run.epoch
    log(
        f"{cfg.name}: {cfg.model.arch} {cfg.model.hidden}/{cfg.model.context}, {n_params:,} parameters, "
        f"device {device}, profile {cfg.profile}, params hash {cfg.params_hash}"
    )
    log(
        f"{cfg.name}: {cfg.epochs} epochs x {train.num_windows} windows of {t.batch_size}x{t.bptt} "
        f"({train.tokens_per_pass:,} train tokens/epoch; valid {valid.tokens_per_pass:,}, test {test.tokens_per_pass:,})"
    )
    if remaining > 0 and remaining * train.num_windows > PROBE_MIN_WINDOWS:
        projected = project_wall_time(model, train, valid.num_windows, remaining, device, run.lr, t.clip_norm)
        log(f"{cfg.name}: projected wall time for {remaining} epoch(s): {format_seconds(projected)}"
            + (" (eager steps; the CUDA graph is faster)" if use_cuda_graph(t.cuda_graph, device) else ""))
    elif remaining > 0:
        log(f"{cfg.name}: {remaining * train.num_windows} training windows to go: too short to be worth a timing probe")
    graphed = train_data = None
    if remaining > 0 and use_cuda_graph(t.cuda_graph, device):
        if numerics.precision != "fp32":
            raise ParamsError(f"{cfg.name}: precision {numerics.precision} runs the eager step only; set "
                              "training.cuda_graph: off for this run or train in fp32")
        graphed = make_graphed_step(model, train, device, t.clip_norm)
        train_data = train.data.to(device)
        log(f"{cfg.name}: training step {'captured as a CUDA graph' if graphed.graph is not None else 'on static buffers (not captured)'}")

    epoch_estimate = projected / remaining if remaining > 0 and remaining * train.num_windows > PROBE_MIN_WINDOWS else 0.0
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        if run.floor_stop is not None and not numerics.check_floor:
            break  # resumed after the floor had stopped the run
        if deadline is not None and time.time() + epoch_estimate > deadline:
            where = ckpt_dir / ckpt.CHECKPOINT_NAME if run.epoch else "no checkpoint yet"
            raise Paused(f"{cfg.name}: paused before epoch {epoch}/{cfg.epochs}: it would end after the deadline "
                         f"(about {format_seconds(epoch_estimate)} an epoch); resumes from {where}")
        run.lr = schedule.epoch_lr(epoch, run.lr)
        epoch_lr = run.lr
        start = time.perf_counter()
        try:
            if graphed is not None:
                train_ppl = _train_epoch_graphed(graphed, train_data, train, epoch_lr, epoch, progress)
            else:
                train_ppl = _train_epoch(model, train, device, epoch_lr, t.clip_norm, epoch, progress,
                                         bf16=numerics.precision == "bf16")
            train_seconds = time.perf_counter() - start
            valid_ppl = evaluate_ppl(model, valid, device)
            if not math.isfinite(valid_ppl):
                raise TrainingDiverged(f"diverged: non-finite valid perplexity ({valid_ppl}) at epoch {epoch}")
        except TrainingDiverged as exc:
            where = f"{ckpt_dir / ckpt.CHECKPOINT_NAME} (after epoch {run.epoch})" if run.epoch else "none yet"
            raise TrainingDiverged(f"{cfg.name}: {exc}; last good checkpoint: {where}") from None
        seconds = time.perf_counter() - start

        best_before = run.best_valid
        if valid_ppl < run.best_valid:
            run.best_valid, run.best_epoch = valid_ppl, epoch
            run.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        run.lr = schedule.after_validation(run.lr, valid_ppl, best_before)
        run.epoch = epoch
        run.train_seconds += train_seconds
        run.train_tokens += train.tokens_per_pass
        run.history.append(
            {"epoch": epoch, "lr": epoch_lr,
             "train_ppl": round(train_ppl, 4), "valid_ppl": round(valid_ppl, 4), "seconds": round(seconds, 3)}
        )
        log(
            f"{cfg.name}: epoch {epoch}/{cfg.epochs}  train ppl {train_ppl:8.2f}  valid ppl {valid_ppl:8.2f}  "
            f"lr {epoch_lr:.5f}  {seconds:6.1f}s"
        )
        epoch_estimate = seconds
        if run.floor_stop is None and epoch < cfg.epochs:
            next_lr = schedule.epoch_lr(epoch + 1, run.lr)
            if schedule.below_floor(next_lr):
                run.floor_stop = _floor_stop(model, run, test, device, epoch, next_lr, numerics.check_floor)
                log(f"{cfg.name}: the next LR {next_lr:.3g} is below the floor {numerics.lr_floor:g} x {t.lr:g}; "
                    + (f"the stop would keep best epoch {run.best_epoch}, test ppl {run.floor_stop['test_ppl']:.2f}; "
                       "training on (check mode)" if numerics.check_floor else "stopping here"))
        stop_now = run.floor_stop is not None and not numerics.check_floor
        if epoch < cfg.epochs and not stop_now:  # after the last one the outputs follow at once; a kill there re-trains one epoch
            ckpt.save_checkpoint(
                ckpt_dir,
                {"model": model.state_dict(), "run": run,
                 "rng": ckpt.rng_states(), "code_fingerprint": fingerprint, "config": cfg.to_dict()},
            )
        _write_epoch_log(out_dir / "epochs.csv", run.history)
        if stop_now:
            break

    model.load_state_dict(run.best_state)
    test_ppl = evaluate_ppl(model, test, device)
    metrics = {
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
        "train_tokens_per_epoch": train.tokens_per_pass,
        "eval_tokens": {"valid": valid.tokens_per_pass, "test": test.tokens_per_pass},
        "parameters": n_params,
        "device": str(device),
        "params_hash": cfg.params_hash,
        "git_rev": git_revision(),
        "numerics": numerics.to_dict(),
        "lr_floor_stop": run.floor_stop,
        "provenance": provenance(device, started),
        "wall_time_s": round(sum(h["seconds"] for h in run.history), 3),
        "tokens_per_s": round(run.train_tokens / run.train_seconds, 1) if run.train_seconds else None,
    }
    buffer = io.BytesIO()
    torch.save({"state_dict": run.best_state, "config": cfg.to_dict(), "vocab_size": len(vocab)}, buffer)
    with atomic_directory(out_dir / "model") as tmp:
        atomic_write_bytes(tmp / "model.pt", buffer.getvalue())
    _write_epoch_log(out_dir / "epochs.csv", run.history)
    atomic_write_json(out_dir / "metrics.json", metrics)
    log(f"{cfg.name}: best valid ppl {run.best_valid:.2f} (epoch {run.best_epoch}), test ppl {test_ppl:.2f}")
    if ckpt.discard_checkpoints(ckpt_dir):  # only now: every output above is written
        log(f"{cfg.name}: run complete; removed its checkpoint {ckpt_dir}")
    return metrics
