"""Content hashes of source files: one small JSON that changes exactly when the code does.

DVC re-runs a stage when a dependency's hash changes. The 102 train@ stages all run the same
code; instead of each listing its 11 paths (DVC copies every listed path, with its hash, into
dvc.lock and parses and rewrites that file around every stage), the ``train-code`` stage hashes
them once into results/train-code.json and every train stage depends on that one file.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

# the same files .dvcignore hides from DVC: bytecode that Python writes beside the sources
IGNORED_DIRS = frozenset({"__pycache__"})
IGNORED_SUFFIXES = frozenset({".pyc"})


def source_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else every file below it, sorted; bytecode left out."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory to fingerprint (is the dependency list in "
                                f"dvc.yaml out of date?)")
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and p.suffix not in IGNORED_SUFFIXES
                  and not IGNORED_DIRS.intersection(p.relative_to(path).parts))


def fingerprint(paths: list[str], root: Path = Path(".")) -> dict[str, str]:
    """sha256 of every source file under ``paths`` (relative to ``root``), keyed by POSIX path."""
    root = Path(root)
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for p in paths for f in source_files(root / p)}
