"""The search loop: draw a round, execute it through a backend, record it, shrink, repeat.

The results file (``results/search/<name>.json``) is rewritten atomically after every round, so
an interrupted search resumes at its first unfinished round (draws are seeded per round, hence
identical), and the report can render whatever rounds exist.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from pipeline.config import run_config
from pipeline.errors import SearchError
from pipeline.search import core
from pipeline.search.backends import Backend
from pipeline.search.core import Outcome, Sample, SearchSettings


def plan(params: dict, settings: SearchSettings, sets: dict[str, str]) -> dict:
    """What defines the search besides its round count: checked against a results file before resuming."""
    cfg = run_config(core.with_overrides(params, sets), settings.base_run)
    regime = cfg.model.dropout.regime
    space = core.search_space(regime)
    for name in space:
        path = core.param_path(settings.base_run, name)
        if path in sets:
            raise SearchError(
                f"--set {path}: {name} is searched, and the override would replace every sample's "
                "draw (the results would record values never trained); remove it, or use "
                "--sample-set ROUND:INDEX:KEY=VALUE for one sample"
            )
    return {
        "base_run": settings.base_run,
        "stage": f"train@{settings.base_run}",
        "profile": cfg.profile,
        "metrics": f"results/{cfg.profile}/{cfg.name}/metrics.json",
        "regime": regime,
        "seed": settings.seed,
        "samples_per_round": settings.samples,
        "searched": list(space),  # the paper's order (the file's keys are sorted)
        "space": {
            name: {"range": [lo, hi], "path": core.param_path(settings.base_run, name)}
            for name, (lo, hi) in space.items()
        },
        "set": dict(sets),
    }


def make_samples(
    params: dict,
    settings: SearchSettings,
    the_plan: dict,
    round_no: int,
    ranges: dict[str, core.Range],
    sets: dict[str, str],
    forced: dict[tuple[int, int], dict[str, str]],
) -> tuple[list[Sample], list[dict[str, float]]]:
    draws = core.sample_round(ranges, settings.samples, settings.seed, round_no)
    samples = []
    for i, values in enumerate(draws, start=1):
        overrides = {core.param_path(settings.base_run, k): core.format_value(v) for k, v in values.items()}
        overrides.update(sets)
        overrides.update(forced.get((round_no, i), {}))
        name = f"{settings.name}-r{round_no}-{i}"
        try:  # every sample is a valid configuration before anything is queued
            run_config(core.with_overrides(params, overrides), settings.base_run)
        except Exception as exc:
            raise SearchError(f"sample {name}: {exc}") from exc
        samples.append(Sample(name=name, stage=the_plan["stage"], params=overrides, metrics=the_plan["metrics"]))
    return samples, draws


def _differences(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def run_search(
    params: dict,
    settings: SearchSettings,
    backend: Backend,
    results_file: Path,
    sets: dict[str, str] | None = None,
    forced: dict[tuple[int, int], dict[str, str]] | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the search; returns the results written to ``results_file``."""
    sets, forced = dict(sets or {}), dict(forced or {})
    the_plan = plan(params, settings, sets)
    original = {k: tuple(the_plan["space"][k]["range"]) for k in the_plan["searched"]}
    previous = None if restart else core.read_results(results_file)
    if previous is not None:
        diff = _differences(previous.get("plan", {}), the_plan)
        if diff:
            raise SearchError(
                f"{results_file} holds a search with different settings ({', '.join(diff)}); "
                "continue it with the same settings, or use --restart or another --name"
            )
    results = previous or {
        "format": core.RESULTS_FORMAT,
        "name": settings.name,
        "rule": {
            "best_fraction": core.BEST_FRACTION,
            "widen": core.WIDEN,
            "text": "next range = [min, max] of the best quarter (PPL ∞ never counts, nor a sample whose "
            "searched value was forced), widened on each side by "
            f"{core.WIDEN:.0%} of the original width, clipped to the original range",
        },
        "plan": the_plan,
        "rounds": [],
    }
    results["forced"] = {f"{r}:{i}": v for (r, i), v in sorted(forced.items())} or results.get("forced", {})
    results.update(backend=backend.name, jobs=settings.jobs, rounds_planned=settings.rounds)
    done = len(results["rounds"])
    ranges = dict(original)
    if done:  # in the paper's order, not the file's sorted one: the draws depend on it
        saved = core.ranges_from_json(results["rounds"][-1]["next_ranges"])
        ranges = {k: saved[k] for k in original}
    if done:
        log(f"search {settings.name}: {done} round(s) already in {results_file}; resuming")
    try:
        for round_no in range(done + 1, settings.rounds + 1):
            samples, draws = make_samples(params, settings, the_plan, round_no, ranges, sets, forced)
            log(
                f"search {settings.name}: round {round_no}/{settings.rounds}, {len(samples)} sample(s), ranges "
                + ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in ranges.items())
            )
            outcomes = backend.execute_round(samples)
            record = _round_record(round_no, ranges, samples, draws, outcomes, forced)
            ppls = [math.inf if _forces_a_draw(s, the_plan) else s["valid_ppl"] for s in record["samples"]]
            ranges = core.shrink(original, ranges, draws, ppls)
            record["next_ranges"] = core.ranges_to_json(ranges)
            results["rounds"].append(record)
            results["best"] = _overall_best(results["rounds"])
            core.write_results(results_file, results)
            best = record["best"]
            log(
                f"search {settings.name}: round {round_no} done: "
                + (f"best valid PPL {best['valid_ppl']:.2f} ({best['name']})" if best else "no sample finished")
                + f"; {sum(not math.isfinite(p) for p in ppls)} at ∞; wrote {results_file}"
            )
            if all(s["status"] == "failed" for s in record["samples"]):
                raise SearchError(
                    f"every sample of round {round_no} failed without diverging (first: "
                    f"{record['samples'][0]['message']}); a setup problem, not the hyperparameters"
                    + (f": see `dvc queue logs {record['samples'][0]['name']}`" if backend.name == "local" else "")
                )
    except BaseException:
        try:  # clean up, but never hide the error that got us here
            backend.close()
        except Exception as exc:
            log(f"search {settings.name}: while stopping the backend: {exc}")
        raise
    backend.close()
    return results


