"""Botha & Blunsom (2014)-style rebuild of the 1M-token corpora from the raw WMT13 data.

Selected per language with ``data.source.botha-<lang>: wmt13-raw`` (fr, es, de, cs; Russian's
training text came from the Yandex corpus and its dev set is not a newstest, so it always uses
the archive). What it does, following ``../shared/notes/botha-blunsom.md`` §1.1, §3 and §7.5:

1. training text: the target side of the WMT13 parallel data, Europarl v7 then News Commentary v8
   (the order is undocumented; the released es train text begins with Europarl), both archives
   sha256-pinned (tensorflow/datasets' pins, notes §6);
2. valid = newstest2011, test = newstest2012, through sacrebleu's test-set downloader (which
   verifies its own md5s; ``wmt11`` / ``wmt12`` references of ``en-<lang>``);
3. every line: tokenised by the tokeniser the round-trip measurement chose
   (:mod:`pipeline.data.botha_style`), lowercased, digits mapped to 0;
4. training pairs only: cdec ``filter-length.pl -80``: drop a pair when either side has more
   than 80 tokens, when |log(length ratio)| > log 9, or when the log ratio is more than 1.8
   standard deviations from the mean; pairs where both sides are shorter than 7 tokens are always
   kept. The mean and deviation are taken over the pairs read (enough for ~1.3M target tokens),
   not over all of Europarl, which would take hours to tokenise;
5. the first ~1M target tokens (whole sentences, up to the one that reaches 1,000,000);
6. vocabulary = training types seen at least twice; every other word, in every split, is ``<unk>``;
7. no end-of-sentence token.

Inputs are looked for in ``<mirror>/wmt13/`` first (the archive names below, and
``newstest2011.<lang>`` / ``newstest2012.<lang>`` as plain text), then in the download cache
``data/cache/wmt13/``; the network is used only when ``SCRN_OFFLINE`` is not 1.
"""

from __future__ import annotations

import math
import os
import statistics
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.data.botha_style import CHOSEN_TOKENIZER, UNK, botha_tokenise
from pipeline.data.catalogue import WMT13_REBUILDABLE
from pipeline.data.corpora import Corpus
from pipeline.data.sources import Source, SourceUnavailable, fetch_url
from pipeline.errors import ChecksumError
from pipeline.fsutil import sha256_file

CACHE_DIR = Path("data/cache/wmt13")
TARGET_TOKENS = 1_000_000
MAX_LEN = 80
MAX_RATIO = 9.0
MAX_SD = 1.8
ALWAYS_KEEP_BELOW = 7
READ_FACTOR = 1.3  # read pairs until this many times TARGET_TOKENS target tokens before filtering


@dataclass(frozen=True)
class PinnedArchive:
    name: str
    url: str
    sha256: str
    size: int
    member: str  # format with lang= and side=

    def members(self, lang: str) -> tuple[str, str]:
        return self.member.format(lang=lang, side="en"), self.member.format(lang=lang, side=lang)


TRAINING_ARCHIVES = (
    PinnedArchive(
        "training-parallel-europarl-v7.tgz",
        "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
        "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7",
        657_632_379,
        "training/europarl-v7.{lang}-en.{side}",
    ),
    PinnedArchive(
        "training-parallel-nc-v8.tgz",
        "http://www.statmt.org/wmt13/training-parallel-nc-v8.tgz",
        "df5801d6776190ea48e7241ee97100d81e2f89d7c352c9cd11432c8855c73c28",
        92_821_866,
        "training/news-commentary-v8.{lang}-en.{side}",
    ),
)
NEWSTEST = {"valid": ("wmt11", "newstest2011"), "test": ("wmt12", "newstest2012")}


# ---------------------------------------------------------------------------- inputs


