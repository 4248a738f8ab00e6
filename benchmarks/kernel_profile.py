"""Where a training step's GPU time goes: kernels per step and their summed device time.

A CUDA-graph replay runs the same kernels as the eager step without the CPU launch gaps, so the
summed kernel time of an eager step (torch.profiler, CUDA activity) is what bounds a captured
step from below, and the kernel count says how much of it is per-launch latency. For each model
(the rows of benchmarks.train_step: SCRN small/medium per kernel, nn.LSTM 2x200/2x650) it prints
kernels per step, kernel time per step and the largest kernels, and writes
<out>/kernel-profile-<device>-<time>.json.

    python -m benchmarks.kernel_profile --device cuda --kernels tanh-rnn triton
"""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import environment as env
from benchmarks.train_step import BATCH, BPTT, SIZES, VOCAB, build, train_step
from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import load_params
from pipeline.models.recurrence import KERNELS


def profile_model(c, device, steps: int, warmup: int, top: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, VOCAB, (BATCH, BPTT + 1), generator=gen).to(device)
    c.state = c.model.zero_state(BATCH, device=device)
    for _ in range(warmup):
        train_step(c, batch[:, :-1], batch[:, 1:])
    env.synchronize(device)
    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        for _ in range(steps):
            train_step(c, batch[:, :-1], batch[:, 1:])
        env.synchronize(device)
    events = (
        [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        if device.type == "cuda"
        else list(prof.key_averages())
    )
    time_us = lambda e: e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total  # noqa: E731
    kernels = sorted(events, key=time_us, reverse=True)
    return {
        "model": c.name,
        "kernels_per_step": round(sum(e.count for e in kernels) / steps, 1),
        "kernel_ms_per_step": round(sum(map(time_us, kernels)) / steps / 1e3, 3),
        "top": [
            {
                "name": e.key[:90],
                "calls_per_step": round(e.count / steps, 1),
                "ms_per_step": round(time_us(e) / steps / 1e3, 3),
            }
            for e in kernels[:top]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.kernel_profile", __doc__)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: %(default)s")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="default: all")
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["tanh-rnn"],
        choices=KERNELS[1:],
        help="SCRN hidden-recurrence kernels (default: %(default)s)",
    )
    parser.add_argument("--steps", type=int, default=5, help="profiled training steps per model (default: %(default)s)")
    parser.add_argument("--top", type=int, default=8, help="largest kernels listed per model (default: %(default)s)")
    add_params(parser)
    add_path(parser, "--out", "benchmarks/results", "JSON directory")
    args = parser.parse_args(argv)
    device = env.resolve(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    params = load_params(args.params)
    rows = []
    for size in args.sizes:
        lstm_run, scrn_run = SIZES[size]
        cands = [build(params, size, lstm_run, None, device)] + [
            build(params, size, scrn_run, k, device) for k in args.kernels
        ]
        for c in cands:
            rows.append(profile_model(c, device, args.steps, warmup=3, top=args.top))
            r = rows[-1]
            print(
                f"\n{r['model']}: {r['kernels_per_step']:.0f} kernels, "
                f"{r['kernel_ms_per_step']:.3f} ms of kernel time per step"
            )
            for k in r["top"]:
                print(f"  {k['ms_per_step']:8.3f} ms  {k['calls_per_step']:6.1f}x  {k['name']}")
            del c
    info = env.describe(device)
    path = env.write_json(
        args.out,
        "kernel-profile",
        {"benchmark": "kernel_profile", "environment": info, "settings": {"steps": args.steps}, "rows": rows},
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
