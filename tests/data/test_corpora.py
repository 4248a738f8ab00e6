"""WikiText-2 and the Botha & Blunsom corpora: real-data statistics, constructed archives with the
real layout, pins by git blob id, partial mirrors under on_missing, and bad input."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.data.corpora import BOTHA, BOTHA_ARCHIVE_GIT_BLOB, CORPORA, WIKITEXT2, get_corpus
from pipeline.data.download import (
    ChecksumError,
    DataFormatError,
    DataUnavailableError,
    download_corpus,
    git_blob_file,
    sha256_file,
)
from pipeline.data.prepare import UNK, load_prepared, prepare_corpus
from pipeline.fsutil import read_missing_marker
from tests.conftest import download_and_prepare
from tests.stage_cli import run_stage

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9/nothing"
FR = get_corpus("botha-fr")


@pytest.fixture(autouse=True)
def network_sources_enabled(monkeypatch):
    """Network sources here are file:// and refused loopback URLs; SCRN_OFFLINE must not hide them."""
    monkeypatch.delenv("SCRN_OFFLINE", raising=False)


def offline(corpus):
    files = tuple(dataclasses.replace(f, urls=(f"{UNREACHABLE}/{f.split}",)) for f in corpus.files)
    return dataclasses.replace(corpus, files=files, archive_urls=(f"{UNREACHABLE}/{corpus.archive_name}",))


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# ---------------------------------------------------------------------------- WikiText-2 (real data)


@pytest.fixture(scope="session")
def wikitext2_prepared(mirror, tmp_path_factory) -> Path:
    return download_and_prepare(WIKITEXT2, tmp_path_factory.mktemp("wt2"), mirror)


def test_wikitext2_prepared_statistics(wikitext2_prepared):
    """Issue acceptance: 2,088,628 / 217,646 / 245,569 tokens with <eos>, vocabulary 33,278."""
    stats = json.loads((wikitext2_prepared / "stats.json").read_text())
    assert stats["status"] == "ok" and stats["eos_added"] is True
    assert {s: v["tokens"] for s, v in stats["splits"].items()} == {"train": 2088628, "valid": 217646, "test": 245569}
    assert stats["vocab_size"] == 33278
    assert all(v["oov"] == 0 for v in stats["splits"].values())
    vocab, arrays = load_prepared(wikitext2_prepared / "prepared")
    assert len(vocab) == 33278 and len(arrays["test"]) == 245569


