"""The project's import structure, read statically with ``ast``: no import circle among the
modules of pipeline/, stages/ and benchmarks/, and no module that imports another module's
underscore (private) names.

Every import statement counts, those inside functions too: a late import that dodges a circle at
run time (``from pipeline.train import loop  # late: loop imports this module``) is still a
circle in the design. ``from package import name`` is an edge to the submodule ``package.name``
when there is one, else to the package itself; importing a module does not add an edge to its
parent packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "stages", "benchmarks")

# Exceptions to the two rules below; an entry that no longer occurs fails the test, so none goes stale.
ALLOWED_CIRCLES: set[frozenset[str]] = set()
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()  # (importing module, imported module, name)


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = REPO) -> dict[str, Path]:
    return {
        module_name(p, root): p
        for package in PACKAGES
        for p in sorted((root / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def imported_module(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of the module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported project module, name imported from it or None) for every import statement."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            base = imported_module(node, module, path.name == "__init__.py")
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.append((f"{base}.{alias.name}", None))
                elif base in modules:
                    found.append((base, alias.name))
    return found


def private_attribute_uses(path: Path, modules: dict[str, Path], module: str) -> list[tuple[str, str]]:
    """(module, name) for ``alias._name`` where ``alias`` is a project module this file imported."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in modules})
        elif isinstance(node, ast.ImportFrom):
            base = imported_module(node, module, path.name == "__init__.py")
            aliases.update(
                {a.asname or a.name: f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
            )
    return [
        (aliases[node.value.id], node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and is_private(node.attr)
    ]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {m: {target for target, _ in imports(m, p, modules) if target != m} for m, p in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def private_imports(root: Path = REPO) -> set[tuple[str, str, str]]:
    modules = project_modules(root)
    found = set()
    for module, path in modules.items():
        for target, name in imports(module, path, modules):
            if name is not None and is_private(name) and target != module:
                found.add((module, target, name))
        found |= {
            (module, target, name) for target, name in private_attribute_uses(path, modules, module) if target != module
        }
    return found


# ---------------------------------------------------------------------------- the checker itself


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_circle_through_a_late_import_is_found(tmp_path):
    root = write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/train/__init__.py": "",
            "pipeline/train/loop.py": "from pipeline.train.graphed import GraphedStep\n",
            "pipeline/train/graphed.py": "def f():\n    from pipeline.train import loop\n",
            "pipeline/train/step.py": "from . import graphed\n",
            "stages/__init__.py": "",
            "benchmarks/__init__.py": "",
        },
    )
    graph = import_graph(root)
    assert graph["pipeline.train.step"] == {"pipeline.train.graphed"}  # a relative import, resolved
    assert circles(graph) == [frozenset({"pipeline.train.loop", "pipeline.train.graphed"})]


def test_private_names_are_found_imported_or_used_through_a_module(tmp_path):
    root = write(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/config.py": "def _fail(): pass\ndef public(): pass\n",
            "pipeline/a.py": "from pipeline.config import _fail, public\n",
            "pipeline/b.py": "from pipeline import config as c\nc._fail()\nc.__name__\n",
            "pipeline/c.py": "from pipeline import config\nconfig.public()\n",
            "stages/__init__.py": "",
            "benchmarks/__init__.py": "",
        },
    )
    assert private_imports(root) == {
        ("pipeline.a", "pipeline.config", "_fail"),
        ("pipeline.b", "pipeline.config", "_fail"),
    }


# ---------------------------------------------------------------------------- the project


def test_no_import_circle_among_the_projects_modules():
    found = set(circles(import_graph()))
    assert found - ALLOWED_CIRCLES == set(), "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)
    assert ALLOWED_CIRCLES - found == set(), "allowed circles that no longer occur: remove them from ALLOWED_CIRCLES"


def test_no_module_imports_another_modules_private_names():
    found = private_imports()
    assert found - ALLOWED_PRIVATE == set(), "private names imported: " + ", ".join(
        f"{m} uses {t}.{n}" for m, t, n in sorted(found - ALLOWED_PRIVATE)
    )
    assert ALLOWED_PRIVATE - found == set(), "allowed private imports that no longer occur: remove them"
