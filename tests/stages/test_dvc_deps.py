"""Every DVC stage depends on the fingerprint of all the project code its command can import (stage
``code``, results/code/<module>.json), so that a code change re-runs exactly the stages it can
affect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ParamsError
from pipeline.fingerprint import code_digest, fingerprint, stage_code
from stages import fingerprint as fingerprint_stage
from stages.fingerprint import code_file

REPO = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def stage_module_and_deps(definition: dict) -> tuple[str, list[str]]:
    body = definition.get("do", definition)
    cmd = body["cmd"]
    assert cmd.startswith("python -m stages."), cmd
    return cmd.split()[2], [str(d) for d in body["deps"]]


@pytest.mark.parametrize("stage", sorted(set(STAGES) - {"code"}))
def test_stage_depends_on_the_fingerprint_of_its_code_and_lists_no_code(stage):
    module, deps = stage_module_and_deps(STAGES[stage])
    if stage == "train":  # through its run spec, which carries the digest of results/code/train.json
        assert "results/run-specs/${key}.json" in deps
        assert "results/code/train.json" in STAGES["run-specs"]["deps"]
    else:
        assert code_file(Path("results/code"), module).as_posix() in deps
    assert not [d for d in deps if d.startswith(("pipeline", "stages"))], "code is covered by the fingerprint"


def test_the_code_stage_depends_on_all_the_code_and_fingerprints_every_stage():
    assert STAGES["code"]["deps"] == ["pipeline", "stages"]
    modules = fingerprint_stage.stage_modules(REPO / "dvc.yaml")
    assert modules == sorted({stage_module_and_deps(body)[0] for body in STAGES.values()})
    for module in modules:  # an import from elsewhere would not re-run the code stage when it changes
        outside = [f for f in stage_code(module, REPO) if not f.startswith(("pipeline/", "stages/"))]
        assert not outside, f"{module} loads {outside}: add their folder to the deps of stage `code`"


def test_stage_code_is_the_import_closure_with_package_data():
    train = stage_code("stages.train", REPO)
    # imported inside functions, only once the data is known to be there
    assert {"pipeline/models/scrn.py", "pipeline/train/loop.py", "pipeline/data/batching.py"} <= set(train)
    assert not [f for f in train if f.startswith(("pipeline/report", "pipeline/data/download"))]
    report = stage_code("stages.report", REPO)
    assert {"pipeline/report/templates/tables.md.j2", "pipeline/report/paper.yaml"} <= set(report)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_import_closure_follows_every_kind_of_import(tmp_path):
    write_tree(
        tmp_path,
        {
            "stages/__init__.py": "",
            "stages/run.py": "import os\nfrom lib import util\n"
            "def main():\n    try:\n        import lib.lazy\n"
            "    except ImportError:\n        import lib.fallback\n"
            "    finally:\n        import lib.cleanup\n"
            "    match os.name:\n        case 'nt':\n            import lib.case\n",
            "lib/__init__.py": "",
            "lib/util.py": "from lib.names import VALUE\nfrom . import rel\nimport numpy\n",
            "lib/names.py": "VALUE = 1\n",
            "lib/rel.py": "",
            "lib/lazy.py": "",
            "lib/unused.py": "",
            "lib/fallback.py": "",
            "lib/cleanup.py": "",
            "lib/case.py": "",
            "lib/templates/page.j2": "{{ x }}",
            "lib/sub/__init__.py": "",
            "lib/sub/data.yaml": "a: 1\n",
        },
    )
    assert stage_code("stages.run", tmp_path) == [
        "lib/__init__.py",
        "lib/case.py",
        "lib/cleanup.py",
        "lib/fallback.py",
        "lib/lazy.py",
        "lib/names.py",
        "lib/rel.py",
        "lib/templates/page.j2",
        "lib/util.py",
        "stages/__init__.py",
        "stages/run.py",
    ]  # not lib/unused.py, nor lib/sub's data: never imported


def test_bytecode_caches_do_not_change_code_dependencies():
    """Without PYTHONDONTWRITEBYTECODE, importing pipeline/ writes __pycache__/ into the directories
    the stages depend on; DVC must ignore them, or every `dvc repro` would re-run every stage."""
    paths = ["pipeline/models/__pycache__/scrn.cpython-311.pyc", "stages/__pycache__/train.cpython-311.pyc"]
    out = subprocess.run(
        [str(Path(sys.executable).with_name("dvc")), "check-ignore", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.split() == paths, out.stdout + out.stderr


def test_fingerprint_changes_exactly_with_the_sources(tmp_path):
    write_tree(tmp_path, {"top.py": "x = 1\n", "pkg/a.py": "a = 1\n", "pkg/sub/b.py": "b = 1\n", "other/c.py": "c\n"})
    before = fingerprint(["top.py", "pkg"], tmp_path)
    assert sorted(before) == ["pkg/a.py", "pkg/sub/b.py", "top.py"]
    assert before["top.py"] == code_digest(tmp_path / "top.py")

    write_tree(
        tmp_path,
        {
            "pkg/__pycache__/a.cpython-311.pyc": "bytecode",
            "pkg/sub/b.pyc": "bytecode",
            "other/c.py": "changed outside the paths\n",
        },
    )
    assert fingerprint(["top.py", "pkg"], tmp_path) == before

    write_tree(tmp_path, {"pkg/sub/b.py": "b = 2\n"})
    after = fingerprint(["top.py", "pkg"], tmp_path)
    assert [k for k in before if before[k] != after[k]] == ["pkg/sub/b.py"]
    write_tree(tmp_path, {"pkg/new.py": ""})
    assert set(fingerprint(["top.py", "pkg"], tmp_path)) - set(after) == {"pkg/new.py"}


def test_code_stage_writes_one_fingerprint_per_stage_module_that_changes_with_its_code(tmp_path):
    write_tree(
        tmp_path,
        {
            "stages/__init__.py": "",
            "stages/a.py": "import common\nimport only_a\n",
            "stages/b.py": "import common\n",
            "common.py": "",
            "only_a.py": "",
        },
    )
    stages = {
        "a": {"foreach": ["x", "y"], "do": {"cmd": "python -m stages.a --item ${item}", "deps": []}},
        "b": {"cmd": "python -m stages.b", "deps": []},
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    out = tmp_path / "results/code"

    def written() -> dict[str, dict]:
        assert fingerprint_stage.main(["--dvc-yaml", str(tmp_path / "dvc.yaml"), "--out", str(out)]) == 0
        return {p.name: json.loads(p.read_text()) for p in sorted(out.iterdir())}

    before = written()
    assert before == {
        "a.json": {"module": "stages.a", "files": fingerprint(stage_code("stages.a", tmp_path), tmp_path)},
        "b.json": {"module": "stages.b", "files": fingerprint(stage_code("stages.b", tmp_path), tmp_path)},
    }
    assert sorted(before["a.json"]["files"]) == ["common.py", "only_a.py", "stages/__init__.py", "stages/a.py"]
    assert before["b.json"]["files"]["common.py"] == code_digest(tmp_path / "common.py")

    write_tree(tmp_path, {"only_a.py": "changed = True\n"})
    after = written()
    assert after["b.json"] == before["b.json"] and after["a.json"] != before["a.json"]

    del stages["b"]  # a stage removed: its fingerprint goes too
    stages["c"] = {"cmd": "bash run.sh", "deps": []}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    with pytest.raises(ParamsError, match="stage 'c' .* runs 'bash run.sh'"):
        written()
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.json"]  # the last good folder stays
    del stages["c"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    assert list(written()) == ["a.json"]


SOURCE = '''"""Module doc."""
import math


class Model:
    """Class doc."""

    def forward(self, x):
        """Method doc."""
        return math.exp(x)  # a comment
'''


def test_comments_and_docstrings_change_no_code_digest_but_code_and_data_files_do(tmp_path):
    write_tree(tmp_path, {"m.py": SOURCE, "t.yaml": "a: 1\n"})
    before = code_digest(tmp_path / "m.py"), code_digest(tmp_path / "t.yaml")
    reworded = (
        SOURCE.replace("Module doc.", "Reworded, at length.")
        .replace("# a comment", "# why, not what")
        .replace('"""Method doc."""', "# a docstring became a comment")
    )
    write_tree(tmp_path, {"m.py": "# a header comment\n" + reworded + "\n\n"})
    assert code_digest(tmp_path / "m.py") == before[0]
    for changed in (
        reworded.replace("math.exp(x)", "math.exp(-x)"),
        reworded.replace("forward", "step"),
        reworded.replace("return math.exp(x)", "'a string statement, not a docstring'\n        return 1"),
    ):
        write_tree(tmp_path, {"m.py": changed})
        assert code_digest(tmp_path / "m.py") != before[0], changed
    write_tree(tmp_path, {"t.yaml": "a: 1  # a YAML comment is data\n"})
    assert code_digest(tmp_path / "t.yaml") != before[1]


def test_a_comment_or_docstring_edit_of_the_training_loop_leaves_the_train_stage_fingerprint_alone(tmp_path):
    """The train@ stages depend on results/code/train.json (through their run specs): an edit of
    comments or docstrings in pipeline/train/loop.py or schedule.py must leave that file, and so
    every train@ stage, unchanged; a code edit must change it."""
    import shutil

    for part in ("pipeline", "stages"):
        shutil.copytree(REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    out = tmp_path / "results/code"

    def train_fingerprint() -> dict:
        assert fingerprint_stage.main(["--dvc-yaml", str(tmp_path / "dvc.yaml"), "--out", str(out)]) == 0
        return json.loads((out / "train.json").read_text())

    before = train_fingerprint()
    loop, schedule = tmp_path / "pipeline/train/loop.py", tmp_path / "pipeline/train/schedule.py"
    loop_text, schedule_text = loop.read_text(), schedule.read_text()
    edits = {
        loop: loop_text.replace('"""One training run:', '"""A reworded docstring. One training run:', 1),
        schedule: schedule_text.replace("# decay unless", "# a reworded comment: decay unless", 1),
    }
    for path, edited in edits.items():
        assert edited != path.read_text()
        path.write_text(edited)
    assert train_fingerprint() == before
    loop.write_text(loop_text)
    schedule.write_text(schedule_text.replace("current * t.lr_decay", "current * t.lr_decay * 1.0", 1))
    assert train_fingerprint() != before


def test_training_code_does_not_depend_on_download_urls_or_pins():
    """An edit of a URL or checksum in the corpus registry re-runs downloads, never training."""
    from pipeline.data.catalogue import CORPUS_SOURCES
    from pipeline.data.corpora import CORPORA

    assert "pipeline/data/corpora.py" not in stage_code("stages.train", REPO)
    assert "pipeline/data/corpora.py" in stage_code("stages.download", REPO)
    assert {name: corpus.sources for name, corpus in CORPORA.items()} == CORPUS_SOURCES


def test_imports_under_type_checking_are_not_code_that_runs(tmp_path):
    write_tree(
        tmp_path,
        {
            "stages/__init__.py": "",
            "stages/a.py": "import b\n",
            "b.py": (
                "from typing import TYPE_CHECKING\nimport typing\n"
                "if TYPE_CHECKING:\n    import c\nelse:\n    import d\n"
                "if typing.TYPE_CHECKING:\n    import e\n"
            ),
            "c.py": "",
            "d.py": "",
            "e.py": "",
        },
    )
    assert stage_code("stages.a", tmp_path) == ["b.py", "d.py", "stages/__init__.py", "stages/a.py"]
