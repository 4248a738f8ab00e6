"""The report: paper numbers beside ours, smoke runs kept out of the tables, missing data, not-run cells."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline import config
from pipeline.report import tables
from pipeline.report.cells import noise_cell, result_cell
from pipeline.report.render import render_report
from pipeline.report.results import LEGACY_DIR, find_result, load_paper
from tests.report.metrics_files import write_metrics

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def saved_figures(monkeypatch) -> dict:
    """Every matplotlib figure the code under test saves, by path: so that a test can check what a
    figure plots (its lines' data, its axes), not only that a PNG was written."""
    from matplotlib.figure import Figure

    saved = {}
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        saved[Path(fname)] = self
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def render(results: Path, profile: str = "quick") -> str:
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    return render_report(results, profile, cfgs, results / "no-stats")


def table2_rows(report: str) -> dict[str, list[str]]:
    section = report.split("## Table 2")[1].split("## Table 3")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:4].strip().isdigit()]
    return {"/".join(c.strip() for c in r.split("|")[1:3]): [c.strip() for c in r.split("|")[1:-1]] for r in rows}


def test_every_registered_table_has_a_block_in_the_template():
    template = (REPO / "pipeline/report/templates/tables.md.j2").read_text()
    assert list(tables.TABLES)[:3] == ["table1", "table2", "table3"]  # registered in the paper's order
    assert [name for name in tables.TABLES if "{{ " + name + " }}" not in template] == []


def test_find_result_prefers_a_finished_run_then_the_first_profiles_marker(tmp_path):
    write_metrics(tmp_path, "paper", "r", status="data_missing", reason="paper: no data")
    write_metrics(tmp_path, "quick", "r", best_valid_ppl=900.0, test_ppl=870.0)
    found = find_result(tmp_path, "r")
    assert (found.status, found.profile, result_cell(found)) == ("ok", "quick", "smoke run only")
    write_metrics(tmp_path, "quick", "r", status="data_missing", reason="quick: no data")
    found = find_result(tmp_path, "r")
    assert (found.status, found.profile, found.metrics["reason"]) == ("data_missing", "paper", "paper: no data")


def test_quick_paper_missing_and_not_run_cells(tmp_path):
    write_metrics(tmp_path, "quick", "ptb-baseline-40-10", best_valid_ppl=801.23, test_ppl=799.0)
    write_metrics(tmp_path, "quick", "ptb-baseline-90-10", best_valid_ppl=700.0, test_ppl=690.0)
    write_metrics(tmp_path, "paper", "ptb-baseline-90-10", best_valid_ppl=125.4, test_ppl=119.1)  # preferred
    (tmp_path / "quick" / "ptb-baseline-100-40").mkdir(parents=True)
    (tmp_path / "quick" / "ptb-baseline-100-40" / "metrics.json").write_text(
        json.dumps({"run": "ptb-baseline-100-40", "status": "data_missing", "profile": "quick"})
    )

    rows = table2_rows(render(tmp_path))
    assert rows["40/10"][-2:] == ["smoke run only", "—"]  # a smoke run's number is no result
    assert rows["90/10"][-2:] == ["125.4 / 119.1 [^fp32]", "+0.5 / +0.5"]  # paper impl.: 124.9 / 118.6
    assert rows["100/40"][-2:] == ["data missing", "—"]
    assert rows["300/40"][-2:] == ["not run", "—"]
    assert rows["40/10"][2:5] == ["133 / 127", "133.6 / 127.5", "134.5 / 128.0"]  # paper numbers from paper.yaml
    assert rows["100/40"][2] == "120 / 115 [^mikolov-100-40]"  # the repeated (300, 40) values, footnoted
    assert all(r[5] == "not run" for r in rows.values())  # legacy container column


def test_legacy_container_results_fill_their_column(tmp_path):
    write_metrics(
        tmp_path,
        LEGACY_DIR,
        "ptb-baseline-40-10",
        profile="legacy-torch",
        reduced=False,
        best_valid_ppl=133.0,
        test_ppl=127.2,
    )
    assert table2_rows(render(tmp_path))["40/10"][5] == "133.0 / 127.2"


def test_table1_reads_our_settings_from_params(tmp_path):
    report = render(tmp_path)
    section = report.split("## Table 1")[1].split("## Table 2")[0]
    init_row = next(line for line in section.splitlines() if line.startswith("| weights initialized over"))
    assert "[-0.3, 0.3] ([-0.2, 0.2])" in init_row.split("|")[4] and init_row.split("|")[5].strip() == "yes"
    assert "capped at" in next(line for line in section.splitlines() if line.startswith("| epochs"))


