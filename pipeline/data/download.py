"""Fetch a corpus, verify every file's sha256, and publish it atomically.

Sources are tried in order:

1. a local mirror laid out like ``../shared/data`` (``$SCRN_DATA_MIRROR``, else ``data.mirror``
   in params.yaml): first the per-file layout (e.g. ``ptb/ptb.train.txt``), then the upstream
   archive at the mirror's root (e.g. ``simple-examples.tgz``);
2. the upstream archive URLs;
3. per-file network mirrors (2 and 3 are skipped when ``$SCRN_OFFLINE`` is 1).

A checksum mismatch in a local mirror is an error at once (the user pointed us at those bytes).
A mismatch from a network source is remembered and the next source is tried; if none succeeds
the mismatch is reported as the error. Nothing is written to the output directory unless every
file of the corpus has been verified.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.data.corpora import Corpus
from pipeline.fsutil import atomic_directory, atomic_write_json, write_missing_marker

MIRROR_ENV = "SCRN_DATA_MIRROR"
OFFLINE_ENV = "SCRN_OFFLINE"  # "1": never touch the network, use the local mirror only
NETWORK_TIMEOUT_S = 60


class DataUnavailableError(RuntimeError):
    """No source could provide the corpus (network down, mirror absent, ...)."""


class ChecksumError(RuntimeError):
    """A source provided bytes that are not the pinned ones."""


class SourceUnavailable(Exception):
    """One source failed; the next one is tried."""


@dataclass(frozen=True)
class Source:
    description: str
    is_local: bool
    fetch: Callable[[Path], None]  # writes <split>.txt for every file of the corpus into a directory


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_mirror(params_mirror: str | None) -> Path | None:
    """The local mirror root: ``$SCRN_DATA_MIRROR`` wins over ``data.mirror`` from params.yaml."""
    value = os.environ.get(MIRROR_ENV) or params_mirror
    return Path(value).expanduser() if value else None


def fetch_url(url: str, dest: Path, timeout: float = NETWORK_TIMEOUT_S) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceUnavailable(f"{url}: {exc}") from exc


def extract_archive_members(archive: Path, corpus: Corpus, dest: Path) -> None:
    """Copy the corpus files out of a tar archive (any compression tarfile knows)."""
    try:
        with tarfile.open(archive) as tar:
            by_name = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            for f in corpus.files:
                member = by_name.get(f.archive_member)
                if member is None:
                    raise SourceUnavailable(f"{archive.name} has no member {f.archive_member}")
                with tar.extractfile(member) as src, open(dest / f.filename, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceUnavailable(f"{archive} is not a readable tar archive ({exc})") from exc


def _mirror_files_source(corpus: Corpus, mirror: Path) -> Source:
    def fetch(dest: Path) -> None:
        for f in corpus.files:
            src = mirror / f.mirror_path
            if not src.is_file():
                raise SourceUnavailable(f"{src} does not exist")
            shutil.copyfile(src, dest / f.filename)

    paths = ", ".join(f.mirror_path for f in corpus.files)
    return Source(f"local mirror {mirror} ({paths})", True, fetch)


def _mirror_archive_source(corpus: Corpus, mirror: Path) -> Source:
    archive = mirror / corpus.archive_name

    def fetch(dest: Path) -> None:
        if not archive.is_file():
            raise SourceUnavailable(f"{archive} does not exist")
        extract_archive_members(archive, corpus, dest)

    return Source(f"local mirror archive {archive}", True, fetch)


def _url_archive_source(corpus: Corpus, url: str) -> Source:
    def fetch(dest: Path) -> None:
        archive = dest / f".{corpus.archive_name}"
        fetch_url(url, archive)
        try:
            extract_archive_members(archive, corpus, dest)
        finally:
            archive.unlink(missing_ok=True)

    return Source(url, False, fetch)


def _url_files_source(corpus: Corpus, index: int) -> Source:
    def fetch(dest: Path) -> None:
        for f in corpus.files:
            fetch_url(f.urls[index], dest / f.filename)

    return Source(", ".join(f.urls[index] for f in corpus.files), False, fetch)


def candidate_sources(corpus: Corpus, mirror: Path | None, use_network: bool | None = None) -> list[Source]:
    if use_network is None:
        use_network = os.environ.get(OFFLINE_ENV) != "1"
    sources: list[Source] = []
    if mirror is not None:
        sources += [_mirror_files_source(corpus, mirror), _mirror_archive_source(corpus, mirror)]
    if use_network:
        sources += [_url_archive_source(corpus, url) for url in corpus.archive_urls]
        n_file_mirrors = min((len(f.urls) for f in corpus.files), default=0)
        sources += [_url_files_source(corpus, i) for i in range(n_file_mirrors)]
    return sources


def _checksum_problems(corpus: Corpus, directory: Path) -> list[str]:
    problems = []
    for f in corpus.files:
        got = sha256_file(directory / f.filename)
        if got != f.sha256:
            problems.append(f"{f.split} ({f.mirror_path}): expected sha256 {f.sha256}, got {got}")
    return problems


def download_corpus(
    corpus: Corpus,
    out_dir: Path,
    mirror: Path | None,
    on_missing: str = "error",
    sources: list[Source] | None = None,
) -> dict:
    """Obtain ``corpus`` into ``out_dir`` (``<split>.txt`` files plus ``source.json``).

    Returns the provenance record. With ``on_missing='skip'`` an unobtainable corpus leaves
    a ``MISSING.json`` marker in ``out_dir`` instead of raising; checksum errors always raise.
    """
    if sources is None:
        sources = candidate_sources(corpus, mirror)
    failures: list[str] = []
    mismatches: list[str] = []
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for source in sources:
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.fetch.", dir=out_dir.parent) as tmp:
            tmp_dir = Path(tmp)
            try:
                source.fetch(tmp_dir)
            except SourceUnavailable as exc:
                failures.append(f"{source.description}: {exc}")
                continue
            problems = _checksum_problems(corpus, tmp_dir)
            if problems and source.is_local:
                raise ChecksumError(
                    f"corpus {corpus.name!r}: the local mirror holds files that are not the pinned ones "
                    f"({source.description}):\n  " + "\n  ".join(problems) + "\nThe file is corrupt or a "
                    f"different version. Replace it with the original (see ../shared/data/SOURCES.md) or point "
                    f"{MIRROR_ENV} elsewhere. Nothing was written to {out_dir}."
                )
            if problems:
                mismatches.append(f"{source.description}:\n    " + "\n    ".join(problems))
                continue
            record = {
                "corpus": corpus.name,
                "source": source.description if not source.is_local else "local mirror",
                "files": {f.filename: f.sha256 for f in corpus.files},
            }
            with atomic_directory(out_dir) as staged:
                for f in corpus.files:
                    os.replace(tmp_dir / f.filename, staged / f.filename)
                atomic_write_json(staged / "source.json", record)
            return record

    if mismatches:
        raise ChecksumError(
            f"corpus {corpus.name!r}: every source that answered gave bytes that are not the pinned ones:\n  "
            + "\n  ".join(mismatches)
            + f"\nNothing was written to {out_dir}. Provide a verified copy through {MIRROR_ENV}."
        )
    hint = (
        f"Set {MIRROR_ENV} to a directory laid out like ../shared/data (for {corpus.name}: "
        f"{', '.join(f.mirror_path for f in corpus.files)}, or {corpus.archive_name} at its root), "
        f"or data.mirror in params.yaml; or set data.on_missing: skip to mark it missing and go on."
    )
    where = "no local mirror is set" if mirror is None else f"the local mirror {mirror} lacks it"
    if not any(not s.is_local for s in sources):
        failures.append(f"network not tried ({OFFLINE_ENV}=1)")
    message = (
        f"corpus {corpus.name!r} could not be obtained: {where}, and every source failed:\n  "
        + "\n  ".join(failures or ["(no sources)"])
        + f"\n{hint}"
    )
    if on_missing == "skip":
        write_missing_marker(out_dir, message, corpus=corpus.name)
        return {"corpus": corpus.name, "status": "data_missing", "reason": message}
    raise DataUnavailableError(message)
