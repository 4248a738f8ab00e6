"""Inputs that must never destroy good data or pass silently: a wrong or missing mirror, a corpus
that cannot be skipped, a verified copy under a failed fetch, a corrupt local mirror beside a good
network source, and prepared data that is truncated, altered or out of the vocabulary.

A small synthetic corpus stands in for the real ones: the rules are the same, and it needs no
mirror and no network (its "network" sources are file:// URLs)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import data_settings, load_params
from pipeline.data.corpora import PTB, Corpus, CorpusFile
from pipeline.data.download import MIRROR_ENV, download_corpus, resolve_mirror
from pipeline.data.prepare import MANIFEST, load_prepared, prepare_corpus
from pipeline.errors import ChecksumError, DataFormatError, DataUnavailableError
from pipeline.fsutil import read_missing_marker
from stages import download as download_stage

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9/nothing"  # refused at once, no traffic leaves
TEXT = {"train": "the cat sat on the mat\nthe dog sat\n", "valid": "the cat sat\n", "test": "the dog sat on the mat\n"}


@pytest.fixture(autouse=True)
def network_sources_enabled(monkeypatch):
    """The file:// "network" sources below must not be hidden by an SCRN_OFFLINE=1 of the caller."""
    monkeypatch.delenv("SCRN_OFFLINE", raising=False)
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def synthetic(tmp_path: Path, good_network: bool = False, archive_pin: bytes | None = None) -> Corpus:
    """A three-file corpus laid out as ``syn/<split>.txt`` in a mirror; its per-file network source
    serves the right bytes from file:// when ``good_network``, else fails at once."""
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    files = []
    for split, text in TEXT.items():
        (served / f"{split}.txt").write_text(text)
        url = (served / f"{split}.txt").as_uri() if good_network else f"{UNREACHABLE}/{split}.txt"
        files.append(
            CorpusFile(
                split=split,
                mirror_path=f"syn/{split}.txt",
                archive_member=f"syn/{split}.txt",
                sha256=_sha(text.encode()),
                urls=(url,),
            )
        )
    return Corpus(
        name="syn",
        description="synthetic",
        files=tuple(files),
        archive_name="syn.tgz",
        archive_urls=(f"{UNREACHABLE}/syn.tgz",),
        add_eos=True,
        archive_sha256=_sha(archive_pin) if archive_pin is not None else None,
    )


def good_mirror(root: Path) -> Path:
    (root / "syn").mkdir(parents=True)
    for split, text in TEXT.items():
        (root / "syn" / f"{split}.txt").write_text(text)
    return root


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ---------------------------------------------------------------------------- the mirror setting


@pytest.mark.parametrize("on_missing", ["error", "skip"])
def test_a_mirror_that_does_not_exist_is_an_error_whatever_on_missing_says(tmp_path, on_missing):
    corpus = synthetic(tmp_path)
    with pytest.raises(DataUnavailableError) as err:
        download_corpus(corpus, tmp_path / "raw", tmp_path / "no-such-dir", on_missing=on_missing)
    message = str(err.value)
    assert f"the local mirror {tmp_path / 'no-such-dir'} does not exist" in message
    assert "syn/train.txt, syn/valid.txt, syn/test.txt, or syn.tgz at its root" in message  # the layout expected
    assert not (tmp_path / "raw").exists()


