"""The reproduction ledger: train the paper-profile runs that fill the report, most important first.

Order (python -m stages.ledger --plan lists it): Table 2's baselines (40,10), (90,10), (100,40),
(300,40); Table 4's PTB small runs; Table 5's small ablations; Section 7's small Sobolev runs; the
PTB small seed repeats; PTB medium; WikiText-2; the rest. Each run is ``python -m stages.train
--profile paper`` in its own process, writing results/paper/<run>/{metrics.json, epochs.csv,
train.log} (and model/, which git ignores). A run whose result already has the run's current
params hash is skipped; one with a checkpoint resumes from it.

    python -m stages.ledger --plan                       # order, status, projected time, totals
    python -m stages.ledger --budget 2h30m               # train what fits, pause cleanly before the end
    python -m stages.ledger --only table2 ptb-small-scrn-nd --budget 1h
    python -m stages.ledger --device cuda --parallel 4 --only ptb-medium wt2 --budget 9m

--budget starts a run only if at least one of its epochs fits in what is left, and every run
pauses at its last checkpoint before an epoch that would end after the budget (run the same
command again to resume). --lr-floor ends a run once its LR is negligible, and --precision bf16
trains under autocast: numerics changes, recorded in metrics.json, that the report accepts only
with a paired check (--check-floor, --check-precision; docs/ledger.md).

Environment: none of its own; stages.train reads the prepared corpora under data/prepared.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from pipeline import ledger
from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import DEVICES, load_params
from stages._common import run_stage
from stages.train import PAUSED_EXIT

MARGIN_S = 60.0  # kept free at the end of a budget for the final test pass and writing results


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("stages.ledger", __doc__)
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the order, each run's status and projected wall time on this device, and the totals; train nothing",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="RUN_OR_GROUP",
        help=f"restrict to these runs or groups ({', '.join(ledger.GROUPS)})",
    )
    parser.add_argument("--budget", help="wall-clock budget, e.g. 2h30m (default: none, train everything)")
    parser.add_argument(
        "--finish-only",
        action="store_true",
        help="with --budget: start a run only if all its remaining epochs fit (for a machine whose "
        "checkpoints do not outlive the session, such as a lent GPU)",
    )
    parser.add_argument("--parallel", type=int, default=1, help="runs at once on the device (default: %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="device (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads per run (default: the cores divided by --parallel)")
    parser.add_argument(
        "--lr-floor",
        type=float,
        metavar="FRACTION",
        help="end a run once its next LR < FRACTION x its initial LR (a numerics change)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: the training forward under autocast (a numerics change; default: %(default)s)",
    )
    parser.add_argument(
        "--check-floor",
        action="store_true",
        help="with --lr-floor: train every epoch and record the floor's result (the paired check)",
    )
    parser.add_argument(
        "--check-precision",
        action="store_true",
        help="with --precision bf16: train the listed runs again as paired checks of that precision "
        "against their fp32 results, under <results>/checks/bf16/ and <checkpoints>/checks/bf16/",
    )
    add_params(parser)
    add_path(parser, "--results", "results", "results root")
    add_path(parser, "--checkpoints", "checkpoints", "checkpoint root")
    add_path(parser, "--prepared", "data/prepared", "prepared corpora")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.time()
    if args.parallel < 1:
        parser.error(f"--parallel {args.parallel}: must be at least 1")
    if args.finish_only and not args.budget:
        parser.error("--finish-only sizes runs to a budget: give --budget too")
    if args.check_floor and args.lr_floor is None:
        parser.error("--check-floor checks an LR floor: give --lr-floor too")
    if args.check_precision:
        if args.precision == "fp32":
            parser.error("--check-precision checks a precision against fp32: give --precision bf16 too")
        args.results = ledger.precision_check_root(args.results, args.precision)
        args.checkpoints = ledger.precision_check_root(args.checkpoints, args.precision)
    params = load_params(args.params)
    try:
        budget_s = ledger.parse_duration(args.budget) if args.budget else None
        runs = ledger.select_runs(params, args.only)
    except ValueError as exc:
        parser.error(str(exc))
    entries = [ledger.standing(params, r, args.results, args.checkpoints, args.prepared) for r in runs]

    import torch  # after the cheap checks above

    from pipeline.train.loop import resolve_device
    from pipeline.train.provenance import device_name

    device = resolve_device(args.device)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // args.parallel) if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    name = device_name(device)
    if args.plan:
        everything = [
            ledger.standing(params, r, args.results, args.checkpoints, args.prepared)
            for r in ledger.ordered_runs(params)
        ]
        projections = ledger.project(
            everything, args.results, args.prepared, device, name, args.precision, args.lr_floor
        )
        print_plan(entries, everything, projections, name, args.precision, args.lr_floor)
        return 0
    deadline = started + budget_s - MARGIN_S if budget_s is not None else None
    return run_ledger(args, entries, device, name, threads, deadline)


def print_plan(
    entries: list[ledger.Entry],
    everything: list[ledger.Entry],
    projections: dict,
    name: str,
    precision: str,
    lr_floor: float | None = None,
) -> None:
    floor = f", LR floor {lr_floor:g}" if lr_floor is not None else ""
    print(
        f"Ledger plan on {name}, profile paper, {precision}{floor}, projected from measured epochs or a probe of a "
        "few training windows"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load >= 0.5:
        print(f"(load average {load:.1f} on {os.cpu_count()} cores while probing: other work slowed the probes down)")
    print(
        f"{'#':>3}  {'run':42} {'group':15} {'status':10} {'epochs':>7} {'s/epoch':>8} {'run':>7} {'to go':>7}  source"
    )
    for index, entry in enumerate(entries, start=1):
        p = projections.get(entry.run)
        epochs = f"{p.run_epochs(entry)}" + ("*" if p.epochs is not None else "") if p else f"{entry.cfg.epochs}"
        per_epoch = f"{p.epoch_seconds:8.1f}" if p else f"{'—':>8}"
        whole = ledger.format_duration(p.full_seconds(entry)) if p else "—"
        to_go = ledger.format_duration(p.run_seconds(entry)) if p else "—"
        print(
            f"{index:>3}  {entry.run:42} {ledger.group_of(entry.run):15} {entry.status:10} "
            f"{epochs:>7} {per_epoch} {whole:>7} {to_go:>7}  {p.source if p else entry.detail}"
        )
    listed_left = sum(projections[e.run].run_seconds(e) for e in entries if e.run in projections)
    whole = sum(projections[e.run].full_seconds(e) for e in everything if e.run in projections)
    left = sum(projections[e.run].run_seconds(e) for e in everything if e.run in projections)
    no_data = sum(e.status == "no-data" for e in everything)
    done = sum(e.status == "done" for e in everything)
    print(f"\nlisted runs still to train: {ledger.format_duration(listed_left)}")
    print(
        f"whole paper on this device: {len(everything) - no_data} runs with data, {ledger.format_duration(whole)} "
        f"in all; {done} done, {ledger.format_duration(left)} still to train; {no_data} runs have no data here"
    )
    if lr_floor is None:
        print("Times assume every epoch of the paper's schedules; an LR floor (--lr-floor) can end runs sooner.")
    else:
        print(
            f"epochs*: where LR floor {lr_floor:g} stopped the run's own result (a floor check's or a floor-stopped "
            "run's); other runs are projected to the end of their schedule."
        )


def train_command(args, run: str, device, threads: int | None, deadline: float | None) -> list[str]:
    """``python -m stages.train`` for one paper-profile run, with the ledger's paths and numerics."""
    flags = {
        "run": run,
        "profile": ledger.PROFILE,
        "device": device.type,
        "params": args.params,
        "results": args.results,
        "checkpoints": args.checkpoints,
        "prepared": args.prepared / run_corpus(args, run),
    }
    cmd = [sys.executable, "-m", "stages.train", "--no-progress"]
    cmd += [arg for flag, value in flags.items() for arg in (f"--{flag}", str(value))]
    if threads:
        cmd += ["--threads", str(threads)]
    if deadline is not None:
        cmd += ["--deadline", f"{deadline:.0f}"]
    if args.precision != "fp32":
        cmd += ["--precision", args.precision]
    if args.lr_floor is not None:
        cmd += ["--lr-floor", repr(args.lr_floor)] + (["--check-floor"] if args.check_floor else [])
    return cmd


