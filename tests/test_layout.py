"""The code keeps the shape the README's "How the code is laid out" describes.

Static checks of the source: no driver kind named outside machines/drivers/, no import
circle among dockerdash's modules, modules under 400 lines and functions under 60.
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


def _imports(path: Path, module: str) -> set[str]:
    """The project modules a module imports when it is loaded (not inside functions)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_no_module_imports_in_a_circle():
    modules = {_module(p): p for p in SOURCES}
    graph = {
        name: {i for i in _imports(path, name) if i in modules and i != name}
        for name, path in modules.items()
    }
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycle = trail[trail.index(node) :]
            # A package importing its own submodules is how packages work, not a circle.
            if not all(m.startswith(node + ".") or m == node for m in cycle):
                cycles.append(" -> ".join([*cycle, node]))
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
