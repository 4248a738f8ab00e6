"""Fetch a corpus, verify every file's pins (sha256 and/or git blob id), and publish it atomically.

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

Archives (tar of any compression, or zip) carry their own pins where one is known (WikiText-2's
zip: sha256; Botha & Blunsom's tar.bz2: git blob id) and are checked before anything is read from
them. A local archive that is corrupt, truncated or laid out differently is an error at once,
naming the file; a network answer that is not the archive (an error page, a redirect document) is
reported as such and the next source is tried.

With ``data.on_missing: skip`` an unobtainable optional corpus (``data.optional``: never PTB or
WikiText-2) becomes a ``MISSING.json`` marker. When the mirror holds only some of its files (the
Botha & Blunsom valid/test files without train), those files are verified and kept beside the
marker, which names the missing ones, so that their statistics can still be reported; the corpus
as a whole stays "data missing".

Two things fail whatever ``on_missing`` says: a mirror that does not exist or is empty (a
configuration error: the error names the path and the layout expected), and a failed fetch over
data that was verified before (that copy is left as it was; it is never replaced by a marker).

``data.source.<corpus>: wmt13-raw`` replaces all of this by the Botha-style rebuild from the raw
WMT13 corpora (``pipeline/data/wmt13.py``), whose own inputs are pinned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from pipeline.data.catalogue import SOURCE_ARCHIVE, SOURCE_WMT13_RAW
from pipeline.data.corpora import Corpus
from pipeline.data.sources import ArchiveError, PinMismatch, Source, SourceUnavailable, fetch_url
from pipeline.errors import ChecksumError, DataFormatError, DataUnavailableError
from pipeline.fsutil import MISSING_MARKER, atomic_directory, atomic_write_json, sha256_file, write_missing_marker

MIRROR_ENV = "SCRN_DATA_MIRROR"
OFFLINE_ENV = "SCRN_OFFLINE"  # "1": never touch the network, use the local mirror only


def git_blob_file(path: Path) -> str:
    """``git hash-object``: SHA-1 over ``blob <size>\\0`` followed by the bytes."""
    path = Path(path)
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_HASHERS = {"sha256": sha256_file, "git-blob": git_blob_file}


def pin_problems(path: Path, pins: dict[str, str], label: str) -> list[str]:
    """One line per pin that ``path`` does not match (empty when every pin matches)."""
    problems = []
    for kind, want in pins.items():
        got = _HASHERS[kind](path)
        if got != want:
            problems.append(f"{label}: expected {kind} {want}, got {got}")
    return problems


def resolve_mirror(params_mirror: str | None) -> Path | None:
    """The local mirror root: ``$SCRN_DATA_MIRROR`` wins over ``data.mirror`` from params.yaml.

    A variable that is set but empty is refused: it reads as "no mirror" to some tools and as the
    current directory to others, and neither is what its author meant."""
    value = os.environ.get(MIRROR_ENV)
    if value is not None and not value.strip():
        raise DataUnavailableError(
            f"{MIRROR_ENV} is set but empty; set it to the mirror directory (laid out like "
            f"{_LAYOUT_EXAMPLE}), or unset it to use data.mirror from params.yaml"
        )
    value = value or params_mirror
    return Path(value).expanduser() if value else None


_LAYOUT_EXAMPLE = "ptb/ptb.train.txt, wikitext-2/wiki.train.tokens, botha-blunsom/fr/train.txt, ..."


def expected_layout(corpus: Corpus) -> str:
    """Where a mirror must hold ``corpus``: its files, or its upstream archive at the root."""
    return (
        f"{', '.join(f.mirror_path for f in corpus.files)}, or {corpus.archive_name} at its root "
        f"(from {corpus.archive_urls[0]})"
    )


def check_mirror(corpus: Corpus, mirror: Path) -> None:
    """A mirror that does not exist or holds nothing is a configuration error, never a missing corpus."""
    problem = None
    if not mirror.exists():
        problem = "does not exist"
    elif not mirror.is_dir():
        problem = "is not a directory"
    elif next(mirror.iterdir(), None) is None:
        problem = "is empty"
    if problem is None:
        return
    offline = f" (with {OFFLINE_ENV}=1 it is the only source)" if not network_allowed() else ""
    raise DataUnavailableError(
        f"corpus {corpus.name!r} could not be obtained: the local mirror {mirror} {problem}{offline}. Set "
        f"{MIRROR_ENV} (or data.mirror in params.yaml) to the directory that holds {expected_layout(corpus)}; "
        f"unset both to use the network only. Nothing was written."
    )


def _corpus_folder_hint(corpus: Corpus, mirror: Path) -> str:
    """A mirror that is the corpus folder itself (``.../data/ptb`` instead of ``.../data``)."""
    if any((mirror / Path(f.mirror_path).name).is_file() for f in corpus.files):
        return (
            f"; {mirror} holds the corpus files themselves: point {MIRROR_ENV} at the directory above the "
            f"corpus folders (here probably {mirror.parent})"
        )
    return ""


def _describe_head(path: Path) -> str:
    head = path.read_bytes()[:120] if path.stat().st_size < (1 << 16) else open(path, "rb").read(120)
    text = head.decode("utf-8", "replace").replace("\n", " ").strip()
    return f"{path.stat().st_size:,} bytes starting {text[:100]!r}"


def _open_members(archive: Path, fmt: str) -> tuple[dict[str, Callable[[], object]], list[str]]:
    """Readers for the regular files of ``archive`` by name (leading "./" removed)."""
    if fmt == "zip":
        if not zipfile.is_zipfile(archive):
            raise ArchiveError(
                f"{archive.name} is not a zip archive ({_describe_head(archive)}); "
                "the server may have answered with an error or redirect document"
            )
        zf = zipfile.ZipFile(archive)
        names = {i.filename.removeprefix("./"): i for i in zf.infolist() if not i.is_dir()}
        return {n: (lambda i=i: zf.open(i)) for n, i in names.items()}, sorted(names)
    tar = tarfile.open(archive)
    members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
    return {n: (lambda m=m: tar.extractfile(m)) for n, m in members.items()}, sorted(members)


def extract_archive_members(archive: Path, corpus: Corpus, dest: Path) -> None:
    """Copy the corpus files out of its archive (tar of any compression tarfile knows, or zip)."""
    try:
        readers, names = _open_members(archive, corpus.archive_format)
        absent = [f.archive_member for f in corpus.files if f.archive_member not in readers]
        if absent:
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} files)" if len(names) > 8 else "")
            raise ArchiveError(
                f"{archive.name} does not have the expected layout: no member "
                f"{', '.join(absent)} (it holds: {shown or 'no files'})"
            )
        for f in corpus.files:
            with readers[f.archive_member]() as src, open(dest / f.filename, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(
            f"{archive.name} is truncated or corrupt, not a readable "
            f"{corpus.archive_format} archive ({type(exc).__name__}: {exc})"
        ) from exc


def _checked_extract(archive: Path, corpus: Corpus, dest: Path) -> None:
    """Verify the archive's own pins, then extract; a mismatch raises PinMismatch."""
    problems = pin_problems(archive, corpus.archive_pins, corpus.archive_name)
    if problems:
        raise PinMismatch(problems)
    extract_archive_members(archive, corpus, dest)


