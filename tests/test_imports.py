"""Imports point down only: no import circle anywhere in the package, no upward arrow.

The graph counts every ``import`` and ``from ... import`` of every module, at the top and inside
functions alike (a lazy import that closes a circle is still a circle in the design). The layers
(docs/development.md, "Layout"), lowest first::

    0  the package root: errors, _checks, _files, _torchfile, progress, samples
    1  io/
    2  models/
    3  inference/  training/  evaluation/  correction/   (may import each other, without circles)
    4  sharing/  batch/                                   (not each other)
    5  cli/  _napari/                                     (not each other)
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_deepseg

ROOT = Path(napari_deepseg.__file__).parent
LAYER = {"io": 1, "models": 2, "inference": 3, "training": 3, "evaluation": 3, "correction": 3}
LAYER |= {"sharing": 4, "batch": 4, "cli": 5, "_napari": 5}
#: layers whose packages must not import each other
APART = (4, 5)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(name: str, path: Path, node: ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1] if node.level else []
    parent = ".".join(base + ([node.module] if node.module else []))
    found = {parent} if node.module and parent in known else set()
    return found | {f"{parent}.{a.name}" for a in node.names if f"{parent}.{a.name}" in known}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its code)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                found |= _targets(name, path, node, known)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in known}
        graph[name] = found - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    out.append(sorted(group))
    return out


def layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return LAYER.get(top, 0), top


def test_the_package_has_no_import_circle():
    assert circles(import_graph()) == []


def test_imports_point_down_only():
    upward = []
    for module, imported in sorted(import_graph().items()):
        (mine, top) = layer(module)
        for other in sorted(imported):
            theirs, their_top = layer(other)
            if theirs > mine or (theirs == mine in APART and their_top != top):
                upward.append(f"{module} -> {other}")
    assert upward == []


def test_the_checks_can_fail():
    """The graph sees lazy imports, and a circle or an upward arrow is found when there is one."""
    graph = import_graph()
    assert "napari_deepseg.inference.engine" in graph["napari_deepseg.batch.work"]
    assert "napari_deepseg.sharing.export" in graph["napari_deepseg.cli.export"]  # imported in a function
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("napari_deepseg.models.unet") < layer("napari_deepseg.inference.engine")


def test_inputs_is_the_one_input_path():
    """Axes, channels and normalization are reached through ``inference.inputs`` only."""
    behind = {"napari_deepseg.inference.axes", "napari_deepseg.inference.normalization"}
    allowed = behind | {"napari_deepseg.inference.inputs"}
    around = sorted(m for m, imported in import_graph().items() if imported & behind and m not in allowed)
    assert around == []
