"""Corpus statistics (data/stats/<corpus>.json) beside the paper's Table 6 header rows, the
vocabulary sizes and type/token ratios other tables read from them, and the tokeniser round-trip
figures (data/stats/tokenizer-roundtrip.json).

Cells say what they are: a number, "data missing" (the split could not be obtained; with
``data.on_missing: skip`` the verified valid/test of a partly available corpus still have
figures), or "not run" (no statistics file yet).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.data.catalogue import BOTHA_LANGUAGES, SPLITS

STATS_DIR = Path("data/stats")
ROUNDTRIP_FILE = "tokenizer-roundtrip.json"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _split_cell(stats: dict | None, split: str, fmt) -> str:
    if stats is None:
        return "not run"
    s = stats.get("splits", {}).get(split)
    return "data missing" if s is None else fmt(s)


def _splits_cell(stats: dict | None, splits, fmt) -> str:
    """ "a / b / c" over ``splits``; "not run" once when there are no statistics at all."""
    return "not run" if stats is None else " / ".join(_split_cell(stats, split, fmt) for split in splits)


def vocab_sizes(stats_dir: Path) -> dict[str, int]:
    """Vocabulary size per prepared corpus, from the prepare stage's statistics files."""
    sizes = {}
    for path in sorted(Path(stats_dir).glob("*.json")):
        stats = json.loads(path.read_text())
        if stats.get("status", "ok") == "ok" and "vocab_size" in stats:
            sizes[stats["corpus"]] = stats["vocab_size"]
    return sizes


def _count(text: str) -> float:
    """'25K' -> 25000, '1M' -> 1e6 (the paper's Table 6 header rows)."""
    scale = {"K": 1e3, "M": 1e6}.get(text[-1].upper(), 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def type_token_ratios(paper: dict, stats_dir: Path, corpora: list[str]) -> dict[str, tuple[float | None, str]]:
    """Corpus -> (TTR, what it is computed from). TTR = vocabulary / training tokens, the ratio of
    the paper's threshold (0.03): from our prepared training split where we have it, else from the
    paper's Table 6 header rows (vocabulary / 1M tokens). The valid/test ratios are not used: the
    ratio falls with sample size, and those splits are a tenth of the training data."""
    header = {c["corpus"]: c for c in paper["table6_stats"]["columns"]}
    out: dict[str, tuple[float | None, str]] = {}
    for corpus in corpora:
        stats = _read(Path(stats_dir) / f"{corpus}.json")
        train_tokens = ((stats or {}).get("splits") or {}).get("train", {}).get("tokens")
        if stats and stats.get("status") == "ok" and stats.get("vocab_size") and train_tokens:
            out[corpus] = (stats["vocab_size"] / train_tokens, "ours: vocabulary / train tokens")
        elif corpus in header:
            ref = header[corpus]
            source = f"paper's Table 6: {ref['vocabulary']} types / {ref['tokens']} tokens (train files missing here)"
            out[corpus] = (_count(ref["vocabulary"]) / _count(ref["tokens"]), source)
        else:
            out[corpus] = (None, "no statistics yet")
    return out


def table7_type_token_ratios(paper: dict, stats_dir: Path) -> dict[str, tuple[float | None, str]]:
    """The type/token ratio of each corpus of Table 7, the ratio the paper reads that table by."""
    return type_token_ratios(paper, stats_dir, [c["corpus"] for c in paper["table7"]["columns"]])


def paper_statistics(paper: dict) -> dict[str, dict]:
    """Corpus -> what the paper gives of it: number of tokens, vocabulary size and TTR class
    (Table 6's header rows for the Botha & Blunsom data; Sections 3, 5 and 8 for PTB and WikiText-2)."""
    return {c["corpus"]: c for c in [*paper.get("english_stats", []), *paper["table6_stats"]["columns"]]}


def corpus_stats_table(paper: dict, stats_dir: Path, corpora: list[str]) -> pd.DataFrame:
    """One row per corpus: the paper's figures, then ours: tokens per split, vocabulary,
    TTR = vocabulary / training tokens and the ``<unk>`` share of valid and test."""
    given = paper_statistics(paper)
    rows = []
    for name in corpora:
        stats = _read(Path(stats_dir) / f"{name}.json")
        ok = stats is not None and stats.get("status") == "ok"
        ref = given.get(name, {})
        if ok:
            vocab, train = stats["vocab_size"], stats["splits"]["train"]["tokens"]
            vocab_cell, ttr_cell = f"{vocab:,}", f"{vocab / train:.4f}"
        else:
            vocab_cell = ttr_cell = "not run" if stats is None else "data missing"
        rows.append(
            {
                "corpus": name,
                "paper: number of tokens": ref.get("tokens", "—"),
                "paper: vocabulary": ref.get("vocabulary", "—"),
                "paper: TTR": ref.get("ttr", "—"),
                "tokens: train / valid / test": _splits_cell(stats, SPLITS, lambda s: f"{s['tokens']:,}"),
                "vocabulary": vocab_cell,
                "TTR": ttr_cell,
                "<unk> share: valid / test": _splits_cell(
                    stats, ("valid", "test"), lambda s: f"{s.get('unk_share', 0.0):.2%}"
                ),
                "<eos>": "—" if stats is None else ("yes" if stats.get("eos_added") else "no"),
            }
        )
    return pd.DataFrame(rows)


def roundtrip_table(stats_dir: Path) -> tuple[pd.DataFrame, dict | None]:
    """Per language: lines measured and each candidate's round-trip agreement (share of lines)."""
    data = _read(Path(stats_dir) / ROUNDTRIP_FILE)
    if data is None:
        return pd.DataFrame(), None
    rows = []
    order = [lang for lang in BOTHA_LANGUAGES if lang in data["languages"]]  # the paper's Table 6 order
    for lang in order + sorted(set(data["languages"]) - set(order)):
        r = data["languages"][lang]
        row = {"language": lang}
        if r["status"] != "ok":
            row.update({"lines": "data missing", **{c: "data missing" for c in data["candidates"]}})
        else:
            best = max(r["agreement"].values())
            row["lines"] = f"{r['lines']:,}"
            for cand, share in r["agreement"].items():
                row[cand] = f"**{share:.2%}**" if share == best else f"{share:.2%}"
        rows.append(row)
    return pd.DataFrame(rows), data