def make_zip(files: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def small_wikitext(tmp_path: Path):
    """A WikiText-2-shaped corpus of small files, with its pins injected."""
    texts = {"train": b" = Title = \n\n the cat sat <unk> \n", "valid": b" the cat \n", "test": b" sat \n"}
    zip_path = make_zip({f"wikitext-2/wiki.{s}.tokens": t for s, t in texts.items()}, tmp_path / "wikitext-2-v1.zip")
    files = []
    for f in offline(WIKITEXT2).files:
        p = tmp_path / f"{f.split}.bin"
        p.write_bytes(texts[f.split])
        files.append(dataclasses.replace(f, sha256=sha256_file(p), git_blob=git_blob_file(p)))
    corpus = dataclasses.replace(offline(WIKITEXT2), files=tuple(files), archive_sha256=sha256_file(zip_path))
    return corpus, zip_path


def test_wikitext2_zip_from_mirror_and_url(tmp_path):
    corpus, zip_path = small_wikitext(tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "wikitext-2-v1.zip").write_bytes(zip_path.read_bytes())
    download_corpus(corpus, tmp_path / "a", mirror)
    assert (tmp_path / "a" / "train.txt").read_bytes() == b" = Title = \n\n the cat sat <unk> \n"
    stats = prepare_corpus(corpus, tmp_path / "a", tmp_path / "pa", tmp_path / "a.json")
    assert stats["splits"]["train"]["tokens"] == (3 + 1) + 1 + (4 + 1)  # the blank line still gets its <eos>

    url_corpus = dataclasses.replace(corpus, archive_urls=(zip_path.as_uri(),))
    record = download_corpus(url_corpus, tmp_path / "b", None)
    assert record["source"] == zip_path.as_uri()


def test_wikitext2_redirect_document_is_detected_and_next_source_used(tmp_path):
    """The path-style S3 URL can answer with a PermanentRedirect XML: reported as "not a zip",
    then the per-file mirror is used."""
    corpus, _ = small_wikitext(tmp_path)
    page = tmp_path / "s3.xml"
    page.write_text(
        '<?xml version="1.0"?><Error><Code>PermanentRedirect</Code>'
        "<Endpoint>research.metamind.io.s3.amazonaws.com</Endpoint></Error>"
    )
    per_file = []
    for f in corpus.files:
        p = tmp_path / f"wiki.{f.split}.tokens"
        p.write_bytes((tmp_path / f"{f.split}.bin").read_bytes())
        per_file.append(dataclasses.replace(f, urls=(p.as_uri(),)))
    corpus = dataclasses.replace(corpus, archive_urls=(page.as_uri(),), files=tuple(per_file))
    record = download_corpus(corpus, tmp_path / "out", None)
    assert record["source"].endswith(
        "wiki.train.tokens, "
        + (tmp_path / "wiki.valid.tokens").as_uri()
        + ", "
        + (tmp_path / "wiki.test.tokens").as_uri()
    )
    # with no per-file mirror the error says what the answer was
    corpus = dataclasses.replace(corpus, files=tuple(dataclasses.replace(f, urls=()) for f in corpus.files))
    with pytest.raises(DataUnavailableError, match="not a zip archive.*PermanentRedirect"):
        download_corpus(corpus, tmp_path / "out2", None)
    assert not (tmp_path / "out2").exists()


def test_truncated_archive_in_mirror_is_refused_naming_the_file(tmp_path):
    corpus, zip_path = small_wikitext(tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "wikitext-2-v1.zip").write_bytes(zip_path.read_bytes()[:-40])
    with pytest.raises(ChecksumError, match="wikitext-2-v1.zip.*expected sha256"):  # the archive pin catches it
        download_corpus(corpus, tmp_path / "out", mirror)
    # without an archive pin, reading it fails: a DataFormatError naming the file and the fix
    unpinned = dataclasses.replace(corpus, archive_sha256=None)
    with pytest.raises(
        DataFormatError,
        match=r"wikitext-2-v1.zip cannot be used: .*(truncated or corrupt|not a zip)"
        r".*Replace it",
    ):
        download_corpus(unpinned, tmp_path / "out", mirror)
    assert listing(tmp_path) == ["mirror", "test.bin", "train.bin", "valid.bin", "wikitext-2-v1.zip"]


# ---------------------------------------------------------------------------- Botha & Blunsom archive


def test_git_blob_ids_match_sources_md(mirror):
    """Our git-hash-object reimplementation reproduces the blob ids listed in SOURCES.md."""
    for corpus in BOTHA:
        for split in ("valid", "test"):
            f = corpus.file(split)
            assert git_blob_file(mirror / f.mirror_path) == f.git_blob
    proc = subprocess.run(
        ["git", "hash-object", str(mirror / FR.file("valid").mirror_path)], capture_output=True, text=True
    )
    if proc.returncode == 0:
        assert proc.stdout.strip() == FR.file("valid").git_blob


def generated_train(mirror: Path, lang: str, n_lines: int = 400) -> bytes:
    """A stand-in train.in: lines sampled from the real valid/test words, closed over their types."""
    rng = random.Random(lang)
    words = sorted(
        {
            w
            for s in ("valid", "test")
            for w in (mirror / "botha-blunsom" / lang / f"{s}.txt").read_text(encoding="utf-8").split()
        }
    )
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 25))) for _ in range(n_lines)]
    lines.append(" ".join(words))  # every type at least once, so valid/test stay in-vocabulary
    return ("\n".join(lines) + "\n").encode("utf-8")


