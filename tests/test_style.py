"""Size limits of the source (docs/development.md): modules at most 400 lines, functions at most
60 lines without their docstring, so each stays readable in one screen or two."""

from __future__ import annotations

import ast
from pathlib import Path

import napari_deepseg

ROOT = Path(napari_deepseg.__file__).parent
MAX_MODULE, MAX_FUNCTION = 400, 60


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length without the docstring) of every function in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            first = node.body[0]
            value = getattr(first, "value", None)
            if (
                isinstance(first, ast.Expr)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                length -= first.end_lineno - first.lineno + 1
            out.append((node.name, node.lineno, length))
    return out


def test_modules_and_functions_stay_short():
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        too_long += [
            f"{name}:{line} {fn}() {n} lines" for fn, line, n in function_lengths(source) if n > MAX_FUNCTION
        ]
    assert too_long == []


def test_the_length_rule_can_fail():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert (
        function_lengths(f'def f():\n    """Doc."""\n{body}\n')[0][2] == 62
    )  # the def line and 61 statements
