"""GUI-thread work cut into short event-loop turns, so that placing a large result never freezes
the window for the sum of its parts.

Two costs used to land inside one turn on top of a layer's own set-up (measured in a real napari
0.9.2 viewer, 2048x2048 labels, 2-core CPU):

- napari builds every visible layer overlay's vispy visuals (the labels polygon and brush
  stroke overlays: 15-40 ms each, about 240 ms the first time in a session) in the same call
  that adds the layer (80-140 ms without them). :func:`add_layer_steps` adds the layer with
  those overlays hidden and shows each one in a turn of its own (napari builds an overlay's
  visuals when it becomes visible).
- Python's garbage collection runs when allocations cross its thresholds, inside whatever
  step allocates; a full collection takes 150-270 ms in a napari process with torch loaded
  (350 000-500 000 tracked objects). :class:`GuiSteps` pauses automatic collection while its
  steps run and restores it in a turn of its own after the last one, so that a collection that
  falls due is never added to a step's own time (it then runs alone, at the next allocation); and
  :func:`collect_once` runs the collection that the plugin's imports make due when the Segment
  dock opens.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any

from napari.layers import Layer
from qtpy.QtCore import QTimer

#: pause between two steps (ms). A zero-delay QTimer is a posted event that Qt can run in the
#: same pass as the previous step, before the repaint and any due timer or input: two 2048²
#: layers then froze the window for both (gaps of 280-370 ms measured). With a pause, each
#: step's repaint and the user's events run before the next step.
STEP_PAUSE_MS = 15

Step = Callable[[], Any]


class _CollectionPause:
    """Automatic garbage collection, off while any step sequence runs (sequences may overlap).

    Collection is process-wide: the first sequence to start turns it off (unless someone else
    already had), and the last one to end turns it back on.
    """

    active = 0
    owned = False  # whether the pause turned collection off (and so must turn it back on)

    @classmethod
    def enter(cls) -> None:
        if cls.active == 0:
            cls.owned = gc.isenabled()
            gc.disable()
        cls.active += 1

    @classmethod
    def leave(cls) -> None:
        cls.active -= 1
        if cls.active == 0 and cls.owned:
            cls.owned = False
            gc.enable()


class GuiSteps:
    """Run callables on the GUI thread, one per event-loop turn, then call ``done()``.

    A step may return a value: the non-``None`` ones are collected in :attr:`results`. A step
    may call :meth:`insert` to run more steps right after itself. If a step raises, the steps
    after it are dropped, automatic garbage collection is restored, and the error propagates
    to Qt's event loop (napari shows it); ``done`` is not called.
    """

    def __init__(self, steps: list[Step], done: Callable[[], Any] | None = None) -> None:
        self.steps = list(steps)
        self.done = done
        self.results: list[Any] = []
        self._paused_gc = False

    def start(self) -> None:
        """Start after a pause (so the first step, too, runs after pending signals and paints)."""
        _CollectionPause.enter()
        self._paused_gc = True
        # done() still paused, then collection restored in a turn of its own: a collection that
        # is due by then is not added to done()'s work
        self.steps += [self._call_done, self._restore_gc]
        self._schedule()

    def _call_done(self) -> None:
        if self.done is not None:
            self.done()

    def insert(self, *steps: Step) -> None:
        """Run ``steps`` next, before the rest."""
        self.steps[0:0] = steps

    @property
    def running(self) -> bool:
        """Whether steps are left (or this sequence still holds the collection pause)."""
        return bool(self.steps) or self._paused_gc

    def _restore_gc(self) -> None:
        if self._paused_gc:
            self._paused_gc = False
            _CollectionPause.leave()

    def _next(self) -> None:
        try:
            result = self.steps.pop(0)()
        except BaseException:
            self.steps.clear()
            self._restore_gc()
            raise
        if result is not None:
            self.results.append(result)
        if self.steps:
            self._schedule()

    def _schedule(self) -> None:
        # a lambda, not the bound method: PyQt keeps only a weak reference to a bound method's
        # object, and a running sequence must live until it is done even if nobody holds it
        QTimer.singleShot(STEP_PAUSE_MS, lambda: self._next())


@functools.cache
def warm_labels_once() -> None:
    """Make one label colormap per process, when the Segment dock first opens.

    napari's first Labels layer of a session imports ``skimage.color`` (and ``scipy.linalg``)
    for its random colours: about 100 ms measured inside the GUI turn that shows a run's first
    result layer. Here it happens while the dock opens, before :func:`collect_once`.
    """
    from napari.utils.colormaps import label_colormap

    label_colormap(2)


@functools.cache
def collect_once() -> None:
    """One full garbage collection per process, when the Segment dock first opens, then the
    survivors frozen (:func:`gc.freeze`).

    The imports behind the dock (torch, the model list) make a full collection due; run here,
    it takes its 150-250 ms while the window is busy opening the dock anyway, instead of falling
    inside the user's first segmentation or the placing of its result. Freezing moves the
    350 000-500 000 objects alive then (modules, napari's and torch's state) out of the
    collector's sight, so every later full collection scans only what was made since: napari's
    own ``gc.collect()`` on each layer removal took 160 ms with a large result and now takes a
    few ms, and the collections that fall due during a run shrink alike. What was alive at the
    freeze and later becomes cyclic garbage is not reclaimed (a one-time set of start-up objects).
    """
    gc.collect()
    gc.freeze()


def add_layer_steps(viewer: Any, layer: Layer, visible: bool = True) -> list[Step]:
    """Steps that add a new ``layer`` to ``viewer`` and show it, each a short GUI turn.

    1. add it hidden, its visible overlays hidden too (napari builds the layer's visual and its
       controls, not the overlays' visuals); 2. show each overlay (napari builds its visuals);
    3. set the layer's visibility to ``visible`` (napari slices, uploads and draws the data).
    """
    overlays = visible_overlays(layer)
    layer.visible = False
    for overlay in overlays:
        overlay.visible = False
    steps: list[Step] = [lambda: viewer.layers.append(layer)]
    steps += [lambda o=o: setattr(o, "visible", True) for o in overlays]
    steps.append(lambda: setattr(layer, "visible", visible))
    return steps


def visible_overlays(layer: Layer) -> list[Any]:
    """The layer's overlays that napari draws now (private ``_overlays`` of napari >= 0.5).

    A napari without it gives none: the layer is then added with its overlays, as napari does.
    """
    overlays = getattr(layer, "_overlays", None)
    values = overlays.values() if hasattr(overlays, "values") else ()
    return [o for o in values if getattr(o, "visible", False) is True]
