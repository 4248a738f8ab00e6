"""The Botha-style tokeniser, its round-trip measurement on the real Botha valid/test lines, and the
WMT13 raw rebuild's preprocessing on small constructed inputs."""

from __future__ import annotations

import dataclasses
import io
import random
import tarfile
from pathlib import Path

import pytest

from pipeline.data import wmt13
from pipeline.data.botha_style import CANDIDATES, CHOSEN_TOKENIZER, botha_tokenise, measure_corpora, roundtrip_agreement
from pipeline.data.corpora import BOTHA_LANGUAGES, get_corpus
from pipeline.data.download import ChecksumError, download_corpus, sha256_file
from pipeline.data.prepare import prepare_corpus
from pipeline.fsutil import read_missing_marker

# Round-trip agreement measured on 2026-11-26 over all valid+test lines (fr/es/de/cs: 6,006 lines,
# ru: 6,004): sacremoses-tuned 98.98 / 98.77 / 98.65 / 96.22 / 98.33 %; sacrebleu 13a 95.79 / 95.59 /
# 94.74 / 94.02 / 95.30 %; intl 37.55 / 96.44 / 94.56 / 94.27 / 94.95 %. The bounds are those figures
# rounded down to the permille: a tokeniser change that loses agreement fails here.
MEASURED_FLOOR = {"fr": 0.989, "es": 0.987, "de": 0.986, "cs": 0.962, "ru": 0.983}


@pytest.mark.parametrize(
    "raw, lang, expected",
    [
        # botha-blunsom.md §7.3: the released data's tokenisation of the cases that matter
        ("L'homme, dit-il.", "fr", "l'homme , dit - il ."),
        ("les sociaux-démocrates", "fr", "les sociaux - démocrates"),
        ("u.a. die 72-jährige", "de", "u.a. die 00 - jährige"),
        ("т.к. во-первых", "ru", "т.к. во - первых"),
        ("ca. 0,5%", "de", "ca. 0,0 %"),
        ("«Sí», dijo en 2011.", "es", '" sí " , dijo en 0000 .'),
        ("vor 15 Jahren. und dann", "de", "vor 00 jahren . und dann"),
    ],
)
def test_botha_tokenise_known_cases(raw, lang, expected):
    assert botha_tokenise(raw, lang) == expected.split()


def test_roundtrip_agreement_counts_exact_lines():
    result = roundtrip_agreement(
        ["l'homme , dit - il .", "u . a . zzz", ""], "fr", ["sacremoses-tuned", "sacrebleu-13a"]
    )
    assert result["lines"] == 2  # the empty line is not counted
    assert result["agreement"]["sacremoses-tuned"] == 0.5  # "u . a ." is re-joined by the detokeniser


@pytest.fixture(scope="module")
def measured(mirror, tmp_path_factory) -> dict:
    """The measurement exactly as the tokenizer-roundtrip stage makes it, on the real files."""
    raw = tmp_path_factory.mktemp("raw")
    for lang in BOTHA_LANGUAGES:
        (raw / f"botha-{lang}").mkdir()
        for split in ("valid", "test"):
            (raw / f"botha-{lang}" / f"{split}.txt").write_bytes(
                (mirror / "botha-blunsom" / lang / f"{split}.txt").read_bytes()
            )
    return measure_corpora(raw, BOTHA_LANGUAGES)


def test_roundtrip_agreement_on_real_botha_lines_chooses_the_tokeniser(measured):
    assert measured["candidates"] == list(CANDIDATES) and measured["chosen"] == CHOSEN_TOKENIZER
    for lang in BOTHA_LANGUAGES:
        r = measured["languages"][lang]
        assert r["status"] == "ok" and r["lines"] == (6004 if lang == "ru" else 6006)
        agreement = r["agreement"]
        assert agreement[CHOSEN_TOKENIZER] >= MEASURED_FLOOR[lang], (lang, agreement)
        assert max(agreement, key=agreement.get) == CHOSEN_TOKENIZER, (lang, agreement)


