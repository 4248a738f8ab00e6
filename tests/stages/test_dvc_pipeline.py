"""The whole DAG through DVC itself, in a scratch clone: `dvc exp run -S ...` as a user runs it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.scratch import commit_all, copy_project, sh, sh_may_fail, trim_runs

# one epoch of two 20 x 35 windows, and one window of valid and of test: the DAG, not the numbers
TINY = [
    "-S",
    "profiles.quick.max_epochs=1",
    "-S",
    "profiles.quick.max_train_tokens=1440",
    "-S",
    "profiles.quick.max_eval_tokens=720",
]
RUNS = ("ptb-baseline-40-10", "ptb-baseline-90-10", "ptb-baseline-100-40", "ptb-baseline-300-40")
# besides Table 2 (and tests/scratch.py's anchor runs): a WikiText-2 run, a run whose training
# file is missing (Botha), a Sobolev run and a seed run; one of each kind, not all 106
OTHER_RUNS = ("wt2-small-scrn-nd-wt", "fr-medium-scrn-nd-wt", "ptb-small-scrn-sob1pct", "ptb-baseline-40-10-seed2")


@pytest.fixture()
def scratch_clone(tmp_path) -> Path:
    """The committed project plus the working-tree versions of its files, as a fresh git repo,
    with a sample of the runs (tests/scratch.py: trim_runs)."""
    clone = copy_project(tmp_path / "clone")
    trim_runs(clone, RUNS + OTHER_RUNS)
    commit_all(clone)
    return clone


def table2_ours(report: str) -> list[str]:
    section = report.split("## Table 2")[1].split("## Table 3")[0]
    rows = [
        line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and line[2:4].strip().isdigit()
    ]
    return [f"{r[-2].strip()} | {r[-1].strip()}" for r in rows]


@pytest.mark.dvc
def test_dvc_exp_run_quick_profile_end_to_end(scratch_clone, mirror):
    env = {k: v for k, v in os.environ.items() if k != "SCRN_DATA_MIRROR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # stages run with this python
    env["SCRN_OFFLINE"] = "1"

    # 1. no data: even with data.on_missing=skip, PTB and WikiText-2 are never skipped, so the DAG
    #    stops at their download with a clear error instead of reporting "data missing" for them
    failed = sh_may_fail(
        ["dvc", "exp", "run", "-S", "profile=quick", "-S", "data.on_missing=skip", *TINY], scratch_clone, env
    )
    assert failed.returncode != 0
    assert "is not optional (data.optional): it is never skipped" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr

    # 2. with the mirror: every Table 2 run trains, as a smoke run (quick) that no table shows. The mirror
    #    lacks the Botha train files, so on_missing=skip: they are named in the download output and
    #    shown as "data missing" downstream, while PTB and WikiText-2 are prepared in full. The mirror
    #    is also given as data.mirror: DVC tracks params, not environment variables, so only a param
    #    change makes it re-run the downloads that step 1 marked missing.
    env["SCRN_DATA_MIRROR"] = str(mirror)
    proc = sh(
        [
            "dvc",
            "exp",
            "run",
            "-S",
            "profile=quick",
            "-S",
            "data.on_missing=skip",
            "-S",
            f"data.mirror={mirror}",
            *TINY,
        ],
        scratch_clone,
        env,
    )
    for lang in ("fr", "es", "de", "cs", "ru"):
        assert f"lacks botha-blunsom/{lang}/train.txt" in proc.stdout
    assert json.loads((scratch_clone / "data" / "stats" / "wikitext-2.json").read_text())["vocab_size"] == 33278
    botha_fr = json.loads((scratch_clone / "data" / "stats" / "botha-fr.json").read_text())
    assert botha_fr["status"] == "data_missing" and botha_fr["splits"]["valid"]["tokens"] == 81986
    report = (scratch_clone / "reports" / "tables.md").read_text()
    corpus_rows = [
        line
        for line in report.split("## Corpus statistics")[1].split("## Tokeniser")[0].splitlines()
        if line.startswith("| botha-")
    ]
    assert len(corpus_rows) == 5 and all("| data missing" in row for row in corpus_rows)
    assert "**sacremoses-tuned**" in report.split("## Tokeniser round-trip agreement")[1]
    # with the default on_missing=error the download stage fails with that same message
    failed = sh_may_fail(["dvc", "exp", "run", "-S", "data.on_missing=error", "download@botha-fr"], scratch_clone, env)
    assert failed.returncode != 0
    message = next(line for line in proc.stdout.splitlines() if "lacks botha-blunsom/fr/train.txt" in line)
    assert f"error: {message}" in failed.stdout + failed.stderr
    sh(["dvc", "exp", "run", "-S", "data.on_missing=skip", "download@botha-fr"], scratch_clone, env)
    # a quick result never fills a main table's cell: only a committed paper-profile result does
    ours = table2_ours(report)
    table2 = ["ptb-baseline-40-10", "ptb-baseline-90-10", "ptb-baseline-100-40", "ptb-baseline-300-40"]
    for run, cell in zip(table2, ours, strict=True):
        paper = scratch_clone / "results" / "paper" / run / "metrics.json"
        if paper.exists():
            m = json.loads(paper.read_text())
            assert cell.startswith(f"{m['best_valid_ppl']:.1f} / {m['test_ppl']:.1f} "), (run, cell)
        else:
            assert cell == "smoke run only | —", (run, cell)
    assert "smoke run only | —" in ours
    appendix = report.split("## Appendix: smoke-run numbers")[1]
    assert all(f"| {run} " in appendix for run in RUNS)  # their numbers are in the appendix
    stats = json.loads((scratch_clone / "data" / "stats" / "ptb.json").read_text())
    assert stats["vocab_size"] == 10000
    for run in RUNS:
        metrics = json.loads((scratch_clone / "results" / "quick" / run / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["epochs"] == 1 and metrics["profile"] == "quick"
    shown = sh(["dvc", "metrics", "show", "--json"], scratch_clone, env).stdout
    assert "best_valid_ppl" in shown and "type_token_ratio" in shown
    # the figures: Figure 2 and the learning curves come from paper-profile runs only; Figure 2 is
    #    drawn once both its models have committed records (the weights stay out of git)
    from stages.figure2 import MODELS, record_path

    figure2 = json.loads((scratch_clone / "reports" / "figures" / "figure2" / "summary.json").read_text())
    drawn = all(record_path(scratch_clone / "results", run).is_file() for _, run in MODELS)
    assert figure2["status"] == ("ok" if drawn else "awaiting paper-profile models")
    assert (scratch_clone / "reports" / "figures" / "figure2" / "figure2.png").exists() == drawn
    assert ("Figure 2 is awaiting paper-profile models" in report) != drawn
    if drawn:
        assert [m["run"] for m in figure2["models"]] == [run for _, run in MODELS]
    curves = scratch_clone / "reports" / "figures" / "learning-curves" / "learning-curves-table2.png"
    paper_table2 = [run for run in table2 if (scratch_clone / "results" / "paper" / run / "metrics.json").exists()]
    assert curves.exists() == bool(paper_table2), paper_table2
    # checkpoints live outside DVC's outputs and go once a run has written its results: the
    #    finished DAG leaves none behind (they were 7 GB of it)
    assert not list((scratch_clone / "checkpoints").glob("*/*.pt"))

    # 3. the paper profile writes beside the quick results, never over them, and the report
    #    prefers it where it exists (one run only, capped to stay fast, hence its "(paper)" label)
    quick_metrics = (scratch_clone / "results" / "quick" / RUNS[0] / "metrics.json").read_text()
    paper_tiny = [arg.replace("profiles.quick.", "profiles.paper.") for arg in TINY]
    sh(
        ["dvc", "exp", "run", "--single-item", "-S", "profile=paper", *paper_tiny, f"train@{RUNS[0]}", "report"],
        scratch_clone,
        env,
    )
    assert (scratch_clone / "results" / "quick" / RUNS[0] / "metrics.json").read_text() == quick_metrics
    paper_metrics = json.loads((scratch_clone / "results" / "paper" / RUNS[0] / "metrics.json").read_text())
    assert paper_metrics["profile"] == "paper" and paper_metrics["reduced"] is True
    ours = table2_ours((scratch_clone / "reports" / "tables.md").read_text())
    assert ours[0].endswith("(paper) | n/a (paper)"), ours
    for run, cell in zip(table2[1:], ours[1:], strict=True):  # the others as before: smoke, or their paper result
        paper = (scratch_clone / "results" / "paper" / run / "metrics.json").exists()
        assert (cell == "smoke run only | —") != paper, (run, cell)
    assert (scratch_clone / "reports" / "figures" / "learning-curves" / "learning-curves-table2.png").is_file()
