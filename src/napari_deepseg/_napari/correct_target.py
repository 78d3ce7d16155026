"""Which Labels layer Correct edits, the helper layers that belong to it, and cleaning them up.

- Helper layers (the seeds and cut-lines layers Correct makes, the reviewed rectangles, the
  selection highlight) carry the ``id()`` of their Labels layer in their metadata
  (:func:`own`, :func:`owner_of`); :func:`remove_helpers` removes them when that layer goes.
- :class:`TargetFollowing` (a mixin of the Correct widget): Correct never silently switches its
  target. A layer the person selects (made active, or clicked in the layer list) is followed; a
  Labels layer that becomes active only because it was just added is followed only when it is a
  deepseg result (Segment's output), decided after the adding finishes (the result record is
  written right after the layer is added); any other is announced in the status line.
"""

from __future__ import annotations

import contextlib
import warnings
from functools import partial
from typing import TYPE_CHECKING, Any

from napari.layers import Labels
from qtpy.QtCore import QTimer

from .layers import result_layer_record
from .reviewed import LINK_KEY
from .selection import HIGHLIGHT_KEY, is_helper_layer

if TYPE_CHECKING:
    import napari

OWNER_KEY = "deepseg_helper_of"  # seeds / cut-lines layer metadata: id() of its Labels layer
_OWNER_KEYS = (OWNER_KEY, LINK_KEY, HIGHLIGHT_KEY)


def own(helper: Any, labels: Any) -> None:
    """Record that ``helper`` belongs to ``labels`` (removed with it)."""
    helper.metadata[OWNER_KEY] = id(labels)


def owner_of(layer: Any) -> int | None:
    """The ``id()`` of the Labels layer ``layer`` helps with, or None for an ordinary layer."""
    meta = getattr(layer, "metadata", {}) or {}
    return next((meta[k] for k in _OWNER_KEYS if k in meta), None)


def remove_helpers(viewer: napari.Viewer, labels_id: int) -> list[str]:
    """Remove every helper layer of the (removed) Labels layer ``labels_id``; their names."""
    names = []
    for layer in [lyr for lyr in viewer.layers if owner_of(lyr) == labels_id]:
        names.append(layer.name)
        viewer.layers.remove(layer)
    return names


def header_text(layer: Any) -> str:
    """The Correct header: the layer it edits, always named."""
    if layer is None:
        return "<b>Editing:</b> no Labels layer (add one or segment an image)"
    return f"<b>Editing:</b> {layer.name}"


class TargetFollowing:
    """The Correct widget's target: followed as the module docstring says; helpers cleaned up."""

    viewer: napari.Viewer
    labels: Any
    status: Any
    _just_added: Any = None
    _on_labels_changed: Any

    def _on_inserted(self, event: Any) -> None:
        self._just_added = event.value  # napari makes it active right after
        QTimer.singleShot(0, self._settled)

    def _settled(self) -> None:
        self._just_added = None  # the adding finished: later activations are the person's

    def _follow_active(self, event: Any) -> None:
        layer = event.value
        if not isinstance(layer, Labels) or is_helper_layer(layer) or layer is self.labels.value:
            return
        if layer.multiscale:  # a large plane's running layer: display only, nothing to correct
            return
        if layer is not self._just_added:
            self.labels.value = layer  # the person made it active
        else:
            QTimer.singleShot(0, partial(self._follow_added, layer))

    def _follow_added(self, layer: Labels) -> None:
        if not _alive(self.labels) or layer not in self.viewer.layers or layer is self.labels.value:
            return
        if result_layer_record(layer) is not None:
            self.labels.value = layer  # Segment's new result
        elif self.labels.value is not None:
            self.status.value = f"{layer.name!r} added; still editing {self.labels.value.name!r}"

    def watch_layer_list(self, on: bool) -> None:
        """Follow clicks on Labels layers in napari's layer list (also on the already active one)."""
        with warnings.catch_warnings():  # napari's plugin proxy warns about private attributes
            warnings.simplefilter("ignore", FutureWarning)
            view = getattr(getattr(self.viewer.window, "_qt_viewer", None), "layers", None)
        self._layer_list = view
        signal = getattr(view, "clicked", None)
        if signal is None:
            return
        with contextlib.suppress(TypeError, RuntimeError):  # not connected
            signal.disconnect(self._on_list_click)
        if on:
            signal.connect(self._on_list_click)

    def _on_list_click(self, index: Any) -> None:
        model = self._layer_list.model()
        if hasattr(model, "mapToSource"):  # napari shows the list top layer first through a proxy
            index, model = model.mapToSource(index), model.sourceModel()
        layer = model.getItem(index) if hasattr(model, "getItem") else None
        if isinstance(layer, Labels) and not is_helper_layer(layer) and layer is not self.labels.value:
            self.labels.value = layer

    def _on_removed(self, event: Any) -> None:
        """A Labels layer went: its helper layers go too, and its status if it was the target."""
        layer = event.value
        if isinstance(layer, Labels) and not is_helper_layer(layer):
            lost = layer.name if layer is self.labels.value else None
            QTimer.singleShot(0, partial(self._after_removal, id(layer), lost))

    def _after_removal(self, layer_id: int, lost: str | None) -> None:
        remove_helpers(self.viewer, layer_id)
        if lost is not None and _alive(self.labels):
            self._on_labels_changed()
            now = self.labels.value
            self.status.value = f"{lost!r} was removed; now editing {now.name if now else 'nothing'!r}"


def _alive(widget: Any) -> bool:
    """Whether a magicgui widget's Qt object still exists (a deferred call may outlive the dock)."""
    try:
        widget.native.objectName()
    except RuntimeError:
        return False
    return True
