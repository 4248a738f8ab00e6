"""The README and docs/: short enough to read at first contact, self-contained, free of history."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# a commit hash: 7 to 40 hex digits with at least one digit and one letter (not a word, not a number)
COMMIT = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
MAIN_JOB = "bash scripts/setup.sh && . .venv/bin/activate && SCRN_DATA_MIRROR=../shared/data dvc repro"


def test_the_readme_reads_in_five_minutes_and_keeps_its_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert MAIN_JOB in text and "bash scripts/setup.sh && .venv/bin/python -m pytest" in text
    for section in (
        "## The two commands",
        "## What you get, how long it takes, how much disk",
        "## Reading the report",
        "## Profiles, and how to add a run",
        "## Reproduction ledger",
        "## When something goes wrong",
        "## Layout",
        "## Where to go next",
    ):
        assert section in text


def test_user_docs_hold_no_commit_hashes_and_cite_nothing_outside_the_repository():
    for path in USER_DOCS:
        text = path.read_text().replace(MAIN_JOB, "")  # the main job reads a local data copy, if there is one
        assert "../shared" not in text, path.name
        assert not COMMIT.findall(text), (path.name, COMMIT.findall(text))
