"""Download (mirror, archive, checksum, no source, on_missing) and preparation on real PTB."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import download
from pipeline.data.corpora import PTB
from pipeline.data.download import ChecksumError, DataUnavailableError, candidate_sources, download_corpus
from pipeline.data.prepare import EOS, UNK, load_prepared, prepare_corpus
from pipeline.data.sources import SourceUnavailable, fetch_url
from pipeline.fsutil import read_missing_marker
from tests.stage_cli import run_stage

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9/nothing"  # discard port on loopback: refused at once, no traffic leaves


@pytest.fixture(autouse=True)
def network_sources_enabled(monkeypatch):
    """These tests serve "network" sources from file:// and refused loopback URLs, so SCRN_OFFLINE
    (which CI sets to keep real traffic away) must not hide them."""
    monkeypatch.delenv("SCRN_OFFLINE", raising=False)


def offline(corpus=PTB):
    """The corpus with every network URL replaced by one that fails immediately."""
    files = tuple(dataclasses.replace(f, urls=(f"{UNREACHABLE}/{f.split}.txt",)) for f in corpus.files)
    return dataclasses.replace(corpus, files=files, archive_urls=(f"{UNREACHABLE}/simple-examples.tgz",))


def copy_mirror(src: Path, dst: Path) -> Path:
    (dst / "ptb").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copyfile(src / "ptb" / f"ptb.{split}.txt", dst / "ptb" / f"ptb.{split}.txt")
    return dst


def make_archive(mirror: Path, path: Path) -> Path:
    """simple-examples.tgz with Mikolov's layout (members under ./simple-examples/data/)."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "valid", "test"):
            tar.add(mirror / "ptb" / f"ptb.{split}.txt", arcname=f"./simple-examples/data/ptb.{split}.txt")
    return path


def test_mirror_files_are_verified_and_published(mirror, tmp_path):
    record = download_corpus(PTB, tmp_path / "raw", mirror)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["source.json", "test.txt", "train.txt", "valid.txt"]
    assert record["files"]["train.txt"] == PTB.file("train").sha256
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]  # no temporary leftovers


def test_corrupt_mirror_file_is_refused_and_nothing_written(mirror, tmp_path):
    bad = copy_mirror(mirror, tmp_path / "mirror")
    path = bad / "ptb" / "ptb.valid.txt"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01
    path.write_bytes(bytes(data))
    out = tmp_path / "out" / "ptb"
    with pytest.raises(ChecksumError) as err:
        download_corpus(offline(), out, bad)
    assert "valid" in str(err.value) and PTB.file("valid").sha256 in str(err.value)
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_no_mirror_and_no_network_names_the_env_variable(tmp_path):
    out = tmp_path / "ptb"
    with pytest.raises(DataUnavailableError, match="SCRN_DATA_MIRROR"):
        download_corpus(offline(), out, None)
    assert not out.exists()


def test_archive_in_mirror_and_archive_url(mirror, tmp_path, monkeypatch):
    archive_mirror = tmp_path / "archive-mirror"
    archive_mirror.mkdir()
    make_archive(mirror, archive_mirror / "simple-examples.tgz")
    extracted, extract = [], download._checked_extract
    monkeypatch.setattr(
        download, "_checked_extract", lambda archive, *a: extracted.append(archive) or extract(archive, *a)
    )
    record = download_corpus(offline(), tmp_path / "a", archive_mirror)
    assert record["source"] == "local mirror" and extracted == [archive_mirror / "simple-examples.tgz"]
    assert (tmp_path / "a" / "train.txt").read_bytes() == (mirror / "ptb" / "ptb.train.txt").read_bytes()

    # the upstream archive fetched over a URL (file:// here), no mirror at all
    url_corpus = dataclasses.replace(offline(), archive_urls=((archive_mirror / "simple-examples.tgz").as_uri(),))
    record = download_corpus(url_corpus, tmp_path / "b", None)
    assert record["source"].startswith("file://")
    assert (tmp_path / "b" / "test.txt").read_bytes() == (mirror / "ptb" / "ptb.test.txt").read_bytes()


def test_network_answer_with_wrong_bytes_is_a_checksum_error(tmp_path):
    """An error page instead of the archive, then wrong per-file bytes: never accepted."""
    page = tmp_path / "error.html"
    page.write_text("<Error><Code>PermanentRedirect</Code></Error>")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(" not ptb \n")
    corpus = offline()
    corpus = dataclasses.replace(
        corpus,
        archive_urls=(page.as_uri(),),
        files=tuple(dataclasses.replace(f, urls=(wrong.as_uri(),)) for f in corpus.files),
    )
    with pytest.raises(ChecksumError, match="not the pinned ones"):
        download_corpus(corpus, tmp_path / "out", None)
    assert not (tmp_path / "out").exists()


