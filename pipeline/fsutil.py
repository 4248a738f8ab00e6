"""Atomic file and directory writes: a reader never sees a half-written output.

Every output of the pipeline is written to a temporary sibling first and then renamed into
place; ``os.replace`` is atomic on POSIX when source and target share a filesystem, which
siblings always do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    On any exception the temporary directory is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


MISSING_MARKER = "MISSING.json"


def write_missing_marker(directory: Path, reason: str, files: dict[str, Path] | None = None, **extra: Any) -> None:
    """Replace ``directory`` by one holding a marker that says why its content is absent.

    Used with ``data.on_missing: skip``: every consumer checks :func:`read_missing_marker`
    and propagates the marker instead of failing, so the rest of the DAG still completes.
    ``files`` (name -> source path) are copied in beside the marker: the verified part of a
    corpus that is only partly available (the marker names the missing rest).
    """
    with atomic_directory(directory) as tmp:
        for name, src in (files or {}).items():
            shutil.copyfile(src, tmp / name)
        atomic_write_json(tmp / MISSING_MARKER, {"status": "data_missing", "reason": reason, **extra})


def read_missing_marker(directory: Path) -> dict | None:
    marker = Path(directory) / MISSING_MARKER
    if marker.exists():
        return json.loads(marker.read_text())
    return None
