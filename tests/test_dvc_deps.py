"""Every DVC stage declares, as dependencies, all the project code its command imports, so that a
code change re-runs exactly the stages it can affect."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def imported_project_files(module: str) -> set[str]:
    """Project source files loaded by importing ``module`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        "print(json.dumps([m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)]))"
    )
    out = subprocess.run([sys.executable, "-c", code, module], cwd=REPO, capture_output=True, text=True, check=True)
    files = set()
    for name in json.loads(out.stdout):
        path = Path(name)
        if path.is_absolute() and path.is_relative_to(REPO) and ".venv" not in path.parts:
            files.add(path.relative_to(REPO).as_posix())
    return files


def stage_module_and_deps(definition: dict) -> tuple[str, list[str]]:
    body = definition.get("do", definition)
    cmd = body["cmd"]
    assert cmd.startswith("python -m stages."), cmd
    return cmd.split()[2], [str(d).split("${")[0] for d in body["deps"]]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_the_code_it_imports(stage):
    module, deps = stage_module_and_deps(STAGES[stage])
    code_deps = [d for d in deps if d.startswith(("pipeline", "stages"))]
    missing = sorted(f for f in imported_project_files(module)
                     if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in code_deps))
    assert not missing, f"dvc.yaml stage {stage!r} imports {missing} but does not list them in deps"


def test_bytecode_caches_do_not_change_code_dependencies():
    """Without PYTHONDONTWRITEBYTECODE, importing pipeline/ writes __pycache__/ into the directories
    the stages depend on; DVC must ignore them, or every `dvc repro` would re-run every stage."""
    paths = ["pipeline/models/__pycache__/scrn.cpython-311.pyc", "stages/__pycache__/train.cpython-311.pyc"]
    out = subprocess.run([str(Path(sys.executable).with_name("dvc")), "check-ignore", *paths],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == paths, out.stdout + out.stderr