def fetch_pinned(archive: PinnedArchive, mirror: Path | None, cache_dir: Path, use_network: bool) -> Path:
    """A verified local copy of ``archive``: mirror, then cache, then the network (into the cache)."""
    tried = []
    for candidate in ([mirror / "wmt13" / archive.name] if mirror else []) + [cache_dir / archive.name]:
        if candidate.is_file():
            got = sha256_file(candidate)
            if got == archive.sha256:
                return candidate
            raise ChecksumError(
                f"{candidate} has sha256 {got}, expected {archive.sha256}: it is truncated, corrupt or another "
                f"version. Delete it (or replace it with {archive.url}, {archive.size:,} bytes) and run again. "
                f"Nothing was written."
            )
        tried.append(f"{candidate} does not exist")
    if not use_network:
        raise SourceUnavailable(f"{archive.name}: " + "; ".join(tried) + "; network not tried (SCRN_OFFLINE=1)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = cache_dir / f".{archive.name}.part"
    try:
        fetch_url(archive.url, part, timeout=600)
        got = sha256_file(part)
        if got != archive.sha256:
            raise SourceUnavailable(f"{archive.url}: sha256 {got}, expected {archive.sha256}")
        os.replace(part, cache_dir / archive.name)
    finally:
        part.unlink(missing_ok=True)
    return cache_dir / archive.name


def newstest_file(split: str, lang: str, mirror: Path | None, use_network: bool) -> Path:
    test_set, name = NEWSTEST[split]
    if mirror is not None and (mirror / "wmt13" / f"{name}.{lang}").is_file():
        return mirror / "wmt13" / f"{name}.{lang}"
    if not use_network:
        where = f"{mirror / 'wmt13' / f'{name}.{lang}'} does not exist" if mirror else "no local mirror"
        raise SourceUnavailable(f"{name}.{lang}: {where}; network not tried (SCRN_OFFLINE=1)")
    from sacrebleu.utils import get_reference_files  # downloads into $SACREBLEU and checks its md5

    try:
        return Path(get_reference_files(test_set, f"en-{lang}")[0])
    except Exception as exc:  # sacrebleu raises several kinds; any of them means "not obtained"
        raise SourceUnavailable(f"sacrebleu {test_set} en-{lang}: {exc}") from exc


def read_parallel(archive: Path, members: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(english, target) line pairs of a parallel-corpus tar archive.

    Each side reads through its own handle on the archive: two members of one compressed stream
    read in turn would seek it backwards at every buffer refill, and a gzip stream restarts from
    the beginning on each backward seek (quadratic in what is read).
    """
    try:
        with tarfile.open(archive) as en_tar, tarfile.open(archive) as xx_tar:
            en_m, xx_m = en_tar.getmember(members[0]), xx_tar.getmember(members[1])
            with en_tar.extractfile(en_m) as en, xx_tar.extractfile(xx_m) as xx:
                for a, b in zip(en, xx, strict=True):
                    yield a.decode("utf-8", "replace"), b.decode("utf-8", "replace")
    except KeyError as exc:
        raise SourceUnavailable(f"{archive.name} does not have the expected layout: {exc}") from exc
    except ValueError as exc:  # zip(strict=True): the two sides differ in length
        raise SourceUnavailable(f"{archive.name}: {members[0]} and {members[1]} differ in length") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceUnavailable(f"{archive.name} is truncated or corrupt ({exc})") from exc


# ---------------------------------------------------------------------------- preprocessing


def length_filter(
    pairs: list[tuple[list[str], list[str]]],
    max_len: int = MAX_LEN,
    max_ratio: float = MAX_RATIO,
    max_sd: float = MAX_SD,
    always_keep_below: int = ALWAYS_KEEP_BELOW,
) -> list[bool]:
    """cdec ``corpus/filter-length.pl -<max_len>``: which (source, target) token pairs to keep.

    A pair with an empty side or a side over ``max_len`` tokens goes; one with both sides shorter
    than ``always_keep_below`` stays; any other goes when its |log length ratio| exceeds
    log(``max_ratio``) or lies more than ``max_sd`` deviations from the mean. As in cdec, the mean
    and deviation are those of the other pairs alone (the ones the ratio decides).
    """
    verdicts: list[bool | float] = []  # a decision, or the log ratio still to be judged
    for s, t in pairs:
        if not s or not t or len(s) > max_len or len(t) > max_len:
            verdicts.append(False)
        elif len(s) < always_keep_below and len(t) < always_keep_below:
            verdicts.append(True)
        else:
            x = math.log(len(s) / len(t))
            verdicts.append(x if abs(x) <= math.log(max_ratio) else False)
    scored = [v for v in verdicts if not isinstance(v, bool)]
    mean = statistics.fmean(scored) if scored else 0.0
    sd = statistics.pstdev(scored) if len(scored) > 1 else 0.0
    return [v if isinstance(v, bool) else (sd == 0.0 or abs(v - mean) <= max_sd * sd) for v in verdicts]


def first_tokens(sentences: Iterable[list[str]], limit: int = TARGET_TOKENS) -> list[list[str]]:
    """Whole sentences from the start until ``limit`` tokens are reached (the last one included)."""
    out, n = [], 0
    for sent in sentences:
        if n >= limit:
            break
        out.append(sent)
        n += len(sent)
    return out


def apply_vocabulary(splits: dict[str, list[list[str]]], min_count: int = 2) -> dict[str, list[str]]:
    """Vocabulary = training types seen at least ``min_count`` times; all else -> ``<unk>``.

    Returns the lines of every split as space-joined text (no EOS token)."""
    counts = Counter(tok for sent in splits["train"] for tok in sent)
    vocab = {w for w, c in counts.items() if c >= min_count}
    return {
        split: [" ".join(t if t in vocab else UNK for t in sent) for sent in sents] for split, sents in splits.items()
    }


def training_sentences(
    pairs: Iterable[tuple[str, str]], lang: str, limit: int = TARGET_TOKENS, tokenizer: str = CHOSEN_TOKENIZER
) -> list[list[str]]:
    """Tokenise pairs until ~READ_FACTOR x limit target tokens, length-filter, take the first ``limit``."""
    tokenised, n = [], 0
    for en, xx in pairs:
        if n >= READ_FACTOR * limit:
            break
        pair = (botha_tokenise(en, "en", tokenizer), botha_tokenise(xx, lang, tokenizer))
        tokenised.append(pair)
        n += len(pair[1])
    keep = length_filter(tokenised)
    return first_tokens((t for (s, t), k in zip(tokenised, keep) if k), limit)


def build_splits(
    train_pairs: Iterable[tuple[str, str]],
    valid_lines: Iterable[str],
    test_lines: Iterable[str],
    lang: str,
    limit: int = TARGET_TOKENS,
) -> dict[str, list[str]]:
    """The whole Botha-style preprocessing from raw text; returns the lines of each split."""
    splits = {
        "train": training_sentences(train_pairs, lang, limit),
        "valid": [botha_tokenise(line, lang) for line in valid_lines if line.strip()],
        "test": [botha_tokenise(line, lang) for line in test_lines if line.strip()],
    }
    return apply_vocabulary(splits)


# ---------------------------------------------------------------------------- the download-stage source


MISSING_HINT = (
    "Put the WMT13 inputs in <mirror>/wmt13/ ("
    + ", ".join(a.name for a in TRAINING_ARCHIVES)
    + ", newstest2011.<lang>, newstest2012.<lang>) or allow the network (SCRN_OFFLINE unset); or set "
    "data.source.<corpus>: archive to use the published files; or data.on_missing: skip to mark it missing."
)


def rebuild(corpus: Corpus, dest: Path, mirror: Path | None, use_network: bool, cache_dir: Path = CACHE_DIR) -> None:
    lang = corpus.language
    if lang not in WMT13_REBUILDABLE:
        raise SourceUnavailable(f"{corpus.name} cannot be rebuilt from raw WMT13 (only {', '.join(WMT13_REBUILDABLE)})")
    archives = [fetch_pinned(a, mirror, cache_dir, use_network) for a in TRAINING_ARCHIVES]
    valid, test = (newstest_file(split, lang, mirror, use_network) for split in ("valid", "test"))

    def pairs() -> Iterator[tuple[str, str]]:
        for spec, path in zip(TRAINING_ARCHIVES, archives):
            yield from read_parallel(path, spec.members(lang))

    lines = build_splits(
        pairs(), valid.read_text(encoding="utf-8").splitlines(), test.read_text(encoding="utf-8").splitlines(), lang
    )
    for split, text in lines.items():
        (dest / f"{split}.txt").write_text("".join(f"{line}\n" for line in text), encoding="utf-8")


def rebuild_source(corpus: Corpus, mirror: Path | None, use_network: bool) -> Source:
    names = ", ".join(a.name for a in TRAINING_ARCHIVES)
    return Source(
        f"Botha-style rebuild from raw WMT13 ({names}; newstest2011/2012 via sacrebleu)",
        False,
        lambda dest: rebuild(corpus, dest, mirror, use_network),
        verify_pins=False,
    )
