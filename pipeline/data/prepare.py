"""Turn a downloaded corpus into token ids: vocabulary from train, ``<eos>`` per line, statistics.

``<eos>`` is appended only where the corpus says so (PTB, WikiText-2); the Botha & Blunsom
corpora are counted over word tokens only, as the authors run them (``--eos " "``).

Output directory (``data/prepared/<corpus>/``):

- ``vocab.txt``: one word per line; the line number is the id. Words are sorted by descending
  train frequency, ties broken alphabetically (as the authors' TensorFlow reader does).
- ``{train,valid,test}.npy``: int32 token ids.
- ``manifest.json``: the vocabulary size and the sha256 of every file above, which
  :func:`load_prepared` checks (with the files read whole and every id within the vocabulary)
  so that a truncated, altered or mismatched file fails naming itself, never as a traceback
  or a smaller model.

Statistics go to a separate JSON (``data/stats/<corpus>.json``, a DVC metrics file): per split,
tokens, types (``<eos>`` counted as a type), out-of-vocabulary count, ``<unk>`` count and share
(tokens that end up as ``<unk>``: written so in the file, or mapped to it as OOV) and type/token
ratio (types / tokens of that split). A corpus marked missing whose download kept some verified
splits (Botha valid/test without train) gets those splits' tokens, types and ``<unk>`` share,
with ``status: data_missing`` and the missing splits named.
"""

from __future__ import annotations

import io
import json
import pickle
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.catalogue import SPLITS
from pipeline.errors import DataFormatError
from pipeline.fsutil import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    read_missing_marker,
    sha256_file,
    write_missing_marker,
)

if TYPE_CHECKING:  # the registry (URLs, pins) is the download stage's; preparing needs only a corpus's fields
    from pipeline.data.corpora import Corpus

EOS = "<eos>"
UNK = "<unk>"
VOCAB = "vocab.txt"
MANIFEST = "manifest.json"


def tokenize_file(path: Path, add_eos: bool) -> list[str]:
    """Whitespace tokens of every line, plus ``<eos>`` after each line when ``add_eos``.

    Equivalent to the authors' "replace every newline by <eos>, then split" on PTB/WikiText,
    whose lines are space-padded; blank lines yield a lone ``<eos>``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path} is not UTF-8 text: undecodable bytes at offset {exc.start:,} (line {line_no:,}). The file is "
            f"corrupt or in another encoding; delete it and run the download stage again so that its checksum "
            f"is verified. Nothing was written."
        ) from None
    tokens: list[str] = []
    for line in io.StringIO(text, newline=None):  # lines as open() yields them (not str.splitlines)
        tokens.extend(line.split())
        if add_eos:
            tokens.append(EOS)
    if not any(t != EOS for t in tokens):
        raise DataFormatError(
            f"{path} holds no tokens: an empty split cannot be used. Replace it with the original (run the "
            f"download stage again, which verifies checksums). Nothing was written."
        )
    return tokens


def build_vocab(train_tokens: list[str]) -> list[str]:
    counts = Counter(train_tokens)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def encode(tokens: list[str], index: dict[str, int], split: str) -> tuple[np.ndarray, int]:
    """Map tokens to ids; words unseen in train become ``<unk>`` (and are counted)."""
    unk = index.get(UNK)
    ids = np.empty(len(tokens), dtype=np.int32)
    oov = 0
    for i, tok in enumerate(tokens):
        j = index.get(tok)
        if j is None:
            if unk is None:
                raise ValueError(
                    f"{split}: word {tok!r} is not in the training vocabulary and the vocabulary has no "
                    f"{UNK} to map it to; the corpus is expected to be closed-vocabulary"
                )
            j, oov = unk, oov + 1
        ids[i] = j
    return ids, oov


def split_stats(tokens: list[str], oov: int | None) -> dict:
    """``oov`` is None when there is no training vocabulary to measure it against."""
    types = len(set(tokens))
    unk = sum(1 for t in tokens if t == UNK) + (oov or 0)
    return {
        "tokens": len(tokens),
        "types": types,
        "oov": oov,
        "unk": unk,
        "unk_share": round(unk / len(tokens), 6) if tokens else 0.0,
        "type_token_ratio": round(types / len(tokens), 6) if tokens else 0.0,
    }


def prepare_corpus(corpus: Corpus, raw_dir: Path, out_dir: Path, stats_path: Path) -> dict:
    """Prepare ``raw_dir`` (output of the download stage) into ``out_dir``; returns the stats."""
    missing = read_missing_marker(raw_dir)
    if missing is not None:
        present = [s for s in missing.get("present_splits", []) if (raw_dir / f"{s}.txt").is_file()]
        partial = {s: split_stats(tokenize_file(raw_dir / f"{s}.txt", corpus.add_eos), None) for s in present}
        write_missing_marker(out_dir, missing["reason"], corpus=corpus.name)
        stats = {"corpus": corpus.name, "status": "data_missing", "eos_added": corpus.add_eos}
        if partial:
            stats.update(
                splits=partial,
                missing_splits=[s for s in SPLITS if s not in partial],
                missing_files=missing.get("missing_files", []),
            )
        atomic_write_json(stats_path, stats)
        return stats
    for split in SPLITS:
        if not (raw_dir / f"{split}.txt").is_file():
            raise FileNotFoundError(
                f"{raw_dir / f'{split}.txt'} is missing; run the download stage first "
                f"(python -m stages.download --corpus {corpus.name})"
            )

    tokens = {split: tokenize_file(raw_dir / f"{split}.txt", corpus.add_eos) for split in SPLITS}
    vocab = build_vocab(tokens["train"])
    index = {w: i for i, w in enumerate(vocab)}
    stats: dict = {
        "corpus": corpus.name,
        "status": "ok",
        "eos_added": corpus.add_eos,
        "vocab_size": len(vocab),
        "splits": {},
    }
    with atomic_directory(out_dir) as tmp:
        for split in SPLITS:
            ids, oov = encode(tokens[split], index, split)
            np.save(tmp / f"{split}.npy", ids)
            stats["splits"][split] = split_stats(tokens[split], oov)
        atomic_write_text(tmp / VOCAB, "".join(f"{w}\n" for w in vocab))
        atomic_write_json(tmp / MANIFEST, _manifest(corpus.name, len(vocab), tmp))
    atomic_write_json(stats_path, stats)
    return stats


def _manifest(corpus: str, vocab_size: int, directory: Path) -> dict:
    names = [VOCAB] + [f"{split}.npy" for split in SPLITS]
    return {"corpus": corpus, "vocab_size": vocab_size, "sha256": {n: sha256_file(directory / n) for n in names}}


def load_prepared(prepared_dir: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read the vocabulary and the id arrays of a prepared corpus, checked as they are read.

    Every file is read whole; the ids are integers within the vocabulary; the vocabulary has the
    size, and every file the sha256, that ``prepare`` recorded in ``manifest.json`` (a directory
    prepared before manifests existed is checked against ``data/stats/<corpus>.json`` instead).
    A failed check is a :class:`DataFormatError` naming the file and the command that rebuilds it.
    """
    prepared_dir = Path(prepared_dir)
    rerun = _rerun_hint(prepared_dir)
    names = [VOCAB] + [f"{split}.npy" for split in SPLITS]
    absent = [n for n in names if not (prepared_dir / n).is_file()]
    if absent:
        what = "does not exist" if not prepared_dir.is_dir() else f"has no {', '.join(absent)}"
        raise FileNotFoundError(
            f"{prepared_dir} {what}: the corpus was never prepared here; {rerun.removeprefix('re-')}"
        )
    vocab = _read_vocab(prepared_dir / VOCAB, rerun)
    manifest = _read_manifest(prepared_dir, rerun)
    expected_size = manifest.get("vocab_size") if manifest else _stats_vocab_size(prepared_dir)
    if expected_size is not None and len(vocab) != expected_size:
        raise DataFormatError(
            f"{prepared_dir / VOCAB} has {len(vocab):,} words, but prepare wrote {expected_size:,}: "
            f"the file was cut short or replaced; {rerun}"
        )
    arrays = {split: _read_ids(prepared_dir / f"{split}.npy", len(vocab), rerun) for split in SPLITS}
    for name, want in (manifest or {}).get("sha256", {}).items():
        if sha256_file(prepared_dir / name) != want:
            raise DataFormatError(
                f"{prepared_dir / name} is not the file prepare wrote (its sha256 differs from "
                f"{MANIFEST}): it was altered or comes from another preparation; {rerun}"
            )
    return vocab, arrays


