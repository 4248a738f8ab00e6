"""DVC stage ``code``: fingerprint the code of every stage, one file per stage module.

For each ``python -m stages.<name>`` command of dvc.yaml, writes results/code/<name>.json: the
sha256 of every project file that module can load (``pipeline.fingerprint.stage_code``: its static
import closure and its packages' data files). Each stage depends on its own file instead of
listing code paths (dvc.lock, which DVC parses and rewrites around every stage, stays small); the
train@ stages through their run spec, which carries the digest of results/code/train.json. The
folder is replaced whole, so a fingerprint of a stage that no longer exists does not linger.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.cli import add_path, command_parser
from pipeline.errors import ParamsError
from pipeline.fingerprint import fingerprint, stage_code
from pipeline.fsutil import atomic_directory, atomic_write_json
from stages._common import run_stage

STAGE_COMMAND = re.compile(r"^python -m (stages\.\w+)\b")


def stage_modules(dvc_yaml: Path) -> list[str]:
    """The modules that the stages of ``dvc_yaml`` run, sorted (``foreach`` stages once)."""
    stages = (yaml.safe_load(Path(dvc_yaml).read_text()) or {}).get("stages") or {}
    modules = set()
    for name, body in stages.items():
        cmd = str(body.get("do", body).get("cmd", ""))
        match = STAGE_COMMAND.match(cmd)
        if not match:
            raise ParamsError(
                f"stage {name!r} of {dvc_yaml} runs {cmd!r}; every stage must run "
                f"`python -m stages.<module>` so that its code can be fingerprinted"
            )
        modules.add(match.group(1))
    return sorted(modules)


def code_file(out: Path, module: str) -> Path:
    """Where the fingerprint of ``module`` (stages.train -> results/code/train.json) goes."""
    return Path(out) / f"{module.removeprefix('stages.')}.json"


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("stages.fingerprint", __doc__)
    add_path(parser, "--dvc-yaml", "dvc.yaml", "pipeline file")
    add_path(parser, "--out", "results/code", "output folder")
    args = parser.parse_args(argv)

    root = args.dvc_yaml.parent
    modules = stage_modules(args.dvc_yaml)
    with atomic_directory(args.out) as tmp:
        for module in modules:
            files = fingerprint(stage_code(module, root), root)
            atomic_write_json(code_file(tmp, module), {"module": module, "files": files})
    print(f"code: {len(modules)} stage modules -> {args.out}")
    return 0


if __name__ == "__main__":
    run_stage(main)
