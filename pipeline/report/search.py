"""The report's random-search section: results/search/<name>.json, written by `python -m stages.search`.

Read here as plain JSON (format 1, ∞ as ``Infinity``) so that the report stage does not depend
on the search code; a file of another format is listed as unreadable, never fatal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

SEARCH_DIR = "search"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _ppl(x) -> str:
    if x is None:
        return "—"
    return "∞" if not math.isfinite(x) else f"{x:.2f}"


def search_summaries(results_root: Path) -> list[dict]:
    """One summary per results/search/*.json: a title, a per-round table and the best sample."""
    out = []
    for path in sorted((Path(results_root) / SEARCH_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            rounds = data["rounds"]
            plan = data["plan"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.append({"name": path.stem, "file": path.name, "error": f"unreadable ({type(exc).__name__})"})
            continue
        names = plan.get("searched") or list(plan["space"])
        rows = []
        for r in rounds:
            ppls = [s["valid_ppl"] for s in r["samples"]]
            row = {
                "round": str(r["round"]),
                "samples": str(len(ppls)),
                "diverged / failed (∞)": str(sum(not math.isfinite(p) for p in ppls)),
                "best valid PPL": _ppl(r["best"]["valid_ppl"]) if r.get("best") else "∞",
                "best sample": r["best"]["name"] if r.get("best") else "—",
            }
            for n in names:
                lo, hi = r["ranges"][n]
                row[n] = f"[{_fmt(lo)}, {_fmt(hi)}]"
            rows.append(row)
        if rounds and rounds[-1].get("next_ranges"):  # where the shrinking has got to
            last = rounds[-1]["next_ranges"]
            rows.append(
                {
                    "round": f"after {rounds[-1]['round']}",
                    "samples": "—",
                    "diverged / failed (∞)": "—",
                    "best valid PPL": "—",
                    "best sample": "—",
                    **{n: f"[{_fmt(last[n][0])}, {_fmt(last[n][1])}]" for n in names if n in last},
                }
            )
        best = data.get("best")
        overrides = ", ".join(f"`{k}={v}`" for k, v in sorted((plan.get("set") or {}).items()))
        out.append(
            {
                "name": data.get("name", path.stem),
                "file": path.name,
                "base_run": plan["base_run"],
                "profile": plan["profile"],
                "regime": plan["regime"],
                "rounds_done": len(rounds),
                "rounds_planned": data.get("rounds_planned", len(rounds)),
                "samples_per_round": plan["samples_per_round"],
                "budget": (
                    f"profile {plan['profile']}, {plan['samples_per_round']} trials per round, "
                    f"{len(rounds)} of {data.get('rounds_planned', len(rounds))} round(s) done"
                    + (f", with {overrides}" if overrides else "")
                ),
                "table": pd.DataFrame(rows),
                "best": None
                if not best
                else {
                    "name": best["name"],
                    "valid_ppl": _ppl(best["valid_ppl"]),
                    "test_ppl": _ppl(best.get("test_ppl")),
                    "params": ", ".join(f"{k} = {_fmt(best['params'][k])}" for k in names if k in best["params"]),
                },
            }
        )
    return out