def _rerun_hint(prepared_dir: Path) -> str:
    return (
        f"re-run `python -m stages.prepare --corpus {prepared_dir.name}` (or `dvc repro prepare@{prepared_dir.name}`)"
    )


def _read_vocab(path: Path, rerun: str) -> list[str]:
    try:
        vocab = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path} is not UTF-8 text (offset {exc.start:,}): it is corrupt; {rerun}") from None
    if not vocab:
        raise DataFormatError(f"{path} is empty; {rerun}")
    return vocab


def _read_manifest(prepared_dir: Path, rerun: str) -> dict | None:
    path = prepared_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        int(manifest["vocab_size"]), dict(manifest["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path} cannot be read ({type(exc).__name__}: {exc}); {rerun}") from None
    return manifest


def _stats_vocab_size(prepared_dir: Path) -> int | None:
    """The vocabulary size in data/stats/<corpus>.json beside data/prepared/<corpus>, where it is."""
    path = prepared_dir.parent.parent / "stats" / f"{prepared_dir.name}.json"
    try:
        size = json.loads(path.read_text()).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) else None


def _read_ids(path: Path, vocab_size: int, rerun: str) -> np.ndarray:
    """A 1-D integer array read whole, every id in [0, vocab_size)."""
    try:
        ids = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataFormatError(
            f"{path} cannot be read whole, it is truncated or corrupt ({type(exc).__name__}: {exc}); {rerun}"
        ) from None
    if not isinstance(ids, np.ndarray) or ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        shape = getattr(ids, "shape", type(ids).__name__)
        raise DataFormatError(
            f"{path} is not a 1-D array of integer token ids (got {getattr(ids, 'dtype', '?')}, shape {shape}); {rerun}"
        )
    if ids.size == 0:
        raise DataFormatError(f"{path} holds no tokens; {rerun}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        position = int(np.argmax(ids == bad))
        raise DataFormatError(
            f"{path}: token id {bad} at position {position:,} is outside the vocabulary of "
            f"{vocab_size:,} words (ids 0 to {vocab_size - 1:,}); {rerun}"
        )
    return ids
