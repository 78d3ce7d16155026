"""A fresh headless Linux machine without Xvfb: the test run stops at once with one line naming the
Debian packages and the install command, instead of Qt aborting inside pytest-qt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._display import APT_PACKAGES, missing_display

ROOT = Path(__file__).resolve().parents[2]


def _found(name: str) -> str:
    return f"lib{name}.so.1"


def test_no_display_and_no_xvfb_names_packages_and_command(tmp_path):
    message = missing_display({"PATH": str(tmp_path)}, "linux", find_library=_found)
    assert message is not None
    assert "\n" not in message
    assert "missing xvfb" in message
    assert f"sudo apt-get install -y {APT_PACKAGES}" in message
    assert ".ci/run" in message


def test_ready_machines_pass(tmp_path):
    fake = tmp_path / "Xvfb"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert missing_display({"PATH": str(tmp_path)}, "linux", find_library=_found) is None
    assert missing_display({"PATH": "", "DISPLAY": ":0"}, "linux", find_library=_found) is None
    assert missing_display({"PATH": "", "WAYLAND_DISPLAY": "wayland-0"}, "linux", find_library=_found) is None
    assert missing_display({"PATH": ""}, "darwin", find_library=lambda name: None) is None
    assert missing_display({"PATH": ""}, "win32", find_library=lambda name: None) is None


def test_missing_qt_library_is_named(tmp_path):
    def lookup(name: str) -> str | None:
        return None if name == "xcb-cursor" else _found(name)

    message = missing_display({"PATH": "", "DISPLAY": ":0"}, "linux", find_library=lookup)
    assert message is not None
    assert "missing libxcb-cursor0." in message
    assert "xvfb (" not in message


@pytest.mark.slow
def test_pytest_stops_with_one_line_when_xvfb_is_not_on_path(tmp_path):
    src = ROOT / "src"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's tools only: no Xvfb
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_package.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert run.returncode == 4, output
    assert len(output) == 1, output
    assert "missing xvfb" in output[0]
    assert "apt-get install" in output[0]
    assert "Fatal Python error" not in run.stderr
