"""Every DVC stage declares, as dependencies, all the project code its command can import (directly
or through the fingerprint stage whose output it depends on), so that a code change re-runs exactly
the stages it can affect."""
from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ParamsError
from pipeline.fingerprint import fingerprint
from stages import fingerprint as fingerprint_stage

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The project source file of module ``name``, if it is one of ours."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_project_files(module: str) -> set[str]:
    """Project source files that running ``module`` can load: the closure of every import
    statement, read statically, so that imports inside functions count too (stages.train imports
    torch and the models only once it knows the data is there)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        files = [module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
        for path in filter(None, files):
            if path in seen:
                continue
            seen.add(path)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    todo += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    # `from package import module` imports a submodule; `from module import name` does not
                    todo += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names
                                             if module_file(f"{node.module}.{alias.name}")]
    return {path.relative_to(REPO).as_posix() for path in seen}


def stage_module_and_deps(definition: dict) -> tuple[str, list[str]]:
    body = definition.get("do", definition)
    cmd = body["cmd"]
    assert cmd.startswith("python -m stages."), cmd
    return cmd.split()[2], [str(d).split("${")[0] for d in body["deps"]]


def fingerprinted_code(deps: list[str]) -> list[str]:
    """The code paths hashed into those of ``deps`` that a fingerprint stage (stages.fingerprint)
    writes: depending on its output stands for depending on them."""
    paths = []
    for name, body in STAGES.items():
        if body.get("cmd", "").startswith("python -m stages.fingerprint"):
            code, out = fingerprint_stage.stage_paths(REPO / "dvc.yaml", name)
            paths += code if out.as_posix() in deps else []
    return paths


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_the_code_it_imports(stage):
    module, deps = stage_module_and_deps(STAGES[stage])
    code_deps = [d for d in deps + fingerprinted_code(deps) if d.startswith(("pipeline", "stages"))]
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


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_fingerprint_changes_exactly_with_the_sources(tmp_path):
    write_tree(tmp_path, {"top.py": "x = 1\n", "pkg/a.py": "a = 1\n", "pkg/sub/b.py": "b = 1\n", "other/c.py": "c\n"})
    before = fingerprint(["top.py", "pkg"], tmp_path)
    assert sorted(before) == ["pkg/a.py", "pkg/sub/b.py", "top.py"]
    assert before["top.py"] == hashlib.sha256(b"x = 1\n").hexdigest()

    write_tree(tmp_path, {"pkg/__pycache__/a.cpython-311.pyc": "bytecode", "pkg/sub/b.pyc": "bytecode",
                          "other/c.py": "changed outside the paths\n"})
    assert fingerprint(["top.py", "pkg"], tmp_path) == before

    write_tree(tmp_path, {"pkg/sub/b.py": "b = 2\n"})
    after = fingerprint(["top.py", "pkg"], tmp_path)
    assert [k for k in before if before[k] != after[k]] == ["pkg/sub/b.py"]
    write_tree(tmp_path, {"pkg/new.py": ""})
    assert set(fingerprint(["top.py", "pkg"], tmp_path)) - set(after) == {"pkg/new.py"}


def test_fingerprint_stage_hashes_the_deps_dvc_yaml_gives_it(tmp_path):
    write_tree(tmp_path, {"src/a.py": "a\n", "src/b.py": "b\n", "lone.py": "l\n"})
    stages = {"code": {"cmd": "python -m stages.fingerprint code", "deps": ["src", "lone.py"],
                       "outs": [{"out/code.json": {"cache": False}}]}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    assert fingerprint_stage.main(["code", "--dvc-yaml", str(tmp_path / "dvc.yaml")]) == 0
    written = json.loads((tmp_path / "out/code.json").read_text())
    assert written == {"stage": "code", "files": fingerprint(["src", "lone.py"], tmp_path)}
    assert sorted(written["files"]) == ["lone.py", "src/a.py", "src/b.py"]

    with pytest.raises(ParamsError, match="no stage 'nope'"):
        fingerprint_stage.main(["nope", "--dvc-yaml", str(tmp_path / "dvc.yaml")])
    (tmp_path / "lone.py").unlink()
    with pytest.raises(FileNotFoundError, match="lone.py: no such file"):
        fingerprint_stage.main(["code", "--dvc-yaml", str(tmp_path / "dvc.yaml")])
    assert written == json.loads((tmp_path / "out/code.json").read_text())  # the last good one stays
