"""The SCRN hidden recurrence alone, forward + backward over one window, per kernel (CUDA).

For the small (240) and medium (750) widths at batch 20 x 35 steps: the plain loop, scan, cuDNN's
tanh RNN and the persistent Triton kernels at several launch shapes (columns per program x warps
x float32 product precision),
each timed eagerly and replayed as a CUDA graph (CUDA events, median of --steps after warm-up).
Every Triton shape is first checked against the loop (float32, TF32 off). Prints a table and
writes <out>/recurrence-micro-<device>-<time>.json. Chooses nothing: the defaults in
pipeline/models/triton_recurrence.py are set from what this measured (benchmarks/README.md).

    python -m benchmarks.recurrence_micro --device cuda
"""

from __future__ import annotations

import statistics
import sys

import torch

from benchmarks import environment as env
from pipeline.cli import add_path, command_parser
from pipeline.models.scrn import hidden_states

BATCH, STEPS = 20, 35
# (columns per program, warps, float32 product precision) of the Triton kernels
SHAPES = ((16, 4, "tf32x3"), (16, 8, "tf32x3"), (32, 4, "tf32x3"), (16, 8, "ieee"), (16, 4, "tf32"))


def make_inputs(d: int, device):
    gen = torch.Generator().manual_seed(d)
    a = torch.randn(BATCH, STEPS, d, generator=gen).to(device).requires_grad_()
    h0 = torch.rand(BATCH, d, generator=gen).to(device).requires_grad_()
    W = (torch.randn(d, d, generator=gen) * (2.0 / d**0.5)).to(device).requires_grad_()
    weights = torch.linspace(-1, 1, BATCH * STEPS * d, device=device).reshape(BATCH, STEPS, d)
    return a, h0, W, weights


def step_fn(kernel: str, inputs):
    a, h0, W, weights = inputs

    def fn():
        h, _ = hidden_states(a, h0, W, None, True, kernel)
        return torch.autograd.grad((h * weights).sum(), [a, h0, W])

    return fn


def time_ms(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graphed(fn):
    """fn captured as one CUDA graph (warmed up on a side stream first, as PyTorch requires)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def max_error(fn, reference) -> float:
    got, want = fn(), reference()
    return max(float((g - w).abs().max()) / max(1.0, float(w.abs().max())) for g, w in zip(got, want))


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.recurrence_micro", __doc__)
    parser.add_argument("--widths", nargs="+", type=int, default=[240, 750], help="hidden sizes (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="timed repetitions (default: %(default)s)")
    add_path(parser, "--out", "benchmarks/results", "JSON directory")
    args = parser.parse_args(argv)
    device = env.resolve("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from pipeline.models import triton_recurrence as tr

    defaults = (tr.BLOCK_N, tr.NUM_WARPS, tr.PRECISION)
    rows = []
    for d in args.widths:
        inputs = make_inputs(d, device)
        reference = step_fn("loop", inputs)
        configs = [(k, None) for k in ("loop", "scan", "tanh-rnn")] + [("triton", s) for s in SHAPES]
        for kernel, shape in configs:
            tr.BLOCK_N, tr.NUM_WARPS, tr.PRECISION = shape or defaults
            label = kernel + (f" {shape[0]} cols x {shape[1]} warps {shape[2]}" if shape else "")
            try:
                fn = step_fn(kernel, inputs)
                err = max_error(fn, reference)
                row = {
                    "width": d,
                    "kernel": kernel,
                    "shape": shape,
                    "max_rel_error": err,
                    "eager_ms": round(time_ms(fn, args.steps, 5), 4),
                    "graph_ms": round(time_ms(graphed(fn), args.steps, 5), 4),
                }
            except Exception as exc:  # noqa: BLE001 - a shape that does not compile is a row, not the end
                row = {"width": d, "kernel": kernel, "shape": shape, "error": f"{type(exc).__name__}: {exc}"[:300]}
            rows.append(row)
            print(
                f"d={d} {label:36s} "
                + (
                    f"eager {row['eager_ms']:.3f} ms, graph {row['graph_ms']:.3f} ms, "
                    f"max rel error {row['max_rel_error']:.1e}"
                    if "error" not in row
                    else row["error"]
                ),
                flush=True,
            )
    tr.BLOCK_N, tr.NUM_WARPS, tr.PRECISION = defaults
    info = env.describe(device)
    path = env.write_json(
        args.out,
        "recurrence-micro",
        {
            "benchmark": "recurrence_micro",
            "environment": info,
            "settings": {"batch": BATCH, "steps": STEPS},
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