def test_an_empty_mirror_or_a_file_is_an_error_even_when_skipping(tmp_path):
    corpus = synthetic(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    for mirror, problem in ((tmp_path / "empty", "is empty"), (tmp_path / "a-file", "is not a directory")):
        with pytest.raises(DataUnavailableError, match=f"the local mirror {mirror} {problem}"):
            download_corpus(corpus, tmp_path / "raw", mirror, on_missing="skip")
    assert not (tmp_path / "raw").exists()


def test_an_empty_mirror_variable_is_an_error(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, "")
    with pytest.raises(DataUnavailableError, match=f"{MIRROR_ENV} is set but empty"):
        resolve_mirror("/some/params/mirror")
    monkeypatch.delenv(MIRROR_ENV)
    assert resolve_mirror("/some/params/mirror") == Path("/some/params/mirror")


def test_the_corpus_folder_instead_of_its_parent_says_to_use_the_parent(tmp_path):
    mirror = good_mirror(tmp_path / "mirror") / "syn"
    with pytest.raises(DataUnavailableError) as err:
        download_corpus(synthetic(tmp_path), tmp_path / "raw", mirror, optional=False)
    assert f"point {MIRROR_ENV} at the directory above the corpus folders (here probably {mirror.parent})" in str(
        err.value
    )


def test_a_required_corpus_is_never_skipped(tmp_path):
    """PTB and WikiText-2 (optional=False) fail under on_missing: skip, and the message says why."""
    mirror = tmp_path / "mirror"
    (mirror / "syn").mkdir(parents=True)
    (mirror / "syn" / "valid.txt").write_text(TEXT["valid"])  # a mirror that lacks train.txt
    with pytest.raises(DataUnavailableError) as err:
        download_corpus(synthetic(tmp_path), tmp_path / "raw", mirror, on_missing="skip", optional=False)
    assert "lacks syn/train.txt, syn/test.txt" in str(err.value)
    assert "syn is not optional (data.optional): it is never skipped" in str(err.value)
    assert not (tmp_path / "raw").exists()


def test_the_download_stage_fails_on_ptb_under_skip(tmp_path, monkeypatch):
    """The repository's params (on_missing: skip) with a mirror that lacks PTB: an error, no marker."""
    mirror = tmp_path / "mirror"
    (mirror / "ptb").mkdir(parents=True)
    (mirror / "ptb" / "README").write_text("the corpus files were never copied here\n")
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setenv("SCRN_OFFLINE", "1")
    assert data_settings(load_params(REPO / "params.yaml")).on_missing == "skip"
    out = tmp_path / "raw" / "ptb"
    with pytest.raises(DataUnavailableError, match="ptb is not optional"):
        download_stage.main(["--corpus", "ptb", "--params", str(REPO / "params.yaml"), "--out", str(out)])
    assert not out.exists() and read_missing_marker(out) is None


# ---------------------------------------------------------------------------- verified data stays


def test_a_failed_fetch_never_replaces_a_verified_copy(tmp_path):
    corpus = synthetic(tmp_path)
    out = tmp_path / "raw"
    download_corpus(corpus, out, good_mirror(tmp_path / "mirror"))
    before = snapshot(out)
    lacking = tmp_path / "lacking"
    (lacking / "syn").mkdir(parents=True)
    (lacking / "syn" / "valid.txt").write_text(TEXT["valid"])
    with pytest.raises(DataUnavailableError, match=f"The verified copy already in {out} was left as it was"):
        download_corpus(corpus, out, lacking, on_missing="skip")
    assert snapshot(out) == before and read_missing_marker(out) is None


def test_a_marker_may_replace_a_copy_that_no_longer_verifies(tmp_path):
    """Only verified data is kept: a copy whose bytes changed since is no good data to protect."""
    corpus = synthetic(tmp_path)
    out = tmp_path / "raw"
    download_corpus(corpus, out, good_mirror(tmp_path / "mirror"))
    (out / "train.txt").write_text("edited\n")
    record = download_corpus(corpus, out, None, on_missing="skip")
    assert record["status"] == "data_missing" and read_missing_marker(out) is not None


# ---------------------------------------------------------------------------- a corrupt local mirror


def test_a_corrupt_local_mirror_file_fails_at_once_though_the_network_has_the_right_bytes(tmp_path):
    corpus = synthetic(tmp_path, good_network=True)
    mirror = good_mirror(tmp_path / "mirror")
    (mirror / "syn" / "valid.txt").write_text("the cat sat!\n")
    assert download_corpus(corpus, tmp_path / "net", None)["files"]  # the network source alone succeeds
    with pytest.raises(ChecksumError, match="the local mirror holds files that are not the pinned ones"):
        download_corpus(corpus, tmp_path / "raw", mirror)
    assert not (tmp_path / "raw").exists()


def test_a_corrupt_local_mirror_archive_fails_at_once_though_the_network_has_the_right_bytes(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "syn.tgz", "w:gz") as tar:
        for split, text in TEXT.items():
            (tmp_path / f"{split}.txt").write_text(text)
            tar.add(tmp_path / f"{split}.txt", arcname=f"syn/{split}.txt")
    corpus = synthetic(tmp_path, good_network=True, archive_pin=b"the pinned archive is another one")
    with pytest.raises(ChecksumError, match="the local mirror archive is not the pinned one"):
        download_corpus(corpus, tmp_path / "raw", mirror)
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------- prepared data


@pytest.fixture()
def prepared(tmp_path) -> Path:
    """data/prepared/syn with its data/stats/syn.json beside it, as the stages lay them out."""
    corpus = synthetic(tmp_path)
    raw = tmp_path / "data" / "raw" / "syn"
    download_corpus(corpus, raw, good_mirror(tmp_path / "mirror"))
    out = tmp_path / "data" / "prepared" / "syn"
    prepare_corpus(corpus, raw, out, tmp_path / "data" / "stats" / "syn.json")
    return out


RERUN = "python -m stages.prepare --corpus syn"


def test_prepare_writes_a_manifest_that_load_checks(prepared):
    manifest = json.loads((prepared / MANIFEST).read_text())
    assert manifest["vocab_size"] == 7 and set(manifest["sha256"]) == {
        "vocab.txt",
        "train.npy",
        "valid.npy",
        "test.npy",
    }
    vocab, arrays = load_prepared(prepared)
    assert len(vocab) == 7 and arrays["train"].dtype == np.int32


@pytest.mark.parametrize("corrupt", ["truncated", "random bytes"])
def test_an_id_file_that_cannot_be_read_whole_names_itself(prepared, corrupt):
    path = prepared / "train.npy"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 8] if corrupt == "truncated" else np.random.default_rng(0).bytes(len(data)))
    with pytest.raises(DataFormatError, match=rf"{path} cannot be read whole.*{RERUN}"):
        load_prepared(prepared)


