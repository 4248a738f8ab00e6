"""The command lines of the stages and benchmarks: ``python -m <module> --help`` prints the module's
docstring as written, and a path option names its default."""

from __future__ import annotations

import argparse
from pathlib import Path


def command_parser(module: str, doc: str | None, **kwargs) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``, its description ``doc`` with the line breaks kept."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )


def add_path(parser: argparse.ArgumentParser, flag: str, default: str | Path, what: str) -> None:
    """A ``Path`` option whose help is ``what`` followed by its default."""
    parser.add_argument(flag, type=Path, default=Path(default), help=f"{what} (default: %(default)s)")


def add_params(parser: argparse.ArgumentParser) -> None:
    """``--params``: the params file that holds the runs and profiles."""
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
