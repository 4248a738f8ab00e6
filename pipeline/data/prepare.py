"""Turn a downloaded corpus into token ids: vocabulary from train, ``<eos>`` per line, statistics.

``<eos>`` is appended only where the corpus says so (PTB, WikiText-2); the Botha & Blunsom
corpora are counted over word tokens only, as the authors run them (``--eos " "``).

Output directory (``data/prepared/<corpus>/``):

- ``vocab.txt``: one word per line; the line number is the id. Words are sorted by descending
  train frequency, ties broken alphabetically (as the authors' TensorFlow reader does).
- ``{train,valid,test}.npy``: int32 token ids.

Statistics go to a separate JSON (``data/stats/<corpus>.json``, a DVC metrics file): per split,
tokens, types (``<eos>`` counted as a type), out-of-vocabulary count, ``<unk>`` count and share
(tokens that end up as ``<unk>``: written so in the file, or mapped to it as OOV) and type/token
ratio (types / tokens of that split). A corpus marked missing whose download kept some verified
splits (Botha valid/test without train) gets those splits' tokens, types and ``<unk>`` share,
with ``status: data_missing`` and the missing splits named.
"""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.data.corpora import SPLITS, Corpus
from pipeline.errors import DataFormatError
from pipeline.fsutil import atomic_directory, atomic_write_json, atomic_write_text, read_missing_marker, write_missing_marker

EOS = "<eos>"
UNK = "<unk>"


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
            stats.update(splits=partial, missing_splits=[s for s in SPLITS if s not in partial],
                         missing_files=missing.get("missing_files", []))
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
    stats: dict = {"corpus": corpus.name, "status": "ok", "eos_added": corpus.add_eos, "vocab_size": len(vocab), "splits": {}}
    with atomic_directory(out_dir) as tmp:
        for split in SPLITS:
            ids, oov = encode(tokens[split], index, split)
            np.save(tmp / f"{split}.npy", ids)
            stats["splits"][split] = split_stats(tokens[split], oov)
        atomic_write_text(tmp / "vocab.txt", "".join(f"{w}\n" for w in vocab))
    atomic_write_json(stats_path, stats)
    return stats


def load_prepared(prepared_dir: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read the vocabulary and the id arrays of a prepared corpus."""
    prepared_dir = Path(prepared_dir)
    vocab = (prepared_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    arrays = {split: np.load(prepared_dir / f"{split}.npy") for split in SPLITS}
    return vocab, arrays