def test_measure_marks_missing_languages(tmp_path):
    result = measure_corpora(tmp_path, ["fr"])
    assert result["languages"]["fr"] == {"status": "data_missing"}


# ---------------------------------------------------------------------------- WMT13 rebuild


def test_length_filter_follows_cdec_filter_length():
    pairs = (
        [
            ("a b c d e f g h".split(), "a b c d e f g h".split()),  # kept
            (["x"] * 81, ["y"] * 81),  # more than 80 tokens
            (["x"] * 10, ["y"] * 100),  # over 80 on one side
            (["x"] * 2, ["y"] * 30),  # ratio 15 > 9
            (["x"] * 2, ["y"] * 6),  # ratio 3 but both sides < 7: always kept
            ([], ["y"]),  # an empty side
        ]
        + [(["x"] * 10, ["y"] * 10)] * 60
        + [(["x"] * 10, ["y"] * 40)]
    )  # ratio 4: an outlier (> 1.8 sd)
    keep = wmt13.length_filter(pairs)
    assert keep[:6] == [True, False, False, False, True, False]
    assert all(keep[6:66]) and keep[66] is False


def test_length_filter_takes_mean_and_deviation_over_the_judged_pairs_only():
    """The pairs decided otherwise (a side over 80, a ratio over 9, both sides short) stay out of the
    log-ratio statistics, as in cdec; counted in, they would widen the deviation enough to keep
    the (12, 10) pairs."""
    judged = [(["x"] * 10, ["y"] * 10)] * 8 + [(["x"] * 12, ["y"] * 10)] * 2  # 1.8 sd = 0.131 < log 1.2 − mean
    decided = [(["x"] * 10, ["y"] * 100), (["x"] * 2, ["y"] * 30), (["x"] * 2, ["y"] * 6)]
    assert wmt13.length_filter(judged + decided) == [True] * 8 + [False] * 2 + [False, False, True]


def test_read_parallel_reads_a_compressed_archive_in_linear_time(tmp_path, monkeypatch):
    """Counted in compressed bytes read, not seconds: alternating between two members of one gzip
    stream restarts decompression at every buffer refill (80 x the archive here)."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]

    def text(lines):
        return "".join(" ".join(rng.choice(words) for _ in range(8)) + "\n" for _ in range(lines))

    archive = parallel_tgz(tmp_path / "p.tgz", {"p.en": text(20000), "p.de": text(20000)})
    opened, tar_open = [], tarfile.open

    class CountingFile:
        def __init__(self, path):
            self.file, self.bytes_read = open(path, "rb"), 0
            opened.append(self)

        def read(self, size=-1):
            data = self.file.read(size)
            self.bytes_read += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.file, name)

    monkeypatch.setattr(wmt13.tarfile, "open", lambda name, *a, **kw: tar_open(*a, fileobj=CountingFile(name), **kw))
    assert sum(1 for _ in wmt13.read_parallel(archive, ("p.en", "p.de"))) == 20000
    assert sum(f.bytes_read for f in opened) < 5 * archive.stat().st_size
    for f in opened:
        f.file.close()


def test_first_tokens_and_vocabulary():
    sents = [["a", "b"], ["a", "c", "d"], ["e"]]
    assert wmt13.first_tokens(sents, limit=3) == sents[:2]  # the sentence that reaches the limit is included
    out = wmt13.apply_vocabulary({"train": [["a", "b", "a"], ["b", "c"]], "valid": [["a", "z"]], "test": [["c"]]})
    assert out == {"train": ["a b a", "b <unk>"], "valid": ["a <unk>"], "test": ["<unk>"]}


def test_build_splits_from_raw_text():
    pairs = [
        ("The house.", "La maison-mère, 1999."),
        ("Yes!", "Oui !"),
        ("The house.", "La maison-mère, 2000."),
        ("A very long line " * 30, "Une ligne " * 60),
    ]  # 120 target tokens: filtered out
    out = wmt13.build_splits(pairs, ["La maison, dit-il."], ["Non."], "fr", limit=100)
    assert out["train"] == ["la maison - mère , 0000 .", "<unk> <unk>", "la maison - mère , 0000 ."]
    assert out["valid"] == ["la maison , <unk> - <unk> ."] and out["test"] == ["<unk> ."]
    assert all("<eos>" not in line for lines in out.values() for line in lines)


def parallel_tgz(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture()
def wmt13_mirror(tmp_path, monkeypatch) -> Path:
    """A mirror with small parallel archives in the WMT13 layout (pins injected) and newstest files.
    SCRN_OFFLINE=1: the rebuild's real URLs (statmt.org, sacrebleu) must never be contacted by tests."""
    monkeypatch.setenv("SCRN_OFFLINE", "1")
    monkeypatch.setattr(wmt13, "CACHE_DIR", tmp_path / "cache")
    mirror = tmp_path / "mirror"
    (mirror / "wmt13").mkdir(parents=True)
    en = "Resumption of the session.\nI declare resumed the session.\n"
    de = "Wiederaufnahme der Sitzungsperiode.\nIch erkläre die Sitzungsperiode für wiederaufgenommen.\n"
    ep = parallel_tgz(
        mirror / "wmt13" / "training-parallel-europarl-v7.tgz",
        {"training/europarl-v7.de-en.en": en, "training/europarl-v7.de-en.de": de},
    )
    nc = parallel_tgz(
        mirror / "wmt13" / "training-parallel-nc-v8.tgz",
        {
            "training/news-commentary-v8.de-en.en": "The session.\n",
            "training/news-commentary-v8.de-en.de": "Die Sitzungsperiode 2013.\n",
        },
    )
    specs = tuple(
        dataclasses.replace(spec, sha256=sha256_file(p)) for spec, p in zip(wmt13.TRAINING_ARCHIVES, (ep, nc))
    )
    monkeypatch.setattr(wmt13, "TRAINING_ARCHIVES", specs)
    (mirror / "wmt13" / "newstest2011.de").write_text("Die Sitzungsperiode der Woche.\n", encoding="utf-8")
    (mirror / "wmt13" / "newstest2012.de").write_text("Ich erkläre nichts.\n", encoding="utf-8")
    return mirror


