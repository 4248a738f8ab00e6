"""The text of one cell of the report's tables.

Every cell says what it is: a full-schedule number (profile ``paper``) with a footnote on its
numerics, "unvalidated (...)" for a paper-profile result whose change of numerics has no passing
paired check (pipeline/report/numerics.py), "smoke run only" where only the quick profile ran
(its numbers go to the report's appendix, never to an "ours" column), "data missing", or
"not run". A test PPL more than FAR_FROM_PAPER from the paper's is flagged beside its difference.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.models import parameter_count
from pipeline.report.results import Result, seed_group, seed_results

SMOKE_CELL = "smoke run only"
FAR_FROM_PAPER = 1.5  # test PPL: a difference beyond this is flagged beside the cell


def fmt_number(x: float | int) -> str:
    """Paper numbers keep the precision they were printed with; ours get one decimal."""
    return str(x) if isinstance(x, int) else f"{x:.1f}"


def fmt_pair(pair: dict) -> str:
    return f"{fmt_number(pair['valid'])} / {fmt_number(pair['test'])}"


def footnote_refs(keys) -> str:
    """Markdown footnote references (their texts: paper.yaml's ``footnotes``, defined by the report)."""
    return " ".join(f"[^{k}]" for k in keys)


# ---------------------------------------------------------------------------- one result


def status_cell(result: Result) -> str | None:
    """The cell of a result that has no number to show (None: it has one)."""
    if result.status == "not_run":
        return "not run"
    if result.status == "data_missing":
        return "data missing"
    if result.status == "diverged":
        epoch = (result.metrics or {}).get("diverged_epoch")
        return f"diverged (NaN, epoch {epoch})" if epoch else "diverged (NaN)"
    if result.smoke_only:
        return SMOKE_CELL
    if result.verdict is not None and not result.verdict.accepted:
        return result.verdict.unvalidated_text()
    return None


def numerics_mark(result: Result) -> str:
    """The footnote reference that states a paper-profile number's numerics."""
    return f" [^{result.verdict.footnote()[0]}]" if result.verdict is not None else ""


def result_cell(result: Result) -> str:
    """ "valid / test" of a result that may fill its cell, else what stands in its place."""
    text = status_cell(result)
    if text is not None:
        return text
    m = result.metrics
    cell = f"{m['best_valid_ppl']:.1f} / {m['test_ppl']:.1f}"
    return cell + (reduced_label(result) if result.reduced else numerics_mark(result))


def reduced_label(result: Result) -> str:
    """Where a reduced run came from and, where its budget is known, how much of it ran:
    " (legacy-torch, 2 of 100 epochs)"."""
    m = result.metrics
    if m.get("paper_epochs") and m.get("epochs") is not None:
        return f" ({result.profile}, {m['epochs']} of {m['paper_epochs']} epochs)"
    return f" ({result.profile})"


def test_ppl_cell(result: Result) -> str:
    """The test PPL of a result that may fill its cell (like result_cell, test only)."""
    label = reduced_label(result) if result.reduced else numerics_mark(result)
    return status_cell(result) or f"{result.metrics['test_ppl']:.1f}{label}"


# ---------------------------------------------------------------------------- ours against the paper


def beyond_tolerance(difference: float) -> bool:
    """More than FAR_FROM_PAPER from the paper (a float's last bit does not make 1.5 more than 1.5)."""
    return abs(difference) > FAR_FROM_PAPER + 1e-9


def far_from_paper(result: Result, reference: dict) -> bool:
    return beyond_tolerance(result.metrics["test_ppl"] - reference["test"])


def difference_cell(result: Result, reference: dict) -> str:
    """Ours minus the paper for the splits ``reference`` gives (valid and test, or test alone),
    flagged where the test PPL lies more than FAR_FROM_PAPER from the paper's."""
    if status_cell(result) is not None:
        return "—"
    if result.reduced:
        return f"n/a ({result.profile})"
    ours = {"valid": result.metrics["best_valid_ppl"], "test": result.metrics["test_ppl"]}
    text = " / ".join(f"{ours[k] - reference[k]:+.1f}" for k in ("valid", "test") if k in reference)
    return text + (f" (test beyond ±{FAR_FROM_PAPER:g})" if far_from_paper(result, reference) else "")


# ---------------------------------------------------------------------------- a run's configuration


def parameters_cell(cfg: RunConfig | None, vocab: dict[str, int], budget: float | None) -> str:
    if cfg is None:
        return "—"
    if cfg.corpus not in vocab:
        return "—"  # no vocabulary yet: the corpus is missing or not prepared
    n = parameter_count(cfg.model, vocab[cfg.corpus])
    text = f"{n / 1e6:.2f}M"
    # The paper's budget bounds its own SCRN models; the cited LSTMs are sized by their authors.
    if budget is not None and cfg.model.arch != "lstm" and n > budget:
        text += f" > {budget / 1e6:g}M {footnote_refs(['over-budget'])}"
    return text


def configuration_notes(cfg: RunConfig | None) -> list[str]:
    """Footnote keys that follow from a run's configuration: how LSTM runs differ from their sources."""
    if cfg is None or cfg.model.arch != "lstm":
        return []
    return ["single-stream"] + (["kim-plateau"] if cfg.training.plateau_threshold else [])


# ---------------------------------------------------------------------------- seeds


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def noise_cell(run: str, cfgs: dict[str, RunConfig], results_root: Path, profile: str) -> str:
    """The sample standard deviation of the test PPL over the seeds of ``run`` finished at ``profile``."""
    group = seed_group(run, cfgs)
    if len(group) < 2:
        return "— (no seed repeats configured)"
    results = seed_results(group, results_root, (profile,))
    if len(results) < 2:
        return f"— ({len(results)} of {len(group)} seeds finished)"
    std = mean_std([r.metrics["test_ppl"] for r in results])[1]
    return f"{std:.1f} (n = {len(results)})"
