"""napari GUI layer: dock widgets, the worker launcher and layer <-> array helpers.

Only this package imports napari, qtpy or magicgui; the core never does (a test checks it).
"""

from __future__ import annotations

import sys


def guard_triton() -> bool:
    """Keep ``triton`` out of the napari process (returns True when this call blocked it).

    Importing torchvision, or creating a torch optimizer, imports ``torch._dynamo``, which
    imports ``triton`` when installed (CUDA builds of torch ship it). triton bundles its own
    LLVM; in a process where Mesa's OpenGL driver maps ``libLLVM`` (napari's canvas on llvmpipe,
    radeonsi, ...), whichever of the two loads second crashes the process with a segmentation
    fault, at the import or later in a repaint. A canvas can be created after this runs (a
    new viewer, a 3D view), so triton is hidden whether or not Mesa's LLVM is mapped yet: the GUI
    never uses torch.compile, and torch runs without triton (``import triton`` raises
    ImportError). Already imported (a process that compiled something first), it is left.
    """
    if "triton" in sys.modules or not sys.platform.startswith("linux"):
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True


guard_triton()  # napari loads plugins after its canvas exists; widgets call it again


def _guard_gl() -> None:
    from .gl_guard import guard_scenegraph_flush

    guard_scenegraph_flush()  # napari's GL flush after a layer removal (see gl_guard)


_guard_gl()
