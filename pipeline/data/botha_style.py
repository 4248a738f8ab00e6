"""Botha & Blunsom (2014)-style text processing, and the measurement that chose its tokeniser.

The released Botha data was tokenised by cdec's ``tokenize-anything.sh`` (Perl; notes in
``../shared/notes/botha-blunsom.md`` §3.3), then lowercased with every digit mapped to ``0``. For
the rebuild from raw WMT13 we need a Python tokeniser that reproduces it as closely as possible.
Candidates: sacrebleu's ``13a`` and ``intl`` tokenisers, and sacremoses tuned as in the notes
(§7.4: punctuation normalisation with unicode quotes mapped to ``"``, aggressive dash splits
written back as a bare ``-``, ``\\w+'\\w+`` kept whole) plus one more setting found by the
measurement: a final period is split off a word even when a lowercase word follows, except for
lowercase abbreviations (Moses keeps "jahren. und" whole; cdec and the released data do not).

The choice is made by **round-trip agreement** on the real Botha valid/test lines: each line is
detokenised with one named detokeniser (sacremoses ``MosesDetokenizer(lang)``, the same for every
candidate), re-tokenised by the candidate, lowercased and digit-mapped, and compared with the
original line; the figure is the share of lines reproduced exactly. It measures agreement after a
lossy detokenisation, not accuracy on raw text: the detokeniser cannot restore everything
(e.g. ``" - "`` between letters), which caps every candidate below 100%.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

UNK = "<unk>"
_UNK_STANDIN = "xxunkxx"  # <unk> is not text; keep it through detokenise/tokenise as a plain word
DETOKENIZER = "sacremoses.MosesDetokenizer(lang).detokenize"
CANDIDATES = ("sacrebleu-13a", "sacrebleu-intl", "sacremoses-tuned")
# Chosen by the round-trip measurement (tests/data/test_botha_style.py guards it; reports/tables.md shows it).
CHOSEN_TOKENIZER = "sacremoses-tuned"
_DIGIT = re.compile(r"[0-9]")


def botha_normalise(tokenised: str) -> str:
    """Lowercase and map every digit to 0, as in the released data (notes §3.1-3.2)."""
    return _DIGIT.sub("0", tokenised.lower())


@lru_cache(maxsize=None)
def tokenizer(name: str, lang: str) -> Callable[[str], str]:
    """A candidate tokeniser: raw line -> space-separated tokens (not yet lowercased)."""
    if name == "sacrebleu-13a":
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        return Tokenizer13a()
    if name == "sacrebleu-intl":
        from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International

        return TokenizerV14International()
    if name == "sacremoses-tuned":
        from sacremoses import MosesPunctNormalizer, MosesTokenizer

        norm = MosesPunctNormalizer(lang=lang, pre_replace_unicode_punct=True)
        tok = MosesTokenizer(lang=lang)
        # Moses leaves "word." whole when a lowercase word follows; cdec (and the released data:
        # "jahren .", "mio .") splits it unless the word is a lowercase abbreviation ("ca.", "bzw.").
        keep = {p for p in tok.NONBREAKING_PREFIXES if p.islower()}

        def split_period(token: str) -> str:
            word = token[:-1]
            if token.endswith(".") and word.isalpha() and word not in keep:
                return f"{word} ."
            return token

        def moses(line: str) -> str:
            out = tok.tokenize(
                norm.normalize(line),
                escape=False,
                aggressive_dash_splits=True,
                return_str=True,
                protected_patterns=[r"\w+'\w+"],
            )
            return " ".join(split_period(t) for t in out.replace(" @-@ ", " - ").split())

        return moses
    raise ValueError(f"unknown tokeniser {name!r}; candidates: {', '.join(CANDIDATES)}")


def botha_tokenise(line: str, lang: str, name: str = CHOSEN_TOKENIZER) -> list[str]:
    """Raw text line -> Botha-style tokens (tokenised, lowercased, digits mapped to 0)."""
    return botha_normalise(tokenizer(name, lang)(line.strip())).split()


@lru_cache(maxsize=None)
def _detokenizer(lang: str):
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def detokenise(line: str, lang: str) -> str:
    return _detokenizer(lang).detokenize(line.replace(UNK, _UNK_STANDIN).split())


def roundtrip_agreement(lines: Iterable[str], lang: str, candidates: Iterable[str] = CANDIDATES) -> dict:
    """Share of ``lines`` (released Botha text) that each candidate reproduces exactly after
    detokenisation with :data:`DETOKENIZER`. Returns {"lines": n, "agreement": {candidate: share}}."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    candidates = tuple(candidates)
    hits = dict.fromkeys(candidates, 0)
    for line in lines:
        raw = detokenise(line, lang)
        for name in candidates:
            again = botha_normalise(tokenizer(name, lang)(raw)).replace(_UNK_STANDIN, UNK)
            if again.split() == line.split():
                hits[name] += 1
    n = len(lines)
    return {"lines": n, "agreement": {c: round(hits[c] / n, 4) if n else 0.0 for c in candidates}}


def measure_corpora(raw_root: Path, languages: Iterable[str], candidates: Iterable[str] = CANDIDATES) -> dict:
    """Round-trip agreement per language on ``<raw_root>/botha-<lang>/{valid,test}.txt``.

    Those are the released files the download stage verified (kept even when train is missing).
    A language whose files are absent gets ``status: data_missing``."""
    candidates = tuple(candidates)
    out: dict = {
        "metric": "round-trip agreement: share of released valid+test lines reproduced exactly",
        "detokenizer": DETOKENIZER,
        "candidates": list(candidates),
        "chosen": CHOSEN_TOKENIZER,
        "languages": {},
    }
    for lang in languages:
        paths = [Path(raw_root) / f"botha-{lang}" / f"{split}.txt" for split in ("valid", "test")]
        if not all(p.is_file() for p in paths):
            out["languages"][lang] = {"status": "data_missing"}
            continue
        lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines()]
        out["languages"][lang] = {"status": "ok", **roundtrip_agreement(lines, lang, candidates)}
    return out