def _mirror_files_source(corpus: Corpus, mirror: Path) -> Source:
    def fetch(dest: Path) -> None:
        absent = [f.mirror_path for f in corpus.files if not (mirror / f.mirror_path).is_file()]
        if absent:
            raise SourceUnavailable(f"{mirror} has no {', '.join(absent)}")
        for f in corpus.files:
            shutil.copyfile(mirror / f.mirror_path, dest / f.filename)

    paths = ", ".join(f.mirror_path for f in corpus.files)
    return Source(f"local mirror {mirror} ({paths})", True, fetch)


def _mirror_archive_source(corpus: Corpus, mirror: Path) -> Source:
    archive = mirror / corpus.archive_name

    def fetch(dest: Path) -> None:
        if not archive.is_file():
            raise SourceUnavailable(f"{archive} does not exist")
        try:
            _checked_extract(archive, corpus, dest)
        except PinMismatch:
            raise
        except ArchiveError as exc:
            raise DataFormatError(
                f"corpus {corpus.name!r}: the local mirror archive {archive} cannot be used: {exc}. Replace it "
                f"with the original {corpus.archive_name} (see ../shared/data/SOURCES.md), or remove it and "
                f"provide the files as {', '.join(f.mirror_path for f in corpus.files)}. Nothing was written."
            ) from exc

    return Source(f"local mirror archive {archive}", True, fetch)