def test_a_garbled_http_answer_is_an_unavailable_source_not_a_crash(tmp_path, monkeypatch):
    """http.client's errors are no OSError: a garbled status line must still count as one source
    failing (so the next is tried), never end the stage with a traceback."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    server = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"garbage\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/simple-examples.tgz"
    try:
        with pytest.raises(SourceUnavailable, match="BadStatusLine"):
            fetch_url(url, tmp_path / "simple-examples.tgz", timeout=10)
    finally:
        server.close()


def test_on_missing_skip_writes_marker_that_prepare_passes_on(tmp_path):
    record = download_corpus(offline(), tmp_path / "raw", None, on_missing="skip")
    assert record["status"] == "data_missing"
    assert "SCRN_DATA_MIRROR" in read_missing_marker(tmp_path / "raw")["reason"]
    stats = prepare_corpus(PTB, tmp_path / "raw", tmp_path / "prepared", tmp_path / "stats.json")
    assert stats["status"] == "data_missing"
    assert read_missing_marker(tmp_path / "prepared") is not None
    assert json.loads((tmp_path / "stats.json").read_text())["status"] == "data_missing"


def test_candidate_sources_order(tmp_path):
    descriptions = [s.description for s in candidate_sources(PTB, tmp_path)]
    assert descriptions[0].startswith("local mirror") and descriptions[1].startswith("local mirror archive")
    assert descriptions[2] == PTB.archive_urls[0]
    assert [s.description for s in candidate_sources(PTB, None)][0] == PTB.archive_urls[0]
    assert all(s.is_local for s in candidate_sources(PTB, tmp_path, use_network=False))


def test_offline_env_skips_network_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRN_OFFLINE", "1")
    assert [s.is_local for s in candidate_sources(PTB, tmp_path)] == [True, True]
    with pytest.raises(DataUnavailableError, match="network not tried"):
        download_corpus(PTB, tmp_path / "out", None)


def test_download_stage_cli_reports_missing_source(tmp_path):
    env = {**os.environ, "SCRN_DATA_MIRROR": str(tmp_path / "empty-mirror"), "SCRN_OFFLINE": "1"}
    (tmp_path / "params.yaml").write_text("data: {on_missing: error, mirror: null}\n")
    proc = run_stage(
        "download", "--corpus", "ptb", "--params", tmp_path / "params.yaml", "--out", tmp_path / "out", env=env
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: corpus 'ptb' could not be obtained")
    assert "SCRN_DATA_MIRROR" in proc.stderr and "SCRN_OFFLINE=1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- prepare


def test_ptb_prepared_statistics(ptb_prepared):
    """Issue acceptance: 929,589 / 73,760 / 82,430 tokens with <eos>, vocabulary 10,000."""
    stats = json.loads((ptb_prepared / "stats.json").read_text())
    assert stats["vocab_size"] == 10000
    assert {s: v["tokens"] for s, v in stats["splits"].items()} == {"train": 929589, "valid": 73760, "test": 82430}
    assert all(v["oov"] == 0 for v in stats["splits"].values())
    assert stats["splits"]["train"]["types"] == 10000
    vocab, arrays = load_prepared(ptb_prepared / "prepared")
    assert vocab[0] == "the" and EOS in vocab and UNK in vocab
    assert arrays["train"].dtype == np.int32 and len(arrays["valid"]) == 73760
    first_line = (ptb_prepared / "raw" / "train.txt").read_text().splitlines()[0].split()
    decoded = [vocab[i] for i in arrays["train"][: len(first_line) + 1]]
    assert decoded == first_line + [EOS]


def test_prepare_vocab_order_eos_and_oov(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "train.txt").write_text(" b a b <unk> \n\n c b \n")
    (raw / "valid.txt").write_text(" a zebra \n")
    (raw / "test.txt").write_text(" c \n")
    stats = prepare_corpus(PTB, raw, tmp_path / "prepared", tmp_path / "stats.json")
    vocab, arrays = load_prepared(tmp_path / "prepared")
    assert vocab == [EOS, "b", "<unk>", "a", "c"]  # by count (3, 3, 1, 1, 1), ties by code point
    assert [vocab[i] for i in arrays["valid"]] == ["a", UNK, EOS]
    assert stats["splits"]["valid"] == {
        "tokens": 3,
        "types": 3,
        "oov": 1,
        "unk": 1,
        "unk_share": 0.333333,
        "type_token_ratio": 1.0,
    }
    assert stats["splits"]["train"]["tokens"] == 9  # blank line still yields an <eos>