def run_corpus(args, run: str) -> str:
    return ledger.run_config(load_params(args.params), run, ledger.PROFILE).corpus


def run_ledger(args, entries, device, name: str, threads: int | None, deadline: float | None) -> int:
    for entry in entries:
        if entry.status in ("done", "busy", "no-data"):
            print(f"[ledger] {entry.run}: {entry.detail}", flush=True)
    queue = [e for e in entries if e.status in ("resumable", "stale", "todo")]
    projections = (
        ledger.project(queue, args.results, args.prepared, device, name, args.precision) if deadline is not None else {}
    )
    active: dict[str, tuple[subprocess.Popen, object]] = {}
    outcome: dict[str, str] = {}

    def stop_children(signum, _frame):
        for proc, _ in active.values():
            proc.send_signal(signal.SIGTERM)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop_children)
    while queue or active:
        while queue and len(active) < args.parallel:
            entry = fresh_standing(args, queue.pop(0))  # another ledger may have taken or finished it since
            if entry.status in ("done", "busy"):
                print(f"[ledger] {entry.run}: {entry.detail}", flush=True)
                continue
            if deadline is not None:
                projection, left = projections[entry.run], deadline - time.time()
                need = projection.run_seconds(entry) if args.finish_only else projection.epoch_seconds
                if need > left:
                    outcome[entry.run] = "not started"
                    what = "its remaining epochs take" if args.finish_only else "one epoch takes"
                    print(
                        f"[ledger] {entry.run}: not started: {what} about {ledger.format_duration(need)}, "
                        f"{ledger.format_duration(max(0.0, left))} of the budget left",
                        flush=True,
                    )
                    continue
            active[entry.run] = start_run(args, entry, device, name, threads, deadline)
        for run, (proc, log) in list(active.items()):
            if proc.poll() is None:
                continue
            log.close()
            del active[run]
            outcome[run] = report_exit(args, run, proc.returncode)
        time.sleep(0.5)
    failed = [r for r, o in outcome.items() if o == "failed"]
    summary = {o: sum(v == o for v in outcome.values()) for o in ("finished", "paused", "not started", "failed")}
    print("[ledger] " + ", ".join(f"{n} {o}" for o, n in summary.items()), flush=True)
    return 1 if failed else 0


