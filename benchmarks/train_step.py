"""Training-step and evaluation-pass speed of the SCRN against nn.LSTM (cuDNN) of matching size.

Every model is built from a run of params.yaml with the repository's own classes
(pipeline.models.build_model): Table 2's (40, 10) baseline and SCRN small/medium ND+WT
(ptb-small/medium-scrn-nd-wt) once per hidden-recurrence kernel (loop = the plain implementation,
scan, tanh-rnn, triton on CUDA; the kernel `auto` picks is marked), and the LSTM baselines 2x200
(ptb-small-lstm-nd-kim) and 2x650 (ptb-medium-lstm-nd-zaremba). Optional extra rows time each
model in bf16 (--bf16) and with the plain softmax loss where the trainer fuses it (--full-softmax).
The C allocator is set as the trainer sets it, unless --glibc-defaults.

One training step is exactly the trainer's (pipeline.train.step.window_loss + sgd_step: forward,
summed cross-entropy, backward, global-norm clipping, SGD update, state carried and detached) on
PTB-shaped windows (vocabulary 10,000, batch 20, bptt 35). One evaluation step is a forward pass
without gradients, as in pipeline.train.evaluate. Each step is timed with the device synchronised
on both sides; the models are interleaved round by round so that load from other processes hits
them all alike (--steps sets how many consecutive steps each takes per round), and the median
over all timed steps is reported after warm-up.

Writes <out>/train-step-<device>-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import sys

import torch
import torch.nn.functional as F

from benchmarks import environment as env
from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import load_params, run_config
from pipeline.models import build_model, count_parameters, init_uniform
from pipeline.models.common import detach_state
from pipeline.models.recurrence import default_kernel, triton_installed
from pipeline.train.allocator import keep_freed_memory
from pipeline.train.graphed import GraphedStep
from pipeline.train.softmax_loss import select_impl
from pipeline.train.step import sgd_step, window_loss

VOCAB, BATCH, BPTT = 10_000, 20, 35
PTB_TRAIN_WINDOWS = 1_327  # 929,589 training tokens in 20 streams of 35-step windows
PTB_VALID_WINDOWS = 105  # 73,760 tokens

# (size, reference LSTM run or None, SCRN run)
SIZES = {
    "baseline": (None, "ptb-baseline-40-10"),
    "small": ("ptb-small-lstm-nd-kim", "ptb-small-scrn-nd-wt"),
    "medium": ("ptb-medium-lstm-nd-zaremba", "ptb-medium-scrn-nd-wt"),
}
KERNELS = ("loop", "scan", "tanh-rnn", "triton")  # triton: CUDA with Triton installed


@dataclasses.dataclass
class Candidate:
    name: str  # table label
    size: str
    run: str
    kernel: str | None  # SCRN hidden-recurrence kernel; None for the LSTM
    model: torch.nn.Module
    lr: float
    clip: float
    train_ms: list[float] = dataclasses.field(default_factory=list)
    eval_ms: list[float] = dataclasses.field(default_factory=list)
    state: object = None
    eval_state: object = None
    graphed: GraphedStep | None = None  # the trainer's CUDA-graph step (training.cuda_graph), if this row uses it
    bf16: bool = False  # the training forward under autocast, as `stages.train --precision bf16`
    softmax: str = "auto"  # the softmax loss (pipeline/train/softmax_loss.py); full: the plain one


def build(
    params: dict, size: str, run: str, kernel: str | None, device: torch.device, graph: bool = False
) -> Candidate:
    cfg = run_config(params, run)
    model_cfg = cfg.model if kernel is None else dataclasses.replace(cfg.model, recurrence_impl=kernel)
    torch.manual_seed(cfg.training.seed)
    model = build_model(model_cfg, VOCAB)
    init_uniform(model, cfg.training.init_scale)
    model.to(device)
    m = model_cfg
    shape = f"{m.layers}x{m.hidden}" + (f"/{m.context}" if m.arch.startswith("scrn") else "")
    if kernel is None:
        name = f"LSTM {shape} (nn.LSTM{', cuDNN' if device.type == 'cuda' else ''})"
    else:
        name = f"SCRN {shape} {kernel}" + (" [auto]" if kernel == default_kernel(device, m.hidden) else "")
    c = Candidate(name, size, run, kernel, model, cfg.training.lr, cfg.training.clip_norm)
    if graph:  # exactly what the trainer builds for training.cuda_graph (captured on CUDA only)
        c.graphed = GraphedStep(model, BATCH, BPTT, device, c.clip, capture=device.type == "cuda")
        c.graphed.set_lr(c.lr)
        c.graphed.start_epoch()
        c.name = c.name.replace(" [auto]", "") + (
            " + CUDA graph" if c.graphed.graph is not None else " + static step (uncaptured)"
        )
    return c


def train_step(c: Candidate, x, y) -> None:
    c.model.train()
    if c.graphed is not None:
        c.graphed.step(x, y)
        return
    loss, _, c.state = window_loss(c.model, x, y, detach_state(c.state), c.bf16, c.softmax)
    sgd_step(c.model, loss, c.lr, c.clip)


@torch.no_grad()
def eval_step(c: Candidate, x, y) -> None:
    c.model.eval()
    logits, c.eval_state, _ = c.model(x, c.eval_state)
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")


def measure(cands: list[Candidate], device, rounds: int, train_steps: int, eval_steps: int, warmup: int, log) -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, VOCAB, (BATCH, BPTT + 1), generator=gen).to(device) for _ in range(8)]
    for c in cands:  # warm-up: allocator, cuDNN plans, lazy initialisation
        c.state = c.model.zero_state(BATCH, device=device)
        c.eval_state = c.model.zero_state(BATCH, device=device)
        for i in range(warmup):
            b = batches[i % len(batches)]
            train_step(c, b[:, :-1], b[:, 1:])
            eval_step(c, b[:, :-1], b[:, 1:])
        env.synchronize(device)
    for r in range(rounds):
        for c in cands:
            for i in range(train_steps):
                b = batches[i % len(batches)]
                c.train_ms.append(1e3 * env.timed(lambda: train_step(c, b[:, :-1], b[:, 1:]), device))
            for i in range(eval_steps):
                b = batches[i % len(batches)]
                c.eval_ms.append(1e3 * env.timed(lambda: eval_step(c, b[:, :-1], b[:, 1:]), device))
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{c.name} {statistics.median(c.train_ms):.1f}" for c in cands))


def softmax_used(c: Candidate, device: torch.device) -> str:
    """What the training loss of ``c`` runs: its softmax input's width, device and precision decide."""
    width = c.model.output_layer()[0].shape[1]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.bf16):
        return select_impl(c.softmax, torch.empty(0, width, device=device))


