"""Figures of the report, drawn with matplotlib (Agg) into reports/figures/.

Learning curves: validation perplexity per epoch of every paper-profile run, one figure per table,
read from the per-epoch logs (results/paper/<run>/epochs.csv, what `dvc plots` shows).
Figure 2: the per-word change of the top hidden state (pipeline/analysis/hidden_dynamics.py).
Table 7: test perplexity against α per corpus, the paper's beside ours.
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib import ticker  # noqa: E402

from pipeline.report.results import Result, find_result  # noqa: E402


def _epochs(result: Result) -> tuple[list[int], list[float]]:
    log = result.path.with_name("epochs.csv")
    if not log.is_file():
        return [], []
    rows = list(csv.DictReader(open(log)))
    return [int(r["epoch"]) for r in rows], [float(r["valid_ppl"]) for r in rows]


def learning_curve(title: str, runs: list[str], results_root: Path, path: Path) -> bool:
    """Plot valid PPL per epoch of those ``runs`` that finished at the paper profile (a smoke run's
    two epochs are no learning curve); False (nothing drawn) if none did."""
    curves = []
    for run in runs:
        result = find_result(results_root, run, ("paper",))
        if result.status == "ok":
            epochs, ppl = _epochs(result)
            if epochs:
                curves.append((run, epochs, ppl))
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for i, (label, epochs, ppl) in enumerate(curves):  # a new line style after each 10 colours
        ax.plot(
            epochs, ppl, marker="o", markersize=3, linewidth=1.2, linestyle=("-", "--", ":")[i // 10 % 3], label=label
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True


def report_figure_groups(paper: dict) -> dict[str, tuple[str, list[str]]]:
    """File stem -> (title, runs) for the learning-curve figures, one per results table."""
    t4 = [
        (key, cell["run"]) for row in paper["table4"]["rows"] for key, cell in row["cells"].items() if cell.get("run")
    ]
    return {
        "learning-curves-table2": ("Table 2: baseline SCRN on PTB", [r["run"] for r in paper["table2"]["rows"]]),
        "learning-curves-table4-ptb": ("Table 4: PTB", [run for key, run in t4 if key.startswith("ptb-")]),
        "learning-curves-table4-wt2": ("Table 4: WikiText-2", [run for key, run in t4 if key.startswith("wt2-")]),
        "learning-curves-table5": (
            "Table 5: ablations on PTB",
            [c["run"] for row in paper["table5"]["rows"] for c in row["cells"].values()],
        ),
        "learning-curves-sobolev": (
            "Section 7: Sobolev penalty on PTB (with the runs without it)",
            [run for row in paper["sobolev"]["rows"] for run in [row["without"], *row["runs"]]],
        ),
        "learning-curves-table7": (
            "Table 7: α sweep, PTB and WikiText-2",
            [row["cells"][corpus]["run"] for corpus in ("ptb", "wikitext-2") for row in paper["table7"]["rows"]],
        ),
    }


def draw_learning_curves(paper: dict, results_root: Path, out_dir: Path) -> list[tuple[str, str]]:
    """Write every learning-curve figure into ``out_dir``; returns (title, file name) of those drawn."""
    drawn = []
    for stem, (title, runs) in report_figure_groups(paper).items():
        name = f"{stem}.png"
        if learning_curve(title, list(dict.fromkeys(runs)), results_root, Path(out_dir) / name):
            drawn.append((title, name))
    return drawn


def hidden_change_figure(panels: list[tuple[str, list[tuple[list[str], list[float]]]]], path: Path) -> None:
    """Figure 2 of paper-profile models: one column per model, one row per sentence, a bar per
    word (its L1 change)."""
    n_rows, n_cols = len(panels[0][1]), len(panels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(7 * n_cols, 2.6 * n_rows), squeeze=False)
    for col, (title, sentences) in enumerate(panels):
        for row, (words, deltas) in enumerate(sentences):
            ax = axes[row][col]
            ax.bar(range(len(words)), deltas, color="tab:blue" if col == 0 else "tab:orange")
            ax.set_xticks(range(len(words)), words, rotation=60, ha="right", fontsize=8)
            ax.set_ylabel(r"$\|h_t - h_{t-1}\|_1$")
            if row == 0:
                ax.set_title(title)
    fig.suptitle(
        "L1 norm of the change of the top layer's hidden state at each word (PTB test; paper-profile models)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def table7_figure(series: dict[str, dict], ttr: dict[str, tuple[float | None, str]], path: Path) -> None:
    """Table 7 as a figure: test PPL against α per corpus, the paper's (left) and ours (right).

    One colour per corpus, the same in both panels; the legend gives each corpus's type/token
    ratio (``ttr``: TTR and its source; a dagger marks the paper's Table 6 header as the source).
    A corpus with no results of ours has no line on the right and says so in the legend.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    handles = []
    for i, (corpus, s) in enumerate(series.items()):
        colour = plt.get_cmap("tab10")(i)
        value, source = ttr.get(corpus, (None, ""))
        label = s["label"] + (
            " (TTR —)" if value is None else f" (TTR {value:.3f}{'†' if source.startswith('paper') else ''})"
        )
        handles.append(left.plot(s["alpha"], s["paper"], marker="o", color=colour, label=label)[0])
        points = [(a, v) for a, v in zip(s["alpha"], s["ours"]) if v is not None]
        if points:
            right.plot(*zip(*points), marker="o", color=colour)
        else:
            why = "data missing" if s.get("statuses") == {"data_missing"} else "not reproduced yet"
            handles[-1].set_label(f"{label}: {why}")
    left.set_title("paper (Table 7)")
    right.set_title("ours (paper profile)")
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("α (context-state decay, eq. 1)")
        ax.set_ylabel("test perplexity (log scale)")
        ax.set_xticks(sorted({a for s in series.values() for a in s["alpha"]}))
        ax.grid(True, which="both", alpha=0.3)
        plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 400, not 4 x 10^2
        ax.yaxis.set_major_formatter(plain)
        low, high = ax.get_ylim()
        ax.yaxis.set_minor_formatter(plain if high / low < 20 else ticker.NullFormatter())
    if not right.lines:  # an empty panel on the paper's axes, not matplotlib's default 0-1 box
        right.set_xlim(left.get_xlim())
        right.set_ylim(left.get_ylim())
        right.text(0.5, 0.5, "no paper-profile results yet", ha="center", va="center", transform=right.transAxes)
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
        title="corpus (type/token ratio = vocabulary / training tokens; † vocabulary / number of tokens, "
        "from the paper's Table 6 header)",
        title_fontsize=8,
    )
    fig.suptitle("Medium SCRN + ND + WT: test perplexity against α", fontsize=11)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
