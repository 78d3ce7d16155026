"""The GUI layer keeps triton (and its LLVM) out of the napari process, whatever runs first."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import napari_deepseg._napari  # what napari imports first when it loads the plugin
import torch
torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())  # imports torch._dynamo, which asks for triton
try:
    import triton  # noqa: F401
    print("triton loaded")
except ImportError:
    print("triton kept out")
"""


def test_importing_the_gui_layer_keeps_triton_out_before_any_canvas_exists():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "triton kept out"
