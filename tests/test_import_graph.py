"""The product's import graph is a tree: no cycle, and one composition root.

Every product module's imports are read with ``ast`` — at module level, inside
functions and under ``TYPE_CHECKING`` alike, since a deferred import is still
a dependency the reader must follow — and mapped to installed names the way
``setup.cfg``'s ``package_dir`` does (``oci/`` is ``crid.oci``, ...).
``from package import name`` is an edge to ``package.name`` when that is a
module, else to the package itself (its ``__init__``), so a package that
imports its submodules and a submodule that imports its package close a
circle like any other pair.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Edges allowed to close a cycle, each with the reason it must stay. Empty:
#: the graph has no cycle at all.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}

#: The composition root, and who may import it (or ``crid.daemon``, the
#: daemon's life that the root serves).
ROOTS = {"crid.wiring", "crid.daemon"}
MAY_IMPORT_ROOTS = {"crid.wiring", "crid.daemon", "crid.cli"}


def package_dirs() -> dict[str, Path]:
    """``{installed package: folder}`` from setup.cfg's ``package_dir``."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    found = {}
    for line in parser["options"]["package_dir"].strip().splitlines():
        name, _, folder = (part.strip() for part in line.partition("="))
        found[name] = REPO / folder
    return found


def modules() -> dict[str, Path]:
    """``{module name: file}`` for every product module."""
    found: dict[str, Path] = {}
    dirs = package_dirs()
    for package, folder in dirs.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            # A nested folder mapped on its own (oci/ under crid/) is named from its mapping.
            owner = max((p for p, d in dirs.items() if path.is_relative_to(d)),
                        key=lambda p: len(dirs[p].parts))
            if owner != package:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _target(name: str, known: Mapping[str, Path]) -> str | None:
    """The product module ``name`` names, or its nearest product package."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """The product modules ``module`` imports, wherever in the file it does."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = _target(alias.name, known)
                if found:
                    yield found
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found = submodule if submodule in known else _target(source, known)
                if found:
                    yield found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {t for t in imports(m, p, known) if t != m} for m, p in known.items()}


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's, iterative: the graph is deep
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_shortest_cycle(edges, component) for component in components]


def _shortest_cycle(edges: Mapping[str, set[str]], component: set[str]) -> list[str]:
    best: list[str] = []
    for start in sorted(component):
        paths = {start: [start]}
        queue = [start]
        while queue:
            node = queue.pop(0)
            for child in sorted(edges.get(node, set()) & component):
                if child == start:
                    cycle = [*paths[node], start]
                    if not best or len(cycle) < len(best):
                        best = cycle
                    queue = []
                    break
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    queue.append(child)
    return best


def test_the_layout_is_read_as_installed() -> None:
    found = modules()
    assert found["crid.oci.spec"].name == "__init__.py"
    assert found["crid.image.store"] == REPO / "image" / "store.py"
    assert found["crid.network.cni.manager"] == REPO / "network" / "cni" / "manager.py"
    assert "crid.containers.context" in found and "crid.api.services" in found


def test_imports_are_read_everywhere_in_a_module(tmp_path: Path) -> None:
    """Function-level, TYPE_CHECKING, relative and submodule imports all count."""
    path = tmp_path / "mod.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from crid.x import sub, name\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import crid.typed.thing\n"
        "def later():\n    from crid.lazy import it\n")
    known = {m: path for m in ("crid.x", "crid.x.sub", "crid.sibling", "crid.typed",
                               "crid.lazy", "crid.mod")}
    assert sorted(imports("crid.mod", path, known)) == [
        "crid.lazy", "crid.sibling", "crid.typed", "crid.x", "crid.x.sub"]


def test_cycles_are_found_and_shown() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    for edge in ALLOWED_EDGES:
        assert edge[1] in edges.get(edge[0], set()), f"allowed edge {edge} is gone: drop it"
        edges[edge[0]] = edges[edge[0]] - {edge[1]}
    found = cycles(edges)
    assert not found, "import cycles among product modules:\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in found)


def test_only_the_root_and_the_cli_import_the_daemon() -> None:
    wrong = sorted(f"{module} imports {target}" for module, targets in graph().items()
                   for target in targets & ROOTS if module not in MAY_IMPORT_ROOTS)
    assert not wrong, "only the composition root and crid.cli may import it:\n" + "\n".join(
        "  " + w for w in wrong)
