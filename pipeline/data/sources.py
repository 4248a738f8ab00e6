"""What a corpus source is, how it fails, and fetching a URL: shared by the download stage
(``pipeline/data/download.py``) and the WMT13 rebuild (``pipeline/data/wmt13.py``).

The download code picks the rebuild as one of its sources and the rebuild is built from these
pieces; keeping them here lets both import them without importing each other.
"""

from __future__ import annotations

import http.client
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

NETWORK_TIMEOUT_S = 60


class SourceUnavailable(Exception):
    """One source failed; the next one is tried."""


class PinMismatch(SourceUnavailable):
    """An archive whose bytes are not the pinned ones (checked before extraction)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class ArchiveError(SourceUnavailable):
    """An archive that cannot be read, or lacks the members the corpus needs."""


@dataclass(frozen=True)
class Source:
    description: str
    is_local: bool
    fetch: Callable[[Path], None]  # writes <split>.txt for every file of the corpus into a directory
    verify_pins: bool = True  # False only for the WMT13 rebuild, whose inputs carry the pins


def fetch_url(url: str, dest: Path, timeout: float = NETWORK_TIMEOUT_S) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException (a garbled status line, a body cut short) is no OSError: without it a bad
        # answer from one source would end the download instead of moving on to the next source
        raise SourceUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