def test_wmt13_rebuild_through_the_download_stage(wmt13_mirror, tmp_path):
    de = get_corpus("botha-de")
    record = download_corpus(
        de,
        tmp_path / "raw",
        wmt13_mirror,
        source_setting="wmt13-raw",
    )
    assert record["source"].startswith("Botha-style rebuild from raw WMT13")
    assert record["pins"] == "rebuilt (inputs pinned)"
    train = (tmp_path / "raw" / "train.txt").read_text(encoding="utf-8").splitlines()
    assert train == [
        "<unk> <unk> sitzungsperiode .",
        "<unk> <unk> die sitzungsperiode <unk> <unk> .",
        "die sitzungsperiode <unk> .",
    ]  # Europarl first, then News Commentary; types seen twice
    assert (tmp_path / "raw" / "valid.txt").read_text(encoding="utf-8") == "die sitzungsperiode <unk> <unk> .\n"
    stats = prepare_corpus(de, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    assert stats["eos_added"] is False and stats["vocab_size"] == 4  # <unk>, sitzungsperiode, ".", die


def test_wmt13_rebuild_refuses_a_wrong_archive_and_is_missing_offline(wmt13_mirror, tmp_path, monkeypatch):
    de = get_corpus("botha-de")
    path = wmt13_mirror / "wmt13" / "training-parallel-nc-v8.tgz"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ChecksumError, match=r"training-parallel-nc-v8.tgz has sha256 [0-9a-f]+, expected"):
        download_corpus(de, tmp_path / "raw", wmt13_mirror, source_setting="wmt13-raw")
    assert not (tmp_path / "raw").exists()
    record = download_corpus(de, tmp_path / "raw", None, source_setting="wmt13-raw", on_missing="skip")
    assert record["status"] == "data_missing"
    assert "training-parallel-europarl-v7.tgz" in read_missing_marker(tmp_path / "raw")["reason"]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["MISSING.json"]
