"""params.yaml as a file: `dvc exp run -S` must not rewrite it, and the runs that repeat another run
with one setting changed (Table 7's α, Section 7's β) must differ from it in that setting only.

`dvc exp run -S key=value` loads params.yaml with ruamel.yaml, writes every value back and dumps
the file again: YAML merges (`<<: *anchor`) come out expanded into copies, flow mappings longer
than 80 columns are re-wrapped, lists lose their style and the comments after them, and `null`
becomes an empty value. params.yaml is written as a fixed point of that rewrite, so that the
issue's commands (`dvc exp run -S profile=quick`, `-S profile=paper`) change the line they set
and nothing else."""

from __future__ import annotations

import copy
import difflib
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"


def _rewrite_as_dvc_exp_run(tmp_path: Path, *overrides: str) -> list[str]:
    """The lines of params.yaml after the rewrite `dvc exp run -S <overrides>` does to it."""
    from dvc.utils.hydra import apply_overrides  # what dvc exp run -S calls on params.yaml

    rewritten = tmp_path / "params.yaml"
    shutil.copy2(PARAMS, rewritten)
    apply_overrides(rewritten, list(overrides))
    return rewritten.read_text().splitlines()


def _changed(before: list[str], after: list[str]) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


def test_dvc_exp_run_set_param_leaves_params_yaml_unchanged(tmp_path):
    text = PARAMS.read_text()
    before, profile = text.splitlines(), yaml.safe_load(text)["profile"]
    changed = _changed(before, _rewrite_as_dvc_exp_run(tmp_path, f"profile={profile}"))
    assert not changed, (
        "`dvc exp run -S` would rewrite params.yaml (write it as ruamel.yaml dumps "
        "it: no anchors or merges, value lines within 80 columns, no `null`):\n" + "\n".join(changed[:40])
    )


def test_dvc_exp_run_set_param_changes_only_the_lines_it_sets(tmp_path):
    before = PARAMS.read_text().splitlines()
    after = _rewrite_as_dvc_exp_run(tmp_path, "profile=paper", "data.on_missing=error")
    assert sorted(_changed(before, after)) == [
        "+  on_missing: error",
        "+profile: paper",
        "-  on_missing: skip",
        "-profile: quick",
    ]


def test_params_yaml_has_no_anchors_or_aliases():
    """A merge or alias would be expanded into a copy by the first `dvc exp run -S`: later edits of
    the original would silently stop reaching the copies."""
    events = yaml.parse(PARAMS.read_text())
    shared = [
        f"line {e.start_mark.line + 1}" for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)
    ]
    assert not shared, f"params.yaml uses YAML anchors/aliases at {', '.join(shared)}"


def _paper_spec() -> dict:
    return yaml.safe_load((REPO / "pipeline/report/paper.yaml").read_text())


def _runs() -> dict:
    return yaml.safe_load(PARAMS.read_text())["runs"]


def _without(entry: dict, *path: str) -> dict:
    """``entry`` (a run) with the key at ``path`` removed."""
    out = copy.deepcopy(entry)
    node = out
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1], None)
    return out


def _table7_pairs() -> list[tuple[str, str, float]]:
    """(α run, the Table 4 / Table 6 run it varies, α) for every Table 7 cell off α = 0.90."""
    rows = _paper_spec()["table7"]["rows"]
    base = next(row for row in rows if row["alpha"] == 0.9)["cells"]
    return [
        (cell["run"], base[corpus]["run"], row["alpha"])
        for row in rows
        if row["alpha"] != 0.9
        for corpus, cell in row["cells"].items()
    ]


@pytest.mark.parametrize("run, base, alpha", _table7_pairs())
def test_table7_run_repeats_its_base_with_only_alpha_changed(run, base, alpha):
    runs = _runs()
    assert runs[run]["model"]["alpha"] == alpha
    assert _without(runs[run], "model", "alpha") == _without(runs[base], "model", "alpha")


def _sobolev_pairs() -> list[tuple[str, str]]:
    return [(run, row["without"]) for row in _paper_spec()["sobolev"]["rows"] for run in row["runs"]]


@pytest.mark.parametrize("run, base", _sobolev_pairs())
def test_sobolev_run_repeats_the_run_without_it_with_only_the_penalty_added(run, base):
    runs = _runs()
    assert "sobolev" not in runs[base]["model"] and runs[run]["model"]["sobolev"]["beta"] > 0
    assert _without(runs[run], "model", "sobolev") == runs[base]