def _url_archive_source(corpus: Corpus, url: str) -> Source:
    def fetch(dest: Path) -> None:
        archive = dest / f".{corpus.archive_name}"
        fetch_url(url, archive)
        try:
            if corpus.archive_format == "zip" and not zipfile.is_zipfile(archive):
                raise ArchiveError(
                    f"the answer is not a zip archive ({_describe_head(archive)}); the URL "
                    "may answer with a redirect or an error document"
                )
            _checked_extract(archive, corpus, dest)
        finally:
            archive.unlink(missing_ok=True)

    return Source(url, False, fetch)


def _url_files_source(corpus: Corpus, index: int) -> Source:
    def fetch(dest: Path) -> None:
        for f in corpus.files:
            fetch_url(f.urls[index], dest / f.filename)

    return Source(", ".join(f.urls[index] for f in corpus.files), False, fetch)


def network_allowed() -> bool:
    return os.environ.get(OFFLINE_ENV) != "1"


def candidate_sources(
    corpus: Corpus, mirror: Path | None, use_network: bool | None = None, source_setting: str = SOURCE_ARCHIVE
) -> list[Source]:
    if use_network is None:
        use_network = network_allowed()
    if source_setting == SOURCE_WMT13_RAW:
        from pipeline.data import wmt13  # heavy imports (sacremoses) only when rebuilding

        return [wmt13.rebuild_source(corpus, mirror, use_network)]
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
        problems += pin_problems(directory / f.filename, f.pins, f"{f.split} ({f.mirror_path})")
    return problems


def _partial_mirror_files(corpus: Corpus, mirror: Path | None) -> tuple[list, list]:
    """(present, absent) corpus files of the per-file mirror layout; present ones are verified."""
    if mirror is None:
        return [], list(corpus.files)
    present = [f for f in corpus.files if (mirror / f.mirror_path).is_file()]
    absent = [f for f in corpus.files if f not in present]
    problems = []
    for f in present:
        problems += pin_problems(mirror / f.mirror_path, f.pins, f"{f.split} ({mirror / f.mirror_path})")
    if problems:
        raise ChecksumError(
            f"corpus {corpus.name!r}: the local mirror holds files that are not the pinned ones:\n  "
            + "\n  ".join(problems)
            + f"\nThe file is corrupt or a different version. Replace it with the original "
            f"(see ../shared/data/SOURCES.md) or point {MIRROR_ENV} elsewhere."
        )
    return present, absent


