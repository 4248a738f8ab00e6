"""DVC stage ``run-specs``: resolve every run of params.yaml into one JSON file per run.

Writes results/run-specs/<run>.json: the run's settings exactly as ``stages.train`` resolves them
(``pipeline.config.run_config``: its entry, the presets it names, the active profile's budget) and
their ``params_hash``. Each train@<run> stage depends on its own file instead of listing those
params, so an edit re-runs exactly the runs whose settings it changes, as params did, while
dvc.lock, which DVC parses and rewrites around every stage, no longer copies every run's settings.
The whole params file is validated first, so a bad value anywhere stops the DAG here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import load_params, run_config, run_names, validate
from pipeline.fsutil import atomic_directory, atomic_write_json
from stages._common import run_stage


def run_spec(params: dict, name: str) -> dict:
    """The resolved settings of run ``name``: what its train stage computes from."""
    cfg = run_config(params, name)
    return {"run": name, "params_hash": cfg.params_hash, "config": cfg.to_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.run_specs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/run-specs"), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    validate(params)
    names = run_names(params)
    with atomic_directory(args.out) as tmp:  # replaces the folder whole: no stale run survives
        for name in names:
            atomic_write_json(tmp / f"{name}.json", run_spec(params, name))
    print(f"run-specs: {len(names)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    run_stage(main)
