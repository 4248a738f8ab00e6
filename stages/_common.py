"""What every stage shares: clear one-paragraph errors instead of tracebacks for expected failures."""

from __future__ import annotations

import sys
from typing import Callable

from pipeline.errors import EXPECTED_ERRORS


def run_stage(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    try:
        code = main(argv)
    except EXPECTED_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