def record_figure2(args, run: str) -> None:
    """Figure 2's numbers for one of its two models, computed now, while the weights exist (git
    keeps the JSON, not the weights): results/paper/figure2/<run>.json."""
    from pipeline.analysis.hidden_dynamics import FIGURE2_RUNS, model_record
    from pipeline.fsutil import atomic_write_json

    if run not in FIGURE2_RUNS:
        return
    cfg = ledger.run_config(load_params(args.params), run, ledger.PROFILE)
    path = args.results / ledger.PROFILE / "figure2" / f"{run}.json"
    try:
        record = model_record(run, ledger.result_dir(args.results, run) / "model", args.prepared / cfg.corpus)
    except Exception as exc:  # an add-on: the run itself has finished and its result stands
        print(
            f"[ledger] {run}: Figure 2 numbers could not be computed ({type(exc).__name__}: {exc}); "
            f"the run's result stands",
            flush=True,
        )
        return
    atomic_write_json(path, record)
    print(f"[ledger] {run}: Figure 2 numbers -> {path} (other/frequent ratio {record['ratio']})", flush=True)


def fresh_standing(args, entry: ledger.Entry) -> ledger.Entry:
    return ledger.standing(load_params(args.params), entry.run, args.results, args.checkpoints, args.prepared)


def start_run(args, entry: ledger.Entry, device, name: str, threads: int | None, deadline: float | None):
    out = ledger.result_dir(args.results, entry.run)
    out.mkdir(parents=True, exist_ok=True)
    if entry.status == "stale":  # the old result must not stand beside a new run's partial epochs.csv
        for stale in ("metrics.json", "epochs.csv", "train.log"):
            (out / stale).unlink(missing_ok=True)
    log = open(out / "train.log", "a", encoding="utf-8")
    log.write(f"== ledger {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on {name}: {entry.detail}\n")
    log.flush()
    cmd = train_command(args, entry.run, device, threads, deadline)
    print(f"[ledger] {entry.run}: started ({entry.detail}); log {out / 'train.log'}", flush=True)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log


def report_exit(args, run: str, code: int) -> str:
    log = ledger.result_dir(args.results, run) / "train.log"
    if code == 0:
        metrics = ledger.read_json(ledger.result_dir(args.results, run) / "metrics.json") or {}
        print(
            f"[ledger] {run}: finished: best valid {metrics.get('best_valid_ppl')}, test {metrics.get('test_ppl')}, "
            f"{metrics.get('epochs')} epochs",
            flush=True,
        )
        record_figure2(args, run)
        return "finished"
    if code == PAUSED_EXIT:
        print(
            f"[ledger] {run}: paused at its checkpoint before the budget ran out; the next ledger run resumes it",
            flush=True,
        )
        return "paused"
    print(f"[ledger] {run}: failed with exit code {code}; see {log}", flush=True)
    return "failed"


if __name__ == "__main__":
    run_stage(main)