@pytest.fixture(scope="session")
def botha_archive(mirror, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """icml14-data.tar.bz2 with the real layout: real valid/test files, generated train files."""
    root = tmp_path_factory.mktemp("botha-archive")
    trains = {}
    with tarfile.open(root / "icml14-data.tar.bz2", "w:bz2") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("icml14-data.readme", b"constructed for tests\n")
        for corpus in BOTHA:
            lang = corpus.language
            trains[lang] = generated_train(mirror, lang)
            add(f"en-{lang}/1m-mono/train.in", trains[lang])
            add(f"en-{lang}/1m-mono/test.in", (mirror / "botha-blunsom" / lang / "valid.txt").read_bytes())
            add(f"en-{lang}/1m-mono/finaltest.in", (mirror / "botha-blunsom" / lang / "test.txt").read_bytes())
            add(f"en-{lang}/1m-mono/vocab", b"")
    return root / "icml14-data.tar.bz2", trains


def injected(corpus, archive: Path, train: bytes, tmp_path: Path):
    """The corpus with the constructed archive's and train file's git blob ids as pins."""
    tmp = tmp_path / f"train-{corpus.language}.in"
    tmp.write_bytes(train)
    files = tuple(
        dataclasses.replace(f, git_blob=git_blob_file(tmp)) if f.split == "train" else f for f in offline(corpus).files
    )
    return dataclasses.replace(offline(corpus), files=files, archive_git_blob=git_blob_file(archive))


@pytest.mark.parametrize("lang", ["fr", "ru"])
def test_botha_archive_end_to_end_with_injected_pins(botha_archive, tmp_path, lang):
    archive, trains = botha_archive
    corpus = injected(get_corpus(f"botha-{lang}"), archive, trains[lang], tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.symlink(archive, mirror / "icml14-data.tar.bz2")
    record = download_corpus(corpus, tmp_path / "raw", mirror)
    assert record["source"] == "local mirror"
    assert (tmp_path / "raw" / "train.txt").read_bytes() == trains[lang]
    stats = prepare_corpus(corpus, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    real = {"fr": (81986, 79044), "ru": (71884, 65489)}[lang]  # SOURCES.md words: no <eos> is added
    assert stats["eos_added"] is False
    assert (stats["splits"]["valid"]["tokens"], stats["splits"]["test"]["tokens"]) == real
    assert stats["splits"]["train"]["tokens"] == len(trains[lang].split())
    vocab, arrays = load_prepared(tmp_path / "prepared")
    assert "<eos>" not in vocab and UNK in vocab and stats["vocab_size"] == len(vocab)
    assert all(s["oov"] == 0 for s in stats["splits"].values())

    # the same archive fetched from its upstream URL (file:// here)
    url_corpus = dataclasses.replace(corpus, archive_urls=(archive.as_uri(),))
    assert download_corpus(url_corpus, tmp_path / "raw2", None)["source"] == archive.as_uri()


def test_constructed_archive_is_refused_under_the_default_pins(botha_archive, tmp_path):
    archive, _ = botha_archive
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.symlink(archive, mirror / "icml14-data.tar.bz2")
    with pytest.raises(ChecksumError) as err:
        download_corpus(offline(FR), tmp_path / "raw", mirror)
    assert "icml14-data.tar.bz2" in str(err.value) and f"expected git-blob {BOTHA_ARCHIVE_GIT_BLOB}" in str(err.value)
    assert not (tmp_path / "raw").exists()
    # with only the archive pin injected, the generated train.in still fails its own pin (SOURCES.md blob id)
    only_archive = dataclasses.replace(offline(FR), archive_git_blob=git_blob_file(archive))
    with pytest.raises(ChecksumError, match=f"train.*expected git-blob {FR.file('train').git_blob}"):
        download_corpus(only_archive, tmp_path / "raw", mirror)
    assert listing(tmp_path) == ["mirror"]


def test_unexpected_archive_layout_names_the_members(mirror, tmp_path):
    bad = tmp_path / "mirror"
    bad.mkdir()
    with tarfile.open(bad / "icml14-data.tar.bz2", "w:bz2") as tar:  # Kim's renamed files, not the archive's
        tar.add(mirror / "botha-blunsom" / "fr" / "valid.txt", arcname="data/fr/valid.txt")
    corpus = dataclasses.replace(offline(FR), archive_git_blob=git_blob_file(bad / "icml14-data.tar.bz2"))
    with pytest.raises(
        DataFormatError,
        match=r"icml14-data.tar.bz2 does not have the expected layout: no member "
        r"en-fr/1m-mono/train.in.*data/fr/valid.txt",
    ):
        download_corpus(corpus, tmp_path / "raw", bad)
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------- partial mirror (real Botha valid/test)


def test_real_botha_mirror_lacks_train_error_and_skip_say_the_same(mirror, tmp_path):
    """Only valid/test exist here: 'error' fails naming train.txt; 'skip' writes that same message into the
    marker, keeps the verified valid/test, and prepare reports their statistics as data missing."""
    with pytest.raises(DataUnavailableError) as err:
        download_corpus(offline(FR), tmp_path / "e", mirror)
    message = str(err.value)
    assert "lacks botha-blunsom/fr/train.txt" in message and not (tmp_path / "e").exists()

    record = download_corpus(offline(FR), tmp_path / "raw", mirror, on_missing="skip")
    marker = read_missing_marker(tmp_path / "raw")
    assert record["status"] == "data_missing" and marker["reason"] == message
    assert marker["missing_files"] == ["botha-blunsom/fr/train.txt"] and marker["present_splits"] == ["valid", "test"]
    assert listing(tmp_path / "raw") == ["MISSING.json", "test.txt", "valid.txt"]

    stats = prepare_corpus(FR, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    assert stats["status"] == "data_missing" and stats["missing_splits"] == ["train"]
    assert listing(tmp_path / "prepared") == ["MISSING.json"]
    valid = stats["splits"]["valid"]
    assert (valid["tokens"], valid["types"], valid["oov"]) == (81986, 7573, None)  # SOURCES.md: words, types
    assert valid["unk_share"] == round(valid["unk"] / valid["tokens"], 6) and 0.05 < valid["unk_share"] < 0.15


@pytest.mark.parametrize("lang", ["es", "de", "cs", "ru"])
def test_real_botha_valid_test_statistics(mirror, tmp_path, lang):
    corpus = offline(get_corpus(f"botha-{lang}"))
    download_corpus(corpus, tmp_path / "raw", mirror, on_missing="skip")
    stats = prepare_corpus(corpus, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    expected = {
        "es": (79697, 7327, 78925, 7274),
        "de": (73763, 7367, 73404, 7186),
        "cs": (65861, 9745, 65370, 9813),
        "ru": (71884, 13142, 65489, 11060),
    }[lang]
    s = stats["splits"]
    assert (s["valid"]["tokens"], s["valid"]["types"], s["test"]["tokens"], s["test"]["types"]) == expected


def test_corrupt_botha_mirror_file_is_refused_even_when_skipping(mirror, tmp_path):
    bad = tmp_path / "mirror" / "botha-blunsom" / "fr"
    bad.mkdir(parents=True)
    (bad / "valid.txt").write_bytes((mirror / "botha-blunsom/fr/valid.txt").read_bytes()[:-10])
    (bad / "test.txt").write_bytes((mirror / "botha-blunsom/fr/test.txt").read_bytes())
    with pytest.raises(ChecksumError, match="valid.*expected sha256"):
        download_corpus(offline(FR), tmp_path / "raw", tmp_path / "mirror", on_missing="skip")
    assert not (tmp_path / "raw").exists()


def test_download_cli_prints_the_error_message_in_skip_mode(mirror, tmp_path):
    env = {**os.environ, "SCRN_DATA_MIRROR": str(mirror), "SCRN_OFFLINE": "1"}
    outputs = {}
    for mode in ("error", "skip"):
        (tmp_path / f"{mode}.yaml").write_text(f"data: {{on_missing: {mode}, mirror: null}}\n")
        outputs[mode] = run_stage(
            "download", "--corpus", "botha-de", "--params", tmp_path / f"{mode}.yaml", "--out", tmp_path / mode, env=env
        )
    err, skip = outputs["error"], outputs["skip"]
    assert err.returncode == 1 and skip.returncode == 0 and "Traceback" not in err.stderr
    message = err.stderr.removeprefix("error: ").strip()
    assert "botha-blunsom/de/train.txt" in message and message in skip.stdout
    assert not (tmp_path / "error").exists() and read_missing_marker(tmp_path / "skip")["reason"] == message


# ---------------------------------------------------------------------------- bad text


def text_corpus(tmp_path: Path, texts: dict[str, bytes]):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, data in texts.items():
        (raw / f"{split}.txt").write_bytes(data)
    return raw


@pytest.mark.parametrize(
    "bad, match",
    [
        (b"caf\xe9 au lait\n", r"valid.txt is not UTF-8 text: undecodable bytes at offset 3 \(line 1\)"),
        (b"", r"valid.txt holds no tokens: an empty split"),
        (b"\n \n", r"valid.txt holds no tokens: an empty split"),
    ],
)
def test_undecodable_or_empty_split_is_one_clear_error_and_nothing_written(tmp_path, bad, match):
    raw = text_corpus(tmp_path, {"train": b"a b a\n", "valid": bad, "test": b"a\n"})
    with pytest.raises(DataFormatError, match=match) as err:
        prepare_corpus(FR, raw, tmp_path / "prepared", tmp_path / "stats.json")
    assert "download stage" in str(err.value)
    assert listing(tmp_path) == ["raw"]


def test_prepare_cli_reports_bad_text_without_traceback(tmp_path):
    raw = text_corpus(tmp_path, {"train": b"a b\n", "valid": b"\xff\xfe\n", "test": b"a\n"})
    proc = run_stage(
        "prepare", "--corpus", "botha-fr", "--raw", raw, "--out", tmp_path / "p", "--stats", tmp_path / "s.json"
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "not UTF-8" in proc.stderr
    assert "Traceback" not in proc.stderr and listing(tmp_path) == ["raw"]


def test_registry_has_the_seven_corpora_and_eos_policy():
    assert list(CORPORA) == ["ptb", "wikitext-2", "botha-fr", "botha-es", "botha-de", "botha-cs", "botha-ru"]
    assert [c.add_eos for c in CORPORA.values()] == [True, True, False, False, False, False, False]
    assert get_corpus("botha-ru").sources == ("archive",)
    assert all(c.sources == ("archive", "wmt13-raw") for c in BOTHA[:4])
    assert [FR.file(s).archive_member for s in ("train", "valid", "test")] == [
        "en-fr/1m-mono/train.in",
        "en-fr/1m-mono/test.in",
        "en-fr/1m-mono/finaltest.in",
    ]


# ---------------------------------------------------------------------------- data.source setting


@pytest.mark.parametrize(
    "source, key, expected",
    [
        (
            {"botha-ru": "wmt13-raw"},
            "data.source.botha-ru",
            "expected one of archive, got 'wmt13-raw' (only the published",
        ),
        ({"botha-fr": "raw"}, "data.source.botha-fr", "expected one of archive, wmt13-raw"),
        ({"botha-xx": "archive"}, "data.source.botha-xx", "unknown corpus"),
        ("wmt13-raw", "data.source", "expected a mapping"),
    ],
)
def test_source_setting_is_validated_naming_the_key(source, key, expected):
    from pipeline import config

    params = config.load_params(REPO / "params.yaml")
    params["data"]["source"] = source
    with pytest.raises(config.ParamsError) as err:
        config.validate(params)
    assert key in str(err.value) and expected in str(err.value)


def test_source_setting_defaults_to_the_archive():
    from pipeline import config

    settings = config.data_settings(config.load_params(REPO / "params.yaml"))
    assert config.data_settings({"data": {}}).on_missing == "error"  # the built-in default is strict
    assert settings.corpora == tuple(CORPORA)
    assert {settings.source_for(c) for c in CORPORA} == {"archive"}
    assert config.data_settings({"data": {"source": {"botha-de": "wmt13-raw"}}}).source_for("botha-de") == "wmt13-raw"
