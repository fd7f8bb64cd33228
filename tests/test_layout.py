"""The code keeps the shape the README's "How the code is laid out" describes.

Static checks of the source: no driver kind named outside machines/drivers/, no import
circle among dockerdash's modules (function-level imports count), no `_private` name
imported from another module, only the listed modules at the top of machines/, modules
under 400 lines and functions under 60. The layers are import-linter's (`make lint`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from machines.drivers import REGISTRY

from .helpers import ROOT

SOURCES = [
    p
    for folder in ("dockerdash", "machines")
    for p in sorted((ROOT / folder).rglob("*.py"))
    if "migrations" not in p.parts
]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_no_driver_kind_is_named_outside_the_drivers():
    kinds = "|".join(re.escape(k) for k in REGISTRY)
    # A kind as a string literal on a line about drivers ("container" alone is also a word).
    literal = re.compile(rf"""["']({kinds})["']""")
    about_drivers = re.compile(r"kind|driver|DRIVERS", re.IGNORECASE)
    offenders = []
    for path in [*SOURCES, *TEMPLATES]:
        if "drivers" in path.relative_to(ROOT).parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line) and about_drivers.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST):
    """Every import statement that runs: at module level and inside functions (a circle hidden
    in a function is still a circle), but not `if TYPE_CHECKING:` ones (they never run)."""
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking(node):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _import_nodes(node)


def _base(node: ast.ImportFrom, path: Path, module: str) -> str:
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return base


def _imports(path: Path, module: str) -> set[str]:
    """The project modules a module imports, when it is loaded or when a function runs."""
    found = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        else:
            # `from package import submodule` needs the submodule; any other name, the module
            # it comes from (a package's __init__ included).
            base = _base(node, path, module)
            found |= {
                f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                for alias in node.names
            }
    return found


def _is_module(dotted: str) -> bool:
    where = ROOT.joinpath(*dotted.split("."))
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def test_no_module_imports_in_a_circle():
    modules = {_module(p): p for p in SOURCES}
    graph = {
        name: {i for i in _imports(path, name) if i in modules and i != name}
        for name, path in modules.items()
    }
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(" -> ".join([*trail[trail.index(node) :], node]))
            return
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, [*trail, node])
        done.add(node)

    done: set[str] = set()
    for name in graph:
        visit(name, [])
    assert cycles == []


def test_no_module_imports_a_private_name_of_another():
    """`_name` is a module's own: another module that needs it asks for a public name."""
    private = []
    for path in SOURCES:
        module = _module(path)
        for node in _import_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and _base(node, path, module) != module:
                private += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert private == []


# What may sit at the top of machines/ (see README "How the code is laid out"): Django's
# own entry points, the two modules migrations name by dotted path, and the packages.
TOP_LEVEL = {
    "__init__.py",
    "apps.py",
    "admin.py",
    "fields.py",
    "validation.py",
    *("audit", "cli", "dockermachine", "drivers", "engine", "lib", "live", "management"),
    *("migrations", "models", "operations", "pki", "provision", "services", "sockets"),
    *("templatetags", "web", "api", "webhooks", "alerts"),
}


def test_the_top_of_machines_holds_only_the_listed_modules():
    found = {
        p.name
        for p in (ROOT / "machines").iterdir()
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert found - TOP_LEVEL == set()


def test_modules_and_functions_stay_small():
    too_long = []
    for path in SOURCES:
        source = path.read_text()
        lines = source.count("\n")
        if lines >= 400:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    too_long.append(f"{path.relative_to(ROOT)}: {node.name}() {length} lines")
    assert too_long == []


def test_no_test_module_imports_another():
    """Shared test helpers live in helper modules (tests/fleet.py, tests/helpers.py, ...), so
    a test module can change or go without breaking another."""
    borrowed = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(part.startswith("test_") for name in names for part in name.split(".")):
                borrowed.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert borrowed == []
