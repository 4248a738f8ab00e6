"""DVC stage ``train-code``: hash the code that every train@ stage runs into one file.

Reads its own stage's dependencies from dvc.yaml, so the fingerprint covers exactly the paths
DVC tracks for it, and writes their sha256 per file to the stage's output
(results/train-code.json). Each train@<run> stage depends on that file instead of on the 11
code paths: a code change alters it and re-runs every run, as before, while dvc.lock, which DVC
parses and rewrites around every stage, shrinks by a third.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from pipeline.errors import ParamsError
from pipeline.fingerprint import fingerprint
from pipeline.fsutil import atomic_write_json
from stages._common import run_stage


def stage_paths(dvc_yaml: Path, stage: str) -> tuple[list[str], Path]:
    """The dependencies and the single output that ``dvc_yaml`` declares for ``stage``."""
    stages = yaml.safe_load(Path(dvc_yaml).read_text())["stages"]
    if stage not in stages:
        raise ParamsError(f"{dvc_yaml} has no stage {stage!r} (it has {', '.join(sorted(stages))})")
    body = stages[stage]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
    if len(outs) != 1 or any("${" in str(p) for p in [*body.get("deps", []), *outs]):
        raise ParamsError(f"stage {stage!r} of {dvc_yaml} must list plain paths as deps and exactly one output")
    return [str(d) for d in body["deps"]], Path(outs[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.fingerprint", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", nargs="?", default="train-code", help="stage of dvc.yaml (default: %(default)s)")
    parser.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"), help="pipeline file (default: %(default)s)")
    args = parser.parse_args(argv)

    deps, out = stage_paths(args.dvc_yaml, args.stage)
    files = fingerprint(deps, args.dvc_yaml.parent)
    atomic_write_json(args.dvc_yaml.parent / out, {"stage": args.stage, "files": files})
    print(f"{args.stage}: {len(files)} files from {len(deps)} paths -> {out}")
    return 0


if __name__ == "__main__":
    run_stage(main)