@pytest.mark.parametrize("with_manifest", [True, False])
def test_an_id_outside_the_vocabulary_names_the_file_and_the_position(prepared, with_manifest):
    if not with_manifest:
        (prepared / MANIFEST).unlink()
    ids = np.load(prepared / "valid.npy")
    ids[2] = 7  # one past the last word
    np.save(prepared / "valid.npy", ids)
    with pytest.raises(
        DataFormatError,
        match=rf"valid\.npy: token id 7 at position 2 is outside the vocabulary "
        rf"of 7 words.*{RERUN}",
    ):
        load_prepared(prepared)


@pytest.mark.parametrize("expected_from", [MANIFEST, "stats"])
def test_a_vocabulary_cut_short_is_refused(prepared, expected_from):
    """Checked against the manifest, or (a directory prepared before manifests) data/stats/<corpus>.json."""
    if expected_from == "stats":
        (prepared / MANIFEST).unlink()
    vocab = prepared / "vocab.txt"
    vocab.write_text("".join(vocab.read_text().splitlines(keepends=True)[:4]))
    with pytest.raises(DataFormatError, match=rf"vocab\.txt has 4 words, but prepare wrote 7.*{RERUN}"):
        load_prepared(prepared)


def test_ids_altered_within_the_vocabulary_fail_the_digest(prepared):
    ids = np.load(prepared / "test.npy")
    ids[[0, 1]] = ids[[1, 0]]
    np.save(prepared / "test.npy", ids)
    with pytest.raises(DataFormatError, match=rf"test\.npy is not the file prepare wrote.*{RERUN}"):
        load_prepared(prepared)


def test_an_unprepared_corpus_says_to_run_prepare(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=rf"{tmp_path / 'syn'} does not exist: the corpus was never "
        rf"prepared here; run `{RERUN}`",
    ):
        load_prepared(tmp_path / "syn")


def test_a_float_array_is_not_token_ids(prepared):
    np.save(prepared / "train.npy", np.load(prepared / "train.npy").astype(np.float32))
    with pytest.raises(DataFormatError, match="train.npy is not a 1-D array of integer token ids"):
        load_prepared(prepared)


def test_the_real_ptb_corpus_passes_every_check(ptb_prepared):
    vocab, arrays = load_prepared(ptb_prepared / "prepared")
    assert len(vocab) == 10000 and len(arrays["train"]) == 929589
    assert json.loads((ptb_prepared / "prepared" / MANIFEST).read_text())["corpus"] == PTB.name


def test_dvc_keeps_verified_raw_data_when_it_reruns_a_download():
    """DVC deletes a stage's outputs before it runs the stage, unless they persist: a download
    re-run by a code change, with a wrong mirror, would otherwise leave data/raw/<corpus> empty,
    even though download_corpus keeps a verified copy when a fetch fails."""
    stage = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())["stages"]["download"]
    assert stage["do"]["outs"] == [{"data/raw/${item}": {"persist": True}}]