def test_every_number_is_traced_to_its_metrics_file(tmp_path):
    write_metrics(
        tmp_path,
        "paper",
        "ptb-baseline-40-10",
        best_valid_ppl=134.2,
        test_ppl=128.3,
        provenance={"git_rev": "0123456789abcdef", "git_dirty": True, "device_name": "NVIDIA H200"},
    )
    write_metrics(tmp_path, "quick", "ptb-baseline-90-10", best_valid_ppl=801.2, test_ppl=799.0, params_hash="q9")
    sources = render(tmp_path).split("## Where each number comes from")[1]
    row = next(line for line in sources.splitlines() if line.startswith("| ptb-baseline-40-10"))
    assert [c.strip() for c in row.split("|")[2:-1]] == [
        "paper",
        "fp32",
        "abc123",
        "0123456789 (dirty)",
        "NVIDIA H200",
        "2",
        "1",
    ]
    assert "ptb-baseline-90-10" not in sources  # a smoke run is listed in the appendix, not here


def table_rows(report: str, title: str) -> list[list[str]]:
    section = report.split(title)[1].split("\n## ")[0]
    lines = [
        line
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| model") and "---" not in line
    ]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in lines]


def test_table4_test_difference_budget_and_configuration_notes(tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "ptb.json").write_text(json.dumps({"corpus": "ptb", "status": "ok", "vocab_size": 10000}))
    (stats / "wikitext-2.json").write_text(json.dumps({"corpus": "wikitext-2", "status": "ok", "vocab_size": 33278}))
    write_metrics(tmp_path, "paper", "ptb-small-scrn-nd", best_valid_ppl=99.0, test_ppl=95.0)
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    report = render_report(tmp_path, "quick", cfgs, stats)
    rows = {(r[0], r[1]): r for r in table_rows(report, "## Table 4")}
    nd = rows[("SCRN + ND", "PTB small")]
    assert nd[4:7] == ["95.8", "99.0 / 95.0 [^fp32]", "-0.8"]  # paper test 95.8
    assert nd[3] == "5.49M > 5M [^over-budget]"  # untied small SCRN exceeds 5M
    assert rows[("SCRN + ND + WT", "PTB small")][3] == "3.09M"
    # the budget is the paper's bound on its SCRN models, not on the cited LSTMs
    assert rows[("SCRN + ND", "WikiText-2 small")][3] == "17.62M > 5M [^over-budget]"
    assert rows[("LSTM + ND (Kim et al., 2016)", "WikiText-2 small")][3] == "13.99M"
    assert rows[("LSTM + ND (Jozefowicz et al., 2015)", "PTB medium")][-1] == "published number only"
    # how each LSTM run differs from its source, as footnotes: configuration, evaluation layout, schedule
    assert rows[("LSTM + VD (Inan et al., 2017)", "PTB small")][-1] == "[^our-config] [^single-stream] [^kim-plateau]"
    assert rows[("LSTM + VD (Inan et al., 2017)", "PTB medium")][-1] == "[^our-config] [^single-stream]"
    assert rows[("LSTM + ND (Zaremba et al., 2014)", "PTB medium")][-1] == "[^zaremba-schedule] [^single-stream]"
    assert rows[("SCRN + ND", "PTB small")][-1] == ""  # an SCRN run follows the paper
    footnotes = report.split("\n[^over-budget]: ")[1].split("\n")[0]
    assert "paper's own layer sizes" in footnotes and "33,278" in footnotes