def _forces_a_draw(row: dict, the_plan: dict) -> bool:
    """A sample whose searched value was overridden (--sample-set) did not train its draw, so its
    PPL must not shape the next ranges."""
    searched = {the_plan["space"][k]["path"] for k in the_plan["searched"]}
    return bool(searched & set(row.get("forced", {})))


def _round_record(
    round_no: int,
    ranges: dict,
    samples: list[Sample],
    draws: list[dict[str, float]],
    outcomes: dict[str, Outcome],
    forced: dict,
) -> dict:
    rows = []
    for i, (s, values) in enumerate(zip(samples, draws), start=1):
        o = outcomes.get(s.name) or Outcome(math.inf, "failed", message="the backend returned no outcome")
        ppl = o.valid_ppl if math.isfinite(o.valid_ppl) else math.inf  # NaN is ∞ too
        row = {
            "name": s.name,
            "index": i,
            "params": values,
            "valid_ppl": ppl,
            "test_ppl": o.test_ppl,
            "status": o.status if math.isfinite(ppl) or o.status != "ok" else "diverged",
        }
        if o.message:
            row["message"] = o.message
        if (round_no, i) in forced:
            row["forced"] = forced[(round_no, i)]
        rows.append(row)
    quarter = core.best_quarter([r["valid_ppl"] for r in rows])
    best = rows[quarter[0]] if quarter else None
    return {
        "round": round_no,
        "ranges": core.ranges_to_json(ranges),
        "samples": rows,
        "best_quarter": [rows[i]["name"] for i in quarter],
        "best": None if best is None else {k: best[k] for k in ("name", "valid_ppl", "test_ppl", "params")},
    }


def _overall_best(rounds: list[dict]) -> dict | None:
    best = [r["best"] for r in rounds if r.get("best")]
    return min(best, key=lambda b: b["valid_ppl"]) if best else None