def verified_copy(corpus: Corpus, out_dir: Path) -> bool:
    """``out_dir`` holds every file of ``corpus`` with the sha256 its ``source.json`` recorded."""
    out_dir = Path(out_dir)
    if (out_dir / MISSING_MARKER).exists() or not (out_dir / "source.json").is_file():
        return False
    try:
        recorded = json.loads((out_dir / "source.json").read_text())["files"]
        return all(
            (out_dir / f.filename).is_file() and sha256_file(out_dir / f.filename) == recorded[f.filename]
            for f in corpus.files
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def download_corpus(
    corpus: Corpus,
    out_dir: Path,
    mirror: Path | None,
    on_missing: str = "error",
    sources: list[Source] | None = None,
    source_setting: str = SOURCE_ARCHIVE,
    optional: bool = True,
) -> dict:
    """Obtain ``corpus`` into ``out_dir`` (``<split>.txt`` files plus ``source.json``).

    Returns the provenance record. With ``on_missing='skip'`` an unobtainable corpus leaves
    a ``MISSING.json`` marker in ``out_dir`` instead of raising, unless ``out_dir`` already holds
    a verified copy (left as it is, and the failure raised). Checksum errors always raise, and so
    does a mirror that does not exist or is empty. ``optional`` False (PTB, WikiText-2) makes
    ``skip`` fail like ``error``; the message then says the corpus cannot be skipped.
    """
    if mirror is not None:
        check_mirror(corpus, Path(mirror))
    if sources is None:
        sources = candidate_sources(corpus, mirror, source_setting=source_setting)
    failures: list[str] = []
    mismatches: list[str] = []
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for source in sources:
        with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.fetch.", dir=out_dir.parent) as tmp:
            tmp_dir = Path(tmp)
            try:
                source.fetch(tmp_dir)
            except PinMismatch as exc:
                if source.is_local:
                    raise ChecksumError(
                        f"corpus {corpus.name!r}: the local mirror archive is not the pinned one "
                        f"({source.description}):\n  " + "\n  ".join(exc.problems) + "\nIt is corrupt, truncated "
                        f"or a different version. Replace it with the original (see ../shared/data/SOURCES.md) or "
                        f"point {MIRROR_ENV} elsewhere. Nothing was written to {out_dir}."
                    ) from exc
                mismatches.append(f"{source.description}:\n    " + "\n    ".join(exc.problems))
                continue
            except SourceUnavailable as exc:
                failures.append(f"{source.description}: {exc}")
                continue
            problems = _checksum_problems(corpus, tmp_dir) if source.verify_pins else []
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
                "files": {f.filename: sha256_file(tmp_dir / f.filename) for f in corpus.files},
                "pins": {f.filename: f.pins for f in corpus.files} if source.verify_pins else "rebuilt (inputs pinned)",
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
        f"Set {MIRROR_ENV} (or data.mirror in params.yaml) to a mirror directory that holds {expected_layout(corpus)}"
    )
    if optional:  # the same words in both modes: the marker of a skipped corpus repeats the error
        hint += (
            f". {corpus.name} is optional (data.optional): with data.on_missing: skip it is marked "
            "'data missing' and the rest of the DAG goes on."
        )
    else:
        hint += f". {corpus.name} is not optional (data.optional): it is never skipped, whatever data.on_missing says."
    present, absent = _partial_mirror_files(corpus, mirror) if source_setting == SOURCE_ARCHIVE else ([], [])
    if source_setting == SOURCE_WMT13_RAW:
        from pipeline.data.wmt13 import MISSING_HINT

        where, hint = "the raw WMT13 inputs of the rebuild (data.source: wmt13-raw) are not available", MISSING_HINT
    elif mirror is None:
        where = "no local mirror is set"
    elif present and absent:
        where = (
            f"the local mirror {mirror} lacks {', '.join(f.mirror_path for f in absent)} "
            f"(it has {', '.join(f.mirror_path for f in present)})"
        )
    else:
        where = f"the local mirror {mirror} lacks it{_corpus_folder_hint(corpus, mirror)}"
    if not any(not s.is_local for s in sources):
        failures.append(f"network not tried ({OFFLINE_ENV}=1)")
    message = (
        f"corpus {corpus.name!r} could not be obtained: {where}, and every source failed:\n  "
        + "\n  ".join(failures or ["(no sources)"])
        + f"\n{hint}"
    )
    if verified_copy(corpus, out_dir):
        raise DataUnavailableError(f"{message}\nThe verified copy already in {out_dir} was left as it was.")
    if on_missing == "skip" and optional:
        kept = {f.filename: mirror / f.mirror_path for f in present} if absent else {}
        write_missing_marker(
            out_dir,
            message,
            files=kept,
            corpus=corpus.name,
            missing_files=[f.mirror_path for f in absent] if kept else [],
            present_splits=[f.split for f in present] if kept else [],
        )
        return {
            "corpus": corpus.name,
            "status": "data_missing",
            "reason": message,
            "present_splits": [f.split for f in present] if kept else [],
        }
    raise DataUnavailableError(message)
