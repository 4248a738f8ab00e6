"""DVC stage ``run-specs``: resolve every run of params.yaml into one JSON file per run.

Writes results/run-specs/<run>.json: the run's settings exactly as ``stages.train`` resolves them
(``pipeline.config.run_config``: its entry, the presets it names, the active profile's budget) and
their ``params_hash``, and the digest of the code the run executes (results/code/train.json, from
the ``code`` stage). Each train@<run> stage depends on its own file instead of listing those params
and that code, so an edit re-runs exactly the runs whose settings it changes, as params did, and
a code change re-runs them all, while dvc.lock, which DVC parses and rewrites around every stage,
no longer copies every run's settings. The whole params file is validated first, so a bad value
anywhere stops the DAG here.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cli import add_params, add_path, command_parser
from pipeline.config import load_params, run_config, run_names, validate
from pipeline.errors import ParamsError
from pipeline.fingerprint import digest
from pipeline.fsutil import atomic_directory, atomic_write_json
from stages._common import run_stage


def run_spec(params: dict, name: str, code: str) -> dict:
    """The resolved settings of run ``name`` and the digest of the ``code`` it runs: what its
    train stage computes from."""
    cfg = run_config(params, name)
    return {"run": name, "params_hash": cfg.params_hash, "code": code, "config": cfg.to_dict()}


def train_code_digest(path: Path) -> str:
    """The digest of the train stage's code fingerprint that the ``code`` stage wrote."""
    try:
        return digest(json.loads(Path(path).read_text())["files"])
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist: run `python -m stages.fingerprint` (the `code` stage) first"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ParamsError(f"{path} is not a code fingerprint ({exc}): re-run `python -m stages.fingerprint`") from None


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.run_specs", __doc__)
    add_params(parser)
    add_path(parser, "--code", "results/code/train.json", "the train stage's code fingerprint")
    add_path(parser, "--out", "results/run-specs", "output folder")
    args = parser.parse_args(argv)

    params = load_params(args.params)
    validate(params)
    names = run_names(params)
    code = train_code_digest(args.code)
    with atomic_directory(args.out) as tmp:  # replaces the folder whole: no stale run survives
        for name in names:
            atomic_write_json(tmp / f"{name}.json", run_spec(params, name, code))
    print(f"run-specs: {len(names)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    run_stage(main)
