"""napari's GL flush after a layer removal runs with the canvas' context current (gl_guard):
the cycle that crashed napari (issue 33) runs to the end, napari alone and the Segment widget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from napari_deepseg._napari import gl_guard

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_the_guard_is_installed_once():
    from napari._vispy.canvas import VispyCanvas

    assert getattr(VispyCanvas._clean_and_update_scenegraph, gl_guard._MARK)
    assert gl_guard.guard_scenegraph_flush() is False  # already there: not wrapped twice


@pytest.mark.slow
def test_napari_alone_survives_removing_two_layers_and_adding_two_with_the_guard():
    script = ROOT / "docs" / "scripts" / "napari_two_layers_segfault.py"
    out = subprocess.run([sys.executable, str(script), "guard"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.split()[-1] == "DONE"


@pytest.mark.slow
def test_segment_remove_the_results_and_run_again_three_times():
    """The CI-sized version of benchmarks/gui_crash_cycle.py: real clicks on Run, a real viewer."""
    script = ROOT / "benchmarks" / "gui_crash_cycle.py"
    cmd = [sys.executable, str(script), "--cycles", "3", "--side", "384", "--timeout", "240"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-1500:]
    assert "3 of 3 cycles, no crash" in out.stdout
