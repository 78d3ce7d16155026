"""Keep napari from flushing OpenGL commands without its canvas' context (a crash on Mesa).

What crashed napari in the Segment cycle (segment, remove the two results, run again; issue
33) is napari's own: after a layer is removed, ``VispyCanvas._clean_and_update_scenegraph``
calls the vispy context's ``finish()``, which runs every queued GL command (the removed
visuals' deletions, new textures and buffers) right there, outside the canvas' paint, without
making the canvas' OpenGL context current. With Mesa (llvmpipe, the software OpenGL of
headless and remote machines) the next draw then crashes in ``glDrawArrays``: napari alone
does it when two layers of any kind are added, both removed, and two added again (the
reproducer in docs/usage.md). Making the canvas' context current first removes the crash.

:func:`guard_scenegraph_flush` wraps that napari method once per process so that it does
(a no-op where napari no longer has it). napari imports the plugin's GUI package when a
DeepSeg widget or sample opens, which installs it.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

_MARK = "_deepseg_current_context"


def guard_scenegraph_flush() -> bool:
    """Make napari's post-removal GL flush run with the canvas' context current; True when
    this call installed the guard (False: already there, or napari has no such method)."""
    try:
        from napari._vispy.canvas import VispyCanvas
    except ImportError:  # pragma: no cover - napari without its vispy layer
        return False
    original = VispyCanvas.__dict__.get("_clean_and_update_scenegraph")
    if original is None or getattr(original, _MARK, False):
        return False

    @functools.wraps(original)
    def with_current_context(self: Any, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(Exception):  # a canvas being closed has no context to make current
            self._scene_canvas.set_current()
        return original(self, *args, **kwargs)

    setattr(with_current_context, _MARK, True)
    VispyCanvas._clean_and_update_scenegraph = with_current_context
    return True