def is_reference(c: Candidate) -> bool:
    """A row as the trainer runs it by default: eager, fp32, the auto softmax loss; the ratios'
    denominators are such rows."""
    return c.graphed is None and not c.bf16 and c.softmax == "auto"


def summarise(cands: list[Candidate], device: torch.device) -> list[dict]:
    lstm = {c.size: c for c in cands if c.kernel is None and is_reference(c)}  # the eager cuDNN LSTM
    loop = {c.size: c for c in cands if c.kernel == "loop" and is_reference(c)}
    fp32 = {(c.size, c.run, c.kernel): c for c in cands if is_reference(c)}
    full_softmax = {(c.size, c.run, c.kernel): c for c in cands if c.graphed is None and c.softmax == "full"}
    rows = []
    for c in cands:
        train, ev = statistics.median(c.train_ms), statistics.median(c.eval_ms)
        ref, plain = lstm.get(c.size), loop.get(c.size)
        rows.append(
            {
                "model": c.name,
                "size": c.size,
                "run": c.run,
                "kernel": c.kernel,
                "cuda_graph": c.graphed is not None,
                "precision": "bf16" if c.bf16 else "fp32",
                "train_ratio_to_fp32": (
                    round(train / statistics.median(fp32[(c.size, c.run, c.kernel)].train_ms), 3) if c.bf16 else None
                ),
                "softmax_loss": softmax_used(c, device),
                "train_speedup_over_full_softmax": (
                    round(statistics.median(full.train_ms) / train, 3)
                    if (full := full_softmax.get((c.size, c.run, c.kernel))) and is_reference(c)
                    else None
                ),
                "parameters": count_parameters(c.model),
                "train_ms_per_batch": round(train, 3),
                "train_tokens_per_s": round(BATCH * BPTT / train * 1e3),
                "train_epoch_s": round(train * PTB_TRAIN_WINDOWS / 1e3, 2),
                "train_ratio_to_lstm": round(train / statistics.median(ref.train_ms), 3) if ref else None,
                "train_speedup_over_loop": round(statistics.median(plain.train_ms) / train, 3)
                if plain and c.kernel
                else None,
                "eval_ms_per_batch": round(ev, 3),
                "eval_tokens_per_s": round(BATCH * BPTT / ev * 1e3),
                "eval_valid_pass_s": round(ev * PTB_VALID_WINDOWS / 1e3, 3),
                "eval_ratio_to_lstm": round(ev / statistics.median(ref.eval_ms), 3) if ref else None,
                "train_samples": len(c.train_ms),
                "eval_samples": len(c.eval_ms),
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| model | train ms/batch | tokens/s | PTB epoch (s) | × LSTM | × loop speed-up "
        "| eval ms/batch | eval tokens/s | eval × LSTM |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    for r in rows:
        lines.append(
            f"| {r['model']} | {r['train_ms_per_batch']:.2f} | {r['train_tokens_per_s']:,} | {r['train_epoch_s']:.1f} "
            f"| {fmt(r['train_ratio_to_lstm'], '.2f')} | {fmt(r['train_speedup_over_loop'], '.2f')} "
            f"| {r['eval_ms_per_batch']:.2f} | {r['eval_tokens_per_s']:,} | {fmt(r['eval_ratio_to_lstm'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.train_step", __doc__)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: %(default)s")
    parser.add_argument("--quick", action="store_true", help="few steps: a CPU run within a few minutes")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="default: all")
    parser.add_argument(
        "--kernels",
        nargs="+",
        choices=KERNELS,
        help="SCRN hidden-recurrence kernels to time (default: loop, scan, tanh-rnn, and triton on "
        "CUDA where installed; loop is the plain path)",
    )
    parser.add_argument(
        "--graph-kernels",
        nargs="*",
        default=["auto"],
        choices=("auto",) + KERNELS,
        help="SCRN kernels also timed with the whole training step as one CUDA graph "
        "(training.cuda_graph; uncaptured on a CPU); default: the device's auto kernel; none: no such rows",
    )
    parser.add_argument(
        "--graph-lstm",
        action="store_true",
        help="also time the LSTM with its training step captured (a labelled extra row; the "
        "x LSTM ratios always use the eager cuDNN LSTM)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: CPU 6 quick, 12 otherwise; CUDA 5)")
    parser.add_argument(
        "--steps", type=int, help="timed training steps per model per round (default: CPU 1; CUDA 40, 10 with --quick)"
    )
    parser.add_argument(
        "--eval-steps", type=int, help="timed evaluation steps per model per round (default: half of --steps)"
    )
    parser.add_argument("--warmup", type=int, help="untimed steps per model first (default: 2 on CPU, 10 on CUDA)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default on a CPU: 1, because on a shared "
        "2-core machine a second thread thrashes as soon as another process runs; recorded)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time every eager model with its training forward in bfloat16 (autocast), as "
        "`stages.train --precision bf16`: a labelled extra row per model",
    )
    parser.add_argument(
        "--full-softmax",
        action="store_true",
        help="also time every eager model whose training loss uses the fused softmax "
        "(pipeline/train/softmax_loss.py: fp32 on a CPU) with the plain one, its baseline: a labelled extra row",
    )
    parser.add_argument(
        "--glibc-defaults",
        action="store_true",
        help="leave the C allocator at its defaults instead of setting it as the trainer does "
        "(pipeline/train/allocator.py); recorded",
    )
    add_params(parser)
    add_path(parser, "--out", "benchmarks/results", "JSON directory")
    args = parser.parse_args(argv)

    device = env.resolve(args.device)
    cuda = device.type == "cuda"
    # process-wide, so a comparison takes a second run with --glibc-defaults
    allocator = "defaults" if args.glibc_defaults or not keep_freed_memory() else "freed memory kept, as the trainer"
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    # on a CPU every round times one step of each model in turn, so that load from other
    # processes falls on all models alike; a GPU is not shared, so longer blocks are fine
    rounds = args.rounds or (5 if cuda else 6 if args.quick else 12)
    steps = args.steps or (40 if cuda and not args.quick else 10 if cuda else 1)
    eval_steps = args.eval_steps or max(1, steps // 2)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 2)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731

    kernels = args.kernels or [k for k in KERNELS if k != "triton" or (cuda and triton_installed())]
    params = load_params(args.params)
    cands = []
    for size in args.sizes:
        lstm_run, scrn_run = SIZES[size]
        if lstm_run is not None:
            cands.append(build(params, size, lstm_run, None, device))
        cands += [build(params, size, scrn_run, k, device) for k in kernels]
        hidden = run_config(params, scrn_run).model.hidden
        for k in dict.fromkeys(default_kernel(device, hidden) if k == "auto" else k for k in args.graph_kernels):
            cands.append(build(params, size, scrn_run, k, device, graph=True))
        if args.graph_lstm:
            try:
                cands.append(build(params, size, lstm_run, None, device, graph=True))
            except Exception as exc:  # noqa: BLE001 - an extra row; report why it is missing
                log(f"LSTM {size} with a captured step: capture failed ({type(exc).__name__}: {exc}); row skipped")
    if args.full_softmax:
        cands += [
            dataclasses.replace(
                c, name=f"{c.name} full softmax", softmax="full", model=copy.deepcopy(c.model), train_ms=[], eval_ms=[]
            )
            for c in cands
            if c.graphed is None and softmax_used(c, device) != "full"
        ]
    if args.bf16:
        twins = [
            dataclasses.replace(
                c, name=f"{c.name} bf16", bf16=True, model=copy.deepcopy(c.model), train_ms=[], eval_ms=[]
            )
            for c in cands
            if c.graphed is None and c.softmax == "auto"
        ]
        cands += twins
    info = env.describe(device)
    log(
        f"benchmarking on {info['device_name']} (torch {info['torch']}, {info['threads']} threads): "
        f"{rounds} rounds x {steps} train + {eval_steps} eval steps per model, {warmup} warm-up"
    )
    measure(cands, device, rounds, steps, eval_steps, warmup, log)
    rows = summarise(cands, device)
    payload = {
        "benchmark": "train_step",
        "environment": info,
        "settings": {
            "vocab": VOCAB,
            "batch": BATCH,
            "bptt": BPTT,
            "rounds": rounds,
            "train_steps": steps,
            "eval_steps": eval_steps,
            "warmup": warmup,
            "quick": args.quick,
            "allocator": allocator,
            "ptb_train_windows": PTB_TRAIN_WINDOWS,
            "ptb_valid_windows": PTB_VALID_WINDOWS,
            "auto_kernel": {
                size: default_kernel(device, run_config(params, SIZES[size][1]).model.hidden) for size in args.sizes
            },
        },
        "rows": rows,
    }
    path = env.write_json(args.out, "train-step", payload)
    print(
        f"{info['device_name']}, torch {info['torch']}"
        + (f", CUDA {info['cuda']}, cuDNN {info['cudnn']}" if cuda else f", {info['threads']} threads")
        + f"; median of {rounds * steps} training / {rounds * eval_steps} evaluation steps per model"
    )
    print(table(rows))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
