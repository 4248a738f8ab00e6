"""CI never skips what it must run: the real-data tests, whatever CI variable the runner sets."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, require_mirror


@pytest.mark.parametrize("ci", ["true", "1", None])
def test_without_a_mirror_real_data_tests_fail_under_ci_and_skip_elsewhere(tmp_path, monkeypatch, ci):
    monkeypatch.setenv("SCRN_DATA_MIRROR", str(tmp_path / "no-mirror-here"))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception if ci is None else pytest.fail.Exception, match="SCRN_DATA_MIRROR"):
        require_mirror()


def test_the_ci_entry_point_sets_ci_true_before_it_runs_the_tests():
    """So that a runner that sets CI=1, or nothing, still runs the real-data tests as CI."""
    script = (REPO / ".ci" / "run").read_text()
    export = re.search(r"^export CI=true$", script, re.MULTILINE)
    run = re.search(r"^[^#\n]*-m pytest", script, re.MULTILINE)
    assert export and run and export.start() < run.start()
