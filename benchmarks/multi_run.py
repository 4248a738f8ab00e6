"""Aggregate training throughput of N concurrent runs on one device against one run at a time.

For each N of --parallel, starts N copies of ``python -m stages.train --run RUN`` at once
(what benchmarks.parallel does for real runs), each in its own scratch results/checkpoint directory, with a
budget of --windows training windows (one epoch) and --eval-windows of validation and test.
Reports, per N: wall time of the whole batch (process start-up included), the sum of the runs'
own training tokens/s (metrics.json, start-up excluded), and both relative to N = 1.

Meaningful on a GPU; on a CPU the processes only share the cores (use --quick to try it out).
Writes <out>/multi-run-<device>-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from benchmarks import environment as env
from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import load_params


def scratch_params(params_path: str, windows: int, eval_windows: int, directory: Path) -> Path:
    """params.yaml with the quick profile replaced by this benchmark's budget: 1 epoch of ``windows``."""
    params = load_params(params_path)
    tokens = lambda n: n * 20 * 35 + 20  # noqa: E731  (n full windows of batch 20 x bptt 35, plus the shift)
    params["profiles"]["quick"] = {
        "max_epochs": 1,
        "max_train_tokens": tokens(windows),
        "max_eval_tokens": tokens(eval_windows),
    }
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def measure(run: str, n: int, params: Path, device: str, prepared: Path | None, scratch: Path, log) -> dict:
    """Start ``n`` copies of the run together, each with its own output root; wait for all."""
    root = scratch / f"n{n}"
    # share the host's cores between the processes instead of oversubscribing them
    child_env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
    start = time.perf_counter()
    procs = []
    for i in range(n):
        out_dir = root / f"r{i}"
        out_dir.mkdir(parents=True)
        cmd = [
            sys.executable,
            "-m",
            "stages.train",
            "--run",
            run,
            "--no-progress",
            "--params",
            str(params),
            "--profile",
            "quick",
            "--device",
            device,
            "--results",
            str(out_dir),
            "--checkpoints",
            str(out_dir / "ckpt"),
        ]
        cmd += ["--prepared", str(prepared)] if prepared else []
        handle = open(out_dir / "log.txt", "w")
        procs.append((subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=child_env), handle))
    codes = []
    for proc, handle in procs:
        codes.append(proc.wait())
        handle.close()
    wall = time.perf_counter() - start
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        tail = (root / f"r{failed[0]}" / "log.txt").read_text()[-2000:]
        raise SystemExit(f"error: {len(failed)} of {n} concurrent runs failed; the first one's log ends:\n{tail}")
    metrics = [json.loads(next((root / f"r{i}").glob("*/*/metrics.json")).read_text()) for i in range(n)]
    tokens = sum(m["train_tokens_per_epoch"] for m in metrics)
    row = {
        "parallel": n,
        "wall_s": round(wall, 2),
        "train_tokens_total": tokens,
        "aggregate_tokens_per_s_wall": round(tokens / wall, 1),
        "aggregate_tokens_per_s_training": round(sum(m["tokens_per_s"] for m in metrics), 1),
        "per_run_tokens_per_s": [m["tokens_per_s"] for m in metrics],
    }
    log(f"N={n}: wall {wall:.1f}s, {row['aggregate_tokens_per_s_training']:,.0f} tokens/s summed over runs")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.multi_run", __doc__)
    parser.add_argument(
        "--run", default="ptb-small-scrn-nd-wt", help="run of params.yaml to copy (default: %(default)s)"
    )
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4], help="N values (default: 1 2 4)")
    parser.add_argument(
        "--windows", type=int, help="training windows per run (default: 1327 = a PTB epoch; 5 with --quick)"
    )
    parser.add_argument(
        "--eval-windows", type=int, help="validation and test windows per run (default: 20; 2 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny budget, N = 1 2: checks that it works (CPU)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: %(default)s")
    parser.add_argument("--prepared", type=Path, help="prepared corpus (default: data/prepared/<corpus>)")
    add_params(parser)
    add_path(parser, "--out", "benchmarks/results", "JSON directory")
    args = parser.parse_args(argv)
    if args.quick and args.parallel == [1, 2, 4]:
        args.parallel = [1, 2]
    windows = args.windows or (5 if args.quick else 1327)
    eval_windows = args.eval_windows or (2 if args.quick else 20)
    device = env.resolve(args.device)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731

    scratch = Path(tempfile.mkdtemp(prefix="multi-run-"))
    try:
        params = scratch_params(args.params, windows, eval_windows, scratch)
        rows = [measure(args.run, n, params, device.type, args.prepared, scratch, log) for n in args.parallel]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = rows[0]
    for r in rows:
        r["speedup_wall"] = round(r["aggregate_tokens_per_s_wall"] / base["aggregate_tokens_per_s_wall"], 3)
        r["speedup_training"] = round(r["aggregate_tokens_per_s_training"] / base["aggregate_tokens_per_s_training"], 3)
        r["runs_per_hour"] = round(r["parallel"] / r["wall_s"] * 3600, 1)
    info = env.describe(device)
    payload = {
        "benchmark": "multi_run",
        "environment": info,
        "settings": {"run": args.run, "windows": windows, "eval_windows": eval_windows, "quick": args.quick},
        "rows": rows,
    }
    path = env.write_json(args.out, "multi-run", payload)
    print(f"{info['device_name']}, torch {info['torch']}: {args.run}, {windows} training windows per run")
    print("| runs at once | wall (s) | runs/hour | tokens/s (wall) | × one run | tokens/s (training) | × one run |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['parallel']} | {r['wall_s']:.1f} | {r['runs_per_hour']:.0f} "
            f"| {r['aggregate_tokens_per_s_wall']:,.0f} "
            f"| {r['speedup_wall']:.2f} | {r['aggregate_tokens_per_s_training']:,.0f} | {r['speedup_training']:.2f} |"
        )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
