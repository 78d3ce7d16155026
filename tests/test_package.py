"""Package-level contracts: the core never imports GUI packages; CLI basics; npe2 manifest."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import napari_deepseg
from napari_deepseg.cli import COMMANDS

GUI_MODULES = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6")


def core_modules() -> list[str]:
    """Every module of the package outside ``_napari``."""
    names = ["napari_deepseg"]
    for info in pkgutil.walk_packages(napari_deepseg.__path__, "napari_deepseg."):
        if "._napari" not in info.name and not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_core_modules_found():
    mods = core_modules()
    assert "napari_deepseg.models" in mods
    assert "napari_deepseg.cli" in mods
    assert not any("_napari" in m for m in mods)


def test_core_imports_without_gui_packages():
    code = (
        "import importlib, json, sys\n"
        f"mods = {core_modules()!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(g for g in {GUI_MODULES!r} if g in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_gui_layer_does_import_napari():
    """The check above can fail: importing the GUI layer does pull napari in."""
    code = "import sys, napari_deepseg._napari.workers\nprint('napari' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("True")


def test_npe2_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-deepseg")
    assert manifest.name == "napari-deepseg"
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari_deepseg"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_deepseg.cli", *args], capture_output=True, text=True)


def test_cli_help_and_version():
    help_ = run_cli("--help")
    assert help_.returncode == 0
    assert "models" in help_.stdout
    version = run_cli("--version")
    assert version.returncode == 0
    assert napari_deepseg.__version__ in version.stdout


def test_cli_unknown_command_is_one_line():
    result = run_cli("frobnicate")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown command 'frobnicate'" in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage: deepseg" in result.stdout


def test_dependencies_declare_superqt_and_no_qt_binding():
    """The plugin installs without a Qt binding; the testing extra uses PyQt6 (PyQt5 is deprecated)."""
    import re
    from importlib.metadata import requires

    base, testing = set(), set()
    for requirement in requires("napari-deepseg") or []:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        if "extra ==" not in requirement:
            base.add(name)
        elif "'testing'" in requirement or '"testing"' in requirement:
            testing.add(name)
    assert "superqt" in base  # the widgets import it
    assert not base & {"pyqt5", "pyqt6", "pyside2", "pyside6"}
    assert "pyqt6" in testing
    assert "pyqt5" not in testing


def _relative_imports(path, in_functions: bool) -> set[tuple[str, str]]:
    """(``file:line``, sibling module) of each ``from .x import y`` in the module at ``path``:
    those inside functions, or those at the top level."""
    import ast

    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    nodes = [inner for f in functions for inner in ast.walk(f)] if in_functions else tree.body
    return {
        (f"{path.name}:{node.lineno}", node.module or "")
        for node in nodes
        if isinstance(node, ast.ImportFrom) and node.level == 1
    }


#: models/ modules that import torchvision (and with it torch._dynamo and sympy): imported where
#: an architecture that needs them is built, so that a plain U-Net never loads torchvision
LAZY_TORCHVISION = {"fcn", "deeplab", "backbones"}


def test_models_have_no_import_cycle():
    """models/ imports its own modules at the top only (but the torchvision leaves, imported
    where they are needed, which import no module that could import them back), and each
    imports first on its own (a cycle modelfile <-> pretrained <-> registry <-> zoo would fail
    one of these)."""
    from pathlib import Path

    folder = Path(napari_deepseg.__file__).parent / "models"
    inner = {hit for p in sorted(folder.glob("*.py")) for hit in _relative_imports(p, in_functions=True)}
    assert {module for _, module in inner} <= LAZY_TORCHVISION, sorted(inner)
    for leaf in LAZY_TORCHVISION:
        top = {module for _, module in _relative_imports(folder / f"{leaf}.py", in_functions=False)}
        assert top <= {"backbones", "blocks", "contract", "encoders"}, (leaf, top)
    names = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys, torchvision\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m.startswith('napari_deepseg')]: del sys.modules[m]\n"
        "    importlib.import_module('napari_deepseg.models.' + name)\n"
        "    print(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    assert result.stdout.split() == names


def test_one_version_source():
    """pyproject.toml reads the version from napari_deepseg.__version__ (written nowhere else)."""
    from importlib.metadata import version
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"  # the repository, not the install
    project = tomllib.loads(pyproject.read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "napari_deepseg.__version__"}
    assert version("napari-deepseg") == napari_deepseg.__version__
