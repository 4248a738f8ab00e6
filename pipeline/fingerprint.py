"""Hashes of the code each stage runs: one small JSON per stage module that changes exactly
when that code does.

DVC re-runs a stage when a dependency's hash changes, and copies every dependency, with its hash,
into dvc.lock, which it parses and rewrites around every stage (on a 2-core machine the lock's size
costs about 0.6 ms per line per stage). So no stage lists code paths: the ``code`` stage
(``python -m stages.fingerprint``) depends on pipeline/ and stages/ as a whole and writes, for each
stage module of dvc.yaml, the sha256 of every project file that module can load
(:func:`stage_code`) to results/code/<module>.json; each stage depends on its own file. An edit
re-runs the ``code`` stage (seconds) and, after it, only the stages whose code it changed: Python
files are hashed by their syntax tree without docstrings (:func:`code_digest`), so comments and
docstrings change nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
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
        raise FileNotFoundError(f"{path}: no such file or directory to fingerprint")
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix not in IGNORED_SUFFIXES and not IGNORED_DIRS.intersection(p.relative_to(path).parts)
    )


DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def code_digest(path: Path) -> str:
    """sha256 of what a file means as code. A Python file is hashed as its syntax tree without
    docstrings (the parser already drops comments and layout), so that an edit of comments or
    docstrings re-runs nothing; any other file, and Python that does not parse, as its bytes."""
    data = Path(path).read_bytes()
    if Path(path).suffix == ".py":
        try:
            tree = ast.parse(data, filename=str(path))
        except SyntaxError:
            return hashlib.sha256(data).hexdigest()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, DOCSTRING_OWNERS)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        data = ast.dump(tree, include_attributes=False).encode()
    return hashlib.sha256(data).hexdigest()


def fingerprint(paths: list[str], root: Path = Path(".")) -> dict[str, str]:
    """The code digest of every source file under ``paths`` (relative to ``root``), keyed by POSIX path."""
    root = Path(root)
    return {f.relative_to(root).as_posix(): code_digest(f) for p in paths for f in source_files(root / p)}


def digest(files: dict[str, str]) -> str:
    """One sha256 standing for a whole fingerprint (its paths and their hashes)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def module_file(name: str, root: Path) -> Path | None:
    """The project source file of module ``name`` under ``root``, if it is one of ours."""
    base = Path(root).joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def absolute_module(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The module a ``from ... import`` statement of file ``path`` names, relative ones resolved."""
    if not node.level:
        return node.module
    package = list(path.relative_to(root).with_suffix("").parts)
    package = package[:-1]  # a module's package; for __init__.py, the package itself
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def is_type_checking_block(node: ast.stmt) -> bool:
    """``if TYPE_CHECKING:``: imports for type annotations only, never run."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def statements(body: list[ast.stmt]):
    """Every statement in ``body``, nested ones (in functions, classes, ifs, trys) included:
    imports are statements, so expressions need not be visited. The body of an ``if
    TYPE_CHECKING:`` is left out: it never runs."""
    for node in body:
        if is_type_checking_block(node):
            yield from statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from statements(getattr(node, field, None) or [])


def import_closure(module: str, root: Path) -> set[Path]:
    """Project source files that running ``module`` can load: the closure of every import
    statement, read statically, so that imports inside functions count too (stages.train imports
    torch and the models only once it knows the data is there). Modules outside ``root`` (the
    standard library, installed packages) are not followed."""
    root = Path(root)
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        for path in filter(None, (module_file(".".join(parts[:i]), root) for i in range(1, len(parts) + 1))):
            if path in seen:
                continue
            seen.add(path)
            for node in statements(ast.parse(path.read_text(), filename=str(path)).body):
                if isinstance(node, ast.Import):
                    todo += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = absolute_module(node, path, root)
                    # `from package import module` imports a submodule; `from module import name` does not
                    todo += [base] + [
                        f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}", root)
                    ]
    return seen


def package_data(package_dir: Path) -> list[Path]:
    """The files other than Python sources that a package ships (templates, tables): those in its
    folder and in subfolders that are not packages themselves, which have their own entry."""
    found = []
    for path in source_files(package_dir):
        rel = path.relative_to(package_dir)
        in_subpackage = any(
            (package_dir.joinpath(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts))
        )
        if path.suffix != ".py" and not in_subpackage:
            found.append(path)
    return found


def stage_code(module: str, root: Path = Path(".")) -> list[str]:
    """Every project file that ``python -m <module>`` can read as code, relative to ``root``,
    sorted: its import closure and the data files of the packages in it."""
    root = Path(root)
    files = import_closure(module, root)
    files |= {data for f in list(files) if f.name == "__init__.py" for data in package_data(f.parent)}
    return sorted(f.relative_to(root).as_posix() for f in files)
