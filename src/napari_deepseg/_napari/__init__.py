"""napari GUI layer: dock widgets, the worker launcher and layer <-> array helpers.

Only this package imports napari, qtpy or magicgui; the core never does (a test checks it).
"""

from __future__ import annotations

import sys


def guard_triton() -> bool:
    """Keep ``triton`` from loading beside Mesa's LLVM (returns True when it blocked it).

    Importing torchvision imports ``torch._dynamo``, which imports ``triton`` when installed
    (CUDA builds of torch ship it). triton bundles its own LLVM; loaded into a process where
    Mesa's OpenGL driver has already mapped ``libLLVM`` (napari's canvas on llvmpipe, radeonsi,
    ...), it crashes the process with a segmentation fault. The GUI never uses torch.compile,
    so triton is hidden (``import triton`` raises ImportError and torch runs without it).
    """
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/maps") as maps:
            mesa_llvm = any("libLLVM" in line for line in maps)
    except OSError:
        return False
    if mesa_llvm:
        sys.modules["triton"] = None  # type: ignore[assignment]
    return mesa_llvm


guard_triton()  # napari loads plugins after its canvas exists; widgets call it again
