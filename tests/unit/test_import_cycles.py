"""No import cycle inside ``streams``: checked statically from each module's AST.

Every ``import`` and ``from ... import`` counts, also those inside functions: a lazy import
only hides a cycle until the day someone moves it to the top (``cli`` and ``report`` once
imported each other that way). Imports under ``if TYPE_CHECKING:`` do not run and are left
out. ``from a.b import c`` names the module ``a.b.c`` when that is a module, else ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "streams"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The ``streams`` modules a module's code imports."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if m in modules and m != name}


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    modules = set(files)
    return {
        name: imports_of(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", modules)
        for name, path in files.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_streams_has_no_import_cycle() -> None:
    edges = graph()
    assert len(edges) > 50  # the walk found the package
    assert cycles(edges) == []


@pytest.mark.parametrize(("sources", "expected"), [
    ({"a": "import pkg.b", "b": "from pkg import a"}, [["pkg.a", "pkg.b"]]),
    ({"a": "def f():\n    from pkg.b import x", "b": "from . import c", "c": "import pkg.a"},
     [["pkg.a", "pkg.b", "pkg.c"]]),
    ({"a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b", "b": "import pkg.a"}, []),
    ({"a": "import pkg.b", "b": "import os"}, []),
])
def test_the_checker_finds_cycles(tmp_path: Path, sources: dict[str, str], expected: list[list[str]]) -> None:
    """The checker itself: lazy and relative imports count, TYPE_CHECKING ones do not."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in sources.items():
        (pkg / f"{name}.py").write_text(text)
    assert cycles(graph(pkg)) == expected