def test_table5_ablation_rows(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-small-scrn-noreg", best_valid_ppl=120.0, test_ppl=115.0)
    rows = {(r[0], r[1]): r for r in table_rows(render(tmp_path), "## Table 5")}
    assert rows[("– regularization", "small")][4:7] == [
        "123.3 / 117.6",
        "120.0 / 115.0 [^fp32]",
        "-3.3 / -2.6 (test beyond ±1.5)",
    ]
    assert rows[("– context in softmax", "medium")][5] == "not run"


def test_table5_gives_each_ablations_effect_against_the_full_model(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-small-scrn-nd-wt", best_valid_ppl=99.0, test_ppl=95.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-nd-wt-no-ctx-softmax", best_valid_ppl=97.0, test_ppl=92.5)
    write_metrics(tmp_path, "quick", "ptb-medium-scrn-nd-wt", best_valid_ppl=900.0, test_ppl=950.0)
    write_metrics(tmp_path, "quick", "ptb-medium-scrn-noreg", best_valid_ppl=990.0, test_ppl=999.0)
    rows = {(r[0], r[1]): r[-1] for r in table_rows(render(tmp_path), "## Table 5")}
    assert rows[("SCRN + ND + WT", "small")] == "—"  # the reference itself
    assert rows[("– context in softmax", "small")] == "+2.3 / -2.5"  # 96.4 - 94.1; 92.5 - 95.0
    assert rows[("– regularization", "small")] == "+23.5 / —"  # no run of ours
    assert rows[("– regularization", "medium")] == "+54.1 / —"  # smoke runs are no effect


def test_table3_marks_differences_from_the_paper(tmp_path):
    report = render(tmp_path)
    rows = {r[0]: r for r in table_rows(report, "## Table 3") if r[0] != "Hyperparameter"}
    # 0.9 lies outside the search range U[0.5, 0.89] the paper states: footnoted there and in Section 5
    assert rows["LR decay"][1:] == ["0.5", "0.65", "0.87", "0.9 [^lr-decay-range]"]
    assert "- learning rate decay ~ U[0.5, 0.89] [^lr-decay-range]" in report.split("## Section 5")[1]
    assert "outside U[0.5, 0.89]" in report.split("\n[^lr-decay-range]: ")[1]
    assert rows["α"][1] == "0.9"  # ours is the paper's: one value
    assert rows["epochs (not in the paper)"][1] == "— / 60"
    params = copy.deepcopy(config.load_params(REPO / "params.yaml"))
    params["runs"]["ptb-small-scrn-nd"]["training"]["lr_decay"] = 0.6
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    changed = tables.table3(tables.ReportInputs(load_paper(), tmp_path, cfgs)).frame.set_index("Hyperparameter")
    assert changed.loc["LR decay", "SCRN + ND small"] == "0.5 / 0.6 (0.5) ≠"  # PTB changed, WikiText-2 not


# ---------------------------------------------------------------------------- corpus statistics, round trip


def test_corpus_statistics_and_roundtrip_sections(tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    split = {"tokens": 1000, "types": 100, "oov": 0, "unk": 50, "unk_share": 0.05, "type_token_ratio": 0.1}
    (stats / "wikitext-2.json").write_text(
        json.dumps(
            {
                "corpus": "wikitext-2",
                "status": "ok",
                "eos_added": True,
                "vocab_size": 33278,
                "splits": {"train": {**split, "tokens": 2088628}, "valid": split, "test": split},
            }
        )
    )
    (stats / "botha-de.json").write_text(
        json.dumps(
            {
                "corpus": "botha-de",
                "status": "data_missing",
                "eos_added": False,
                "missing_splits": ["train"],
                "splits": {"valid": {**split, "oov": None, "unk_share": 0.1395}, "test": split},
            }
        )
    )
    (stats / "tokenizer-roundtrip.json").write_text(
        json.dumps(
            {
                "metric": "round-trip agreement: share of lines",
                "detokenizer": "D",
                "candidates": ["a", "b"],
                "chosen": "b",
                "languages": {
                    "ru": {"status": "data_missing"},
                    "de": {"status": "ok", "lines": 10, "agreement": {"a": 0.5, "b": 0.9}},
                },
            }
        )
    )
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    report = render_report(
        tmp_path / "results", "quick", cfgs, stats_dir=stats, corpora=["ptb", "wikitext-2", "botha-de"]
    )
    section = report.split("## Corpus statistics")[1].split("## Table 7")[0]
    header = next(line for line in section.splitlines() if line.startswith("| corpus"))
    assert [c.strip() for c in header.split("|")[2:5]] == ["paper: number of tokens", "paper: vocabulary", "paper: TTR"]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| corpus")
    }
    # what the paper gives of PTB and WikiText-2 (Sections 3, 5, 8), then ours
    assert rows["ptb"][1:5] == ["—", "10,000 (Section 3)", "< 0.03", "not run"]  # no "|" inside a cell
    assert rows["wikitext-2"][1:4] == ["about 2 × PTB", "about 3 × PTB", "< 0.03"]
    assert rows["wikitext-2"][4:7] == ["2,088,628 / 1,000 / 1,000", "33,278", "0.0159"]
    assert rows["botha-de"][1:4] == ["1M", "37K", "> 0.03"]  # the paper's Table 6 header rows, from paper.yaml
    assert rows["botha-de"][4:7] == ["data missing / 1,000 / 1,000", "data missing", "data missing"]
    assert rows["botha-de"][7:] == ["13.95% / 5.00%", "no"]
    roundtrip = report.split("## Tokeniser round-trip agreement")[1].split("## Figure 2")[0]
    assert "round-trip agreement" in roundtrip and "**b**" in roundtrip
    lines = [line for line in roundtrip.splitlines() if line.startswith("| de") or line.startswith("| ru")]
    assert lines[0].startswith("| de") and "50.00%" in lines[0] and "**90.00%**" in lines[0]  # Table 6 order
    assert lines[1].startswith("| ru") and "data missing" in lines[1]


def write_epochs(root: Path, source: str, run: str, valid: list[float]) -> None:
    lines = ["epoch,lr,train_ppl,valid_ppl,seconds"] + [f"{i},0.8,1.0,{v},1.0" for i, v in enumerate(valid, 1)]
    (root / source / run / "epochs.csv").write_text("\n".join(lines) + "\n")


def test_learning_curves_plot_each_paper_profile_runs_valid_ppl_per_epoch(tmp_path, saved_figures):
    from pipeline.report.figures import draw_learning_curves, learning_curve

    write_metrics(tmp_path, "paper", "ptb-baseline-40-10", best_valid_ppl=300.0, test_ppl=290.0)
    write_epochs(tmp_path, "paper", "ptb-baseline-40-10", [900.0, 500.0, 300.0])
    write_metrics(tmp_path, "paper", "ptb-baseline-100-40", best_valid_ppl=280.0, test_ppl=270.0)
    write_epochs(tmp_path, "paper", "ptb-baseline-100-40", [800.0, 280.0])
    write_metrics(tmp_path, "quick", "ptb-baseline-90-10", best_valid_ppl=9000.0, test_ppl=9100.0)
    write_epochs(tmp_path, "quick", "ptb-baseline-90-10", [9500.0, 9000.0])  # a smoke run: no curve
    out = tmp_path / "figures"
    out.mkdir()
    drawn = draw_learning_curves(load_paper(), tmp_path, out)
    assert drawn == [("Table 2: baseline SCRN on PTB", "learning-curves-table2.png")]
    assert (out / "learning-curves-table2.png").is_file()
    ax = saved_figures[out / "learning-curves-table2.png"].axes[0]
    curves = {line.get_label(): line.get_xydata().tolist() for line in ax.get_lines()}
    assert curves == {
        "ptb-baseline-40-10": [[1, 900.0], [2, 500.0], [3, 300.0]],
        "ptb-baseline-100-40": [[1, 800.0], [2, 280.0]],
    }
    assert (ax.get_xlabel(), ax.get_yscale(), ax.get_title()) == ("epoch", "log", "Table 2: baseline SCRN on PTB")
    assert not learning_curve("none", ["ptb-baseline-90-10"], tmp_path, out / "none.png")
    assert not (out / "none.png").exists()
    report = render_report(tmp_path, "quick", {}, tmp_path / "no-stats", figures=drawn)
    assert (
        "![Table 2: baseline SCRN on PTB: validation perplexity per epoch]"
        "(figures/learning-curves/learning-curves-table2.png)" in report
    )


def test_coverage_counts_cells_by_provenance(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-baseline-40-10", best_valid_ppl=134.0, test_ppl=128.0)
    write_metrics(tmp_path, "quick", "ptb-baseline-90-10", best_valid_ppl=700.0, test_ppl=690.0)
    (tmp_path / "quick" / "ptb-baseline-100-40").mkdir(parents=True)
    (tmp_path / "quick" / "ptb-baseline-100-40" / "metrics.json").write_text(json.dumps({"status": "data_missing"}))
    coverage = tables.coverage_table(tables.ReportInputs(load_paper(), tmp_path, {})).frame.set_index("table")
    assert coverage.columns.tolist() == ["cells", *tables.COVERAGE_COLUMNS]
    assert coverage.loc["Table 2"].to_dict() == {
        "cells": "4",
        "paper profile": "1",
        "awaiting a paired check": "0",
        "smoke run only": "1",
        "data missing": "1",
        "not run": "1",
        "published only": "0",
    }
    assert coverage.loc["Table 4", "published only"] == "1"  # Jozefowicz et al.: no run of ours


def test_table6_rows_for_missing_data_and_published_numbers(tmp_path):
    path = tmp_path / "quick" / "fr-medium-scrn-nd-wt" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run": "fr-medium-scrn-nd-wt", "status": "data_missing", "profile": "quick"}))
    rows = {(r[0], r[1]): r for r in table_rows(render(tmp_path), "## Table 6")}
    assert rows[("SCRN + ND + WT", "French")][4:7] == ["199", "data missing", "—"]
    assert rows[("LSTM + ND (Kim et al., 2016)", "Czech")][4:] == ["493", "—", "—", "published number only"]
    assert rows[("LSTM + VD + WT", "Russian")][5] == "not run"


def figure2_summary(profile: str) -> str:
    return json.dumps(
        {
            "status": "ok",
            "profile": profile,
            "models": [
                {
                    "model": "SCRN + ND + WT",
                    "run": "ptb-small-scrn-nd-wt",
                    "tokens": 2900,
                    "top_types": 100,
                    "top_mean": 2.0,
                    "rest_mean": 3.0,
                    "top_tokens": 1500,
                    "rest_tokens": 1400,
                    "ratio": 1.5,
                }
            ],
        }
    )


def figure2_section(report: str) -> str:
    return report.split("## Figure 2")[1].split("\n## ")[0]


def test_figure2_awaits_paper_profile_models_and_never_shows_a_smoke_runs(tmp_path):
    report = render_report(tmp_path, "quick", {}, tmp_path / "no-stats", figure2_dir=tmp_path / "none")
    assert "Figure 2 is awaiting paper-profile models" in figure2_section(report)
    stage = tmp_path / "figure2"  # the stage's output from quick models (an older stage wrote these)
    stage.mkdir()
    (stage / "summary.json").write_text(figure2_summary("quick"))
    (stage / "figure2.png").write_bytes(b"png")
    section = figure2_section(render_report(tmp_path, "quick", {}, tmp_path / "no-stats", figure2_dir=stage))
    assert "Figure 2 is awaiting paper-profile models" in section
    assert "figure2.png" not in section and "2,900" not in section


def test_figure2_from_the_stage_run_on_paper_profile_models(tmp_path):
    stage = tmp_path / "reports" / "figures" / "figure2"
    stage.mkdir(parents=True)
    (stage / "summary.json").write_text(figure2_summary("paper"))
    (stage / "figure2.png").write_bytes(b"png")
    report = render_report(
        tmp_path / "results", "quick", {}, tmp_path / "no-stats", figure2_dir=stage, report_dir=tmp_path / "reports"
    )
    assert "](figures/figure2/figure2.png)" in figure2_section(report)
    row = next(line for line in report.splitlines() if line.startswith("| SCRN + ND + WT") and "2,900" in line)
    assert [c.strip() for c in row.split("|")[3:-1]] == ["fp32", "2,900", "2", "3", "1.500"]  # predates "trained"

    bf16 = json.loads(figure2_summary("paper"))
    bf16["models"][0]["trained"] = {"precision": "bf16", "test_ppl": 95.9, "git_rev": "abc", "device_name": "cpu"}
    (stage / "summary.json").write_text(json.dumps(bf16))
    report = render_report(
        tmp_path / "results", "quick", {}, tmp_path / "no-stats", figure2_dir=stage, report_dir=tmp_path / "reports"
    )
    row = next(line for line in report.splitlines() if line.startswith("| SCRN + ND + WT") and "2,900" in line)
    assert [c.strip() for c in row.split("|")[3:5]] == ["bf16", "2,900"]


def test_figure2_numbers_the_ledger_committed_under_results_paper(tmp_path):
    """The ledger computes Figure 2 while the paper-profile weights exist (they stay out of git):
    its results/paper/figure2/ wins over the stage's output, and its figure is linked from the report."""
    results = tmp_path / "results"
    committed = results / "paper" / "figure2"
    committed.mkdir(parents=True)
    (committed / "summary.json").write_text(figure2_summary("paper").replace("2900", "82430"))
    (committed / "figure2.png").write_bytes(b"png")
    report = render_report(
        results,
        "quick",
        {},
        tmp_path / "no-stats",
        figure2_dir=tmp_path / "reports" / "none",
        report_dir=tmp_path / "reports",
    )
    section = figure2_section(report)
    assert "](../results/paper/figure2/figure2.png)" in section and "82,430" in section
    assert "awaiting" not in section


# ---------------------------------------------------------------------------- Table 7, Section 7, seeds


def render_with(results: Path, stats: Path | None = None, grid: Path | None = None) -> str:
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    return render_report(results, "quick", cfgs, stats or results / "no-stats", sobolev_grid=grid)


def test_table7_picks_the_run_of_each_alpha_and_corpus(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-medium-scrn-nd-wt-alpha097", best_valid_ppl=90.0, test_ppl=87.0)
    write_metrics(tmp_path, "paper", "ptb-medium-scrn-nd-wt", best_valid_ppl=89.0, test_ppl=86.5)
    write_metrics(tmp_path, "quick", "wt2-medium-scrn-nd-wt-alpha099", best_valid_ppl=900.0, test_ppl=950.0)
    missing = tmp_path / "quick" / "fr-medium-scrn-nd-wt-alpha085" / "metrics.json"
    missing.parent.mkdir(parents=True)
    missing.write_text(
        json.dumps({"run": "fr-medium-scrn-nd-wt-alpha085", "status": "data_missing", "profile": "quick"})
    )
    rows = table_rows(render_with(tmp_path), "## Table 7")
    rows = [r for r in rows if r[0][:1].isdigit()]  # the long table, not the best-α summary
    assert len(rows) == 42
    # the paper's order: α by row, then its columns PTB, WikiText-2, FR, ES, DE, CS, RU
    assert [r[1] for r in rows[:7]] == ["PTB", "WikiText-2", "French", "Spanish", "German", "Czech", "Russian"]
    assert [r[0] for r in rows[::7]] == ["0.85", "0.88", "0.90", "0.95", "0.97", "0.99"]
    cells = {(r[0], r[1]): r for r in rows}
    assert cells[("0.97", "PTB")][2:][:1] == ["ptb-medium-scrn-nd-wt-alpha097"]
    assert cells[("0.97", "PTB")][4:7] == ["86.0", "90.0 / 87.0 [^fp32]", "+1.0"]
    assert cells[("0.90", "PTB")][2] == "ptb-medium-scrn-nd-wt"
    assert cells[("0.90", "PTB")][4:7] == ["86.1", "89.0 / 86.5 [^fp32]", "+0.4"]
    assert "the Table 4 run" in cells[("0.90", "PTB")][-1] and "the Table 6 run" in cells[("0.90", "Czech")][-1]
    assert cells[("0.99", "WikiText-2")][4:7] == ["100.0", "smoke run only", "—"]
    assert cells[("0.85", "French")][5:7] == ["data missing", "—"]
    assert cells[("0.85", "Russian")][5] == "not run"


def test_table7_best_alpha_and_type_token_ratio_sources(tmp_path, saved_figures):
    from pipeline.report.corpora import type_token_ratios

    stats = tmp_path / "stats"
    stats.mkdir()
    (stats / "ptb.json").write_text(
        json.dumps({"corpus": "ptb", "status": "ok", "vocab_size": 10000, "splits": {"train": {"tokens": 929589}}})
    )
    for alpha, ppl in zip(("085", "088", "095", "097", "099"), (88.5, 87.9, 87.0, 86.2, 93.0)):
        write_metrics(tmp_path, "paper", f"ptb-medium-scrn-nd-wt-alpha{alpha}", best_valid_ppl=ppl + 3, test_ppl=ppl)
    write_metrics(tmp_path, "paper", "ptb-medium-scrn-nd-wt", best_valid_ppl=89.0, test_ppl=86.2)  # a tie with 0.97
    write_metrics(tmp_path, "quick", "wt2-medium-scrn-nd-wt-alpha085", best_valid_ppl=9e5, test_ppl=9e5)  # no result
    ttr = type_token_ratios(load_paper(), stats, ["ptb", "wikitext-2", "botha-fr", "botha-ru"])
    assert ttr["ptb"][0] == pytest.approx(10000 / 929589) and ttr["ptb"][1].startswith("ours")
    assert ttr["botha-fr"][0] == pytest.approx(0.025) and "paper's Table 6" in ttr["botha-fr"][1]
    assert ttr["botha-ru"][0] == pytest.approx(0.062)
    best = tables.table7_best_alpha(tables.ReportInputs(load_paper(), tmp_path, {}, stats)).frame.set_index("corpus")
    assert best.loc["PTB", "paper: best α"] == "0.97" and best.loc["PTB", "ours: best α"] == "0.90, 0.97"
    assert best.loc["Spanish", "paper: best α"] == "0.90, 0.95"  # 179 twice in the paper
    assert best.loc["WikiText-2", "ours: best α"] == "— (smoke runs only)" and best.loc["PTB", "TTR"] == "0.0108"
    assert best.loc["French", "ours: best α"] == "— (not run)"
    # the figure: the paper's curves (left) and ours (right), with the TTR in the legend
    series = tables.table7_series(load_paper(), tmp_path)
    assert series["ptb"]["ours"] == [88.5, 87.9, 86.2, 87.0, 86.2, 93.0] and series["wikitext-2"]["ours"] == [None] * 6
    from pipeline.report.figures import table7_figure

    table7_figure(series, ttr, tmp_path / "table7.png")
    assert (tmp_path / "table7.png").is_file()
    fig = saved_figures[tmp_path / "table7.png"]
    paper_ax, ours_ax = fig.axes[:2]
    paper_lines = [line.get_xydata().tolist() for line in paper_ax.get_lines()]
    assert len(paper_lines) == 7  # every corpus of the paper's Table 7
    assert paper_lines[0] == [
        [a, p] for a, p in zip((0.85, 0.88, 0.90, 0.95, 0.97, 0.99), (88.0, 87.5, 86.1, 87.2, 86.0, 92.4))
    ]
    assert [line.get_xydata().tolist() for line in ours_ax.get_lines()] == [  # PTB alone has results of ours
        [[0.85, 88.5], [0.88, 87.9], [0.90, 86.2], [0.95, 87.0], [0.97, 86.2], [0.99, 93.0]]
    ]
    assert ours_ax.get_xlabel().startswith("α") and ours_ax.get_yscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "PTB (TTR 0.011)" and legend[2] == "French (TTR 0.025†): not reproduced yet"


def sobolev_rows(report: str) -> dict[tuple[str, str], list[str]]:
    rows = table_rows(report, "## Section 7")
    return {(r[0], r[1]): r for r in rows if r[0].startswith("SCRN")}


def test_sobolev_gain_is_test_ppl_without_minus_with(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-small-scrn-noreg", best_valid_ppl=123.0, test_ppl=118.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-noreg-seed2", best_valid_ppl=122.0, test_ppl=116.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-sob1pct", best_valid_ppl=118.0, test_ppl=112.5)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-sob10pct", best_valid_ppl=125.0, test_ppl=119.0)
    write_metrics(tmp_path, "quick", "ptb-small-scrn-nd-wt", best_valid_ppl=900.0, test_ppl=950.0)
    write_metrics(tmp_path, "quick", "ptb-small-scrn-nd-wt-sob3pct", best_valid_ppl=880.0, test_ppl=940.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-vd-wt-sob1pct", best_valid_ppl=99.0, test_ppl=96.0)
    write_metrics(tmp_path, "quick", "ptb-small-scrn-vd-wt", best_valid_ppl=900.0, test_ppl=950.0)
    grid = tmp_path / "sobolev-grid.json"
    grid.write_text(
        json.dumps(
            {
                "status": "ok",
                "grid": [0.0013, 0.0041, 0.013],
                "configured": [
                    {
                        "beta": 0.0013,
                        "ptb-small-scrn-noreg": 0.0100,
                        "ptb-small-scrn-nd-wt": 0.0095,
                        "ptb-small-scrn-vd-wt": 0.0091,
                    }
                ],
                "measured": [
                    {
                        "run": "ptb-small-scrn-noreg",
                        "windows": 10,
                        "loss": 417.2,
                        "penalty_beta1": 3218.7,
                        "ratio": 7.715,
                    }
                ],
            }
        )
    )
    report = render_with(tmp_path, grid=grid)
    rows = sobolev_rows(report)
    assert len(rows) == 9
    alone = rows[("SCRN + Sobolev (alone)", "0.0013")]
    assert alone[2:] == [
        "1.0%",
        "ptb-small-scrn-sob1pct",
        "118.0 [^fp32]",
        "112.5 [^fp32]",
        "+5.5",
        "1.4 (n = 2)",  # the sample std of 118.0 and 116.0: seeds 1 and 2 of the run without
        "up to 7",
    ]
    assert rows[("SCRN + Sobolev (alone)", "0.013")][6] == "-1.0"  # the penalty hurt: a negative gain
    assert rows[("SCRN + Sobolev (alone)", "0.0041")][5:7] == ["not run", "—"]
    # like with like: two smoke runs give no gain here (the appendix has it), nor a paper run against a smoke run
    assert rows[("SCRN + ND + WT + Sobolev", "0.0041")][4:7] == ["smoke run only", "smoke run only", "—"]
    assert rows[("SCRN + ND + WT + Sobolev", "0.0041")][2] == "— (run the sobolev-grid stage)"  # β not in the grid file
    assert rows[("SCRN + VD + WT + Sobolev", "0.0013")][4:7] == ["smoke run only", "96.0 [^fp32]", "—"]
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    assert noise_cell("ptb-small-scrn-nd", cfgs, tmp_path, "paper") == "— (no seed repeats configured)"
    appendix = report.split("## Appendix")[1]
    row = next(line for line in appendix.splitlines() if line.startswith("| ptb-small-scrn-nd-wt-sob3pct "))
    assert "gain over ptb-small-scrn-nd-wt: +10.0" in row  # both smoke runs: like with like
    title = next(line for line in report.splitlines() if line.startswith("## Section 7"))
    assert title == "## Section 7: Sobolev-type regularisation (test perplexity)"  # no corpus, size or tying claimed
    grid_section = report.split("How the β grid")[1].split("\n## ")[0]
    grid_rows = [
        [c.strip() for c in line.split("|")[1:-1]] for line in grid_section.splitlines() if line.startswith("| ptb-")
    ]
    assert "β = 0.0013, 0.0041, 0.013" in report and grid_rows[-1][:5] == [
        "ptb-small-scrn-noreg",
        "10",
        "417.2",
        "3219",
        "7.715",
    ]


def test_seeds_table_mean_and_std_against_the_paper_and_as_sobolev_noise(tmp_path):
    for seed, (valid, test) in enumerate(((98.0, 94.0), (99.0, 95.0), (100.0, 96.0)), start=1):
        run = "ptb-small-scrn-nd-wt" + ("" if seed == 1 else f"-seed{seed}")
        write_metrics(tmp_path, "paper", run, best_valid_ppl=valid, test_ppl=test)
    write_metrics(tmp_path, "quick", "ptb-small-scrn-nd-wt-seed2", best_valid_ppl=1.0, test_ppl=1.0)  # not mixed in
    write_metrics(tmp_path, "quick", "ptb-baseline-40-10", best_valid_ppl=800.0, test_ppl=790.0)
    write_metrics(tmp_path, "quick", "ptb-baseline-40-10-seed3", best_valid_ppl=820.0, test_ppl=810.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-nd-wt-sob1pct", best_valid_ppl=97.0, test_ppl=94.5)
    report = render_with(tmp_path)
    rows = {r[0]: r for r in table_rows(report, "## Seeds")}
    nd = rows["SCRN + ND + WT small"]
    assert nd[1] == "ptb-small-scrn-nd-wt (and -seed2, -seed3)"
    assert nd[2:6] == ["3 of 3", "1: 94.0, 2: 95.0, 3: 96.0", "99.0 ± 1.0", "95.0 ± 1.0 [^fp32]"]
    assert nd[6:] == ["98.2 / 94.1", "Table 5", "+0.8 / +0.9"]  # paper's Table 5: 98.2 / 94.1
    base = rows["baseline SCRN (40, 10)"]  # smoke runs only: counted, never shown as ours
    assert base[2:6] == ["0 of 3 (2 of 3 as smoke runs)", "—", "smoke run only", "smoke run only"]
    assert base[6:] == ["134.5 / 128.0", "Table 2", "—"]
    assert rows["LSTM + ND small (Kim et al., 2016)"][2:7] == ["0 of 3", "—", "not run", "not run", "— / 97.6"]
    assert nd[2] == "3 of 3"  # quick's seed 2 is neither mixed in nor noted: it is no more than the paper's three
    # the same seeds, at the same profile, give the noise a Sobolev gain on top of ND + WT is read against
    sob = sobolev_rows(report)[("SCRN + ND + WT + Sobolev", "0.0013")]
    assert sob[6:8] == ["-0.5", "1.0 (n = 3)"]


def test_seeds_table_notes_a_profile_with_more_seeds_than_the_one_shown(tmp_path):
    write_metrics(tmp_path, "paper", "ptb-small-scrn-vd-wt", best_valid_ppl=90.0, test_ppl=87.0)
    for run in ("ptb-small-scrn-vd-wt", "ptb-small-scrn-vd-wt-seed2", "ptb-small-scrn-vd-wt-seed3"):
        write_metrics(tmp_path, "quick", run, best_valid_ppl=900.0, test_ppl=870.0)
    vd = {r[0]: r for r in table_rows(render_with(tmp_path), "## Seeds")}["SCRN + VD + WT small"]
    assert vd[2:6] == ["1 of 3 (3 of 3 as smoke runs)", "1: 87.0", "90.0", "87.0 [^fp32]"]  # the paper profile's number


def test_coverage_includes_the_new_tables_in_the_papers_order(tmp_path):
    params = config.load_params(REPO / "params.yaml")
    cfgs = {name: config.run_config(params, name) for name in config.run_names(params)}
    paper = load_paper()
    write_metrics(tmp_path, "quick", "ptb-medium-scrn-nd-wt-alpha085", best_valid_ppl=900.0, test_ppl=950.0)
    write_metrics(tmp_path, "paper", "ptb-small-scrn-sob3pct", best_valid_ppl=120.0, test_ppl=115.0)
    write_metrics(tmp_path, "quick", "ptb-small-lstm-nd-kim-seed3", best_valid_ppl=900.0, test_ppl=950.0)
    (tmp_path / "quick" / "ru-medium-scrn-nd-wt-alpha099").mkdir(parents=True)
    (tmp_path / "quick" / "ru-medium-scrn-nd-wt-alpha099" / "metrics.json").write_text(
        json.dumps({"status": "data_missing"})
    )
    coverage = tables.coverage_table(tables.ReportInputs(paper, tmp_path, cfgs)).frame
    assert coverage["table"].tolist() == [
        "Table 2",
        "Table 4",
        "Table 5",
        "Section 7 (Sobolev)",
        "Table 6",
        "Table 7",
        "Seeds (not in the paper)",
    ]
    coverage = coverage.set_index("table")
    assert coverage.loc["Table 7"].tolist() == ["42", "0", "0", "1", "1", "40", "0"]
    assert coverage.loc["Section 7 (Sobolev)"].tolist() == ["9", "1", "0", "0", "0", "8", "0"]
    assert coverage.loc["Seeds (not in the paper)"].tolist() == ["18", "0", "0", "1", "0", "17", "0"]
    assert "| Table 7 " in render_with(tmp_path).split("## Coverage")[1].split("## Table 1")[0]


def test_figure2_draws_a_bar_per_word_of_each_sentence_for_each_model(tmp_path, saved_figures):
    from pipeline.report.figures import hidden_change_figure

    sentences = [(["the", "government", "said"], [1.0, 7.5, 2.0]), (["a", "vote"], [0.5, 4.0])]
    hidden_change_figure(
        [("LSTM + ND", sentences), ("SCRN + ND + WT", [(w, [2 * d for d in v]) for w, v in sentences])],
        tmp_path / "figure2.png",
    )
    fig = saved_figures[tmp_path / "figure2.png"]
    axes = fig.axes  # row by row: sentence 1 (LSTM, SCRN), sentence 2 (LSTM, SCRN)
    assert [ax.get_title() for ax in axes[:2]] == ["LSTM + ND", "SCRN + ND + WT"]
    assert [[bar.get_height() for bar in ax.patches] for ax in axes] == [
        [1.0, 7.5, 2.0],
        [2.0, 15.0, 4.0],
        [0.5, 4.0],
        [1.0, 8.0],
    ]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["the", "government", "said"]
    assert "paper-profile models" in fig._suptitle.get_text()
