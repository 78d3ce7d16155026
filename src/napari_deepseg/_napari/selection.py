"""Which Labels layer the Correct widget edits, and how its selected objects are shown.

- :func:`default_labels` picks the layer a user means: the active Labels layer, else the result
  Segment produced last (instances before classes), else the top-most visible Labels layer;
- :class:`SelectionHighlight` draws a yellow rectangle around each selected object in the plane
  shown, in a Shapes layer ``"<labels> selection"`` that no layer picker offers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels, Shapes
from qtpy.QtCore import QTimer

from .layers import result_layer_record

if TYPE_CHECKING:
    import napari

HIGHLIGHT_KEY = "deepseg_selection_of"
HIGHLIGHT_STYLE = {"edge_color": "yellow", "face_color": "transparent", "edge_width": 2}


def is_helper_layer(layer: Any) -> bool:
    """Whether ``layer`` is one of the Correct widget's helper layers (selection highlight)."""
    return HIGHLIGHT_KEY in getattr(layer, "metadata", {})


def default_labels(viewer: napari.Viewer) -> Labels | None:
    """The Labels layer to edit: active, else Segment's newest result, else the top visible one."""
    active = viewer.layers.selection.active
    if isinstance(active, Labels):
        return active
    labels = [lyr for lyr in viewer.layers if isinstance(lyr, Labels)]
    results = [(lyr, result_layer_record(lyr)) for lyr in labels]
    made = [(rec.get("created", 0.0), rec.get("output") == "instances", lyr) for lyr, rec in results if rec]
    if made:
        return max(made, key=lambda item: (item[0], item[1]))[2]
    visible = [lyr for lyr in labels if lyr.visible]
    return (visible or labels or [None])[-1]


def _plane_boxes(data: Any, ids: list[int], plane: tuple[int, ...] | None) -> list[np.ndarray]:
    """``(4, 2)`` corner rectangles (y, x) around each of ``ids`` in ``data[plane]`` (absent ids skipped)."""
    sub = np.asarray(data[plane] if plane else data)
    if sub.ndim != 2:
        return []
    boxes = []
    for label_id in ids:
        rows = np.flatnonzero(np.any(sub == label_id, axis=1))
        if not rows.size:
            continue
        cols = np.flatnonzero(np.any(sub[rows[0] : rows[-1] + 1] == label_id, axis=0))
        y0, y1, x0, x1 = rows[0] - 0.5, rows[-1] + 0.5, cols[0] - 0.5, cols[-1] + 0.5
        boxes.append(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]]))
    return boxes


class SelectionHighlight:
    """Rectangles around the selected objects of one Labels layer (GUI thread only)."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.layer: Shapes | None = None
        viewer.layers.events.removed.connect(self._on_removed)  # a method: napari holds it weakly

    def _on_removed(self, event: Any) -> None:
        """Its Labels layer was removed: the highlight goes too (after the removal finishes)."""
        layer = self.layer
        if layer is not None and layer.metadata.get(HIGHLIGHT_KEY) == id(event.value):
            QTimer.singleShot(0, self._drop_orphan)

    def _drop_orphan(self) -> None:
        labels_ids = {id(lyr) for lyr in self.viewer.layers if isinstance(lyr, Labels)}
        if self.layer is not None and self.layer.metadata.get(HIGHLIGHT_KEY) not in labels_ids:
            self.remove()

    def show(self, labels: Labels | None, ids: list[int], plane: tuple[int, ...] | None) -> None:
        """Draw boxes around ``ids`` of ``labels`` in ``plane`` (2D view); clear them without ids."""
        boxes = _plane_boxes(labels.data, ids, plane) if labels is not None and ids else []
        if not boxes:
            if self.layer is not None and self.layer in self.viewer.layers:
                self.layer.data = []
            return
        lead = np.asarray(plane or (), float)
        rects = [np.hstack([np.tile(lead, (4, 1)), box]) for box in boxes]
        shapes = self._layer_for(labels)
        shapes.data = []
        shapes.add_rectangles(rects, **HIGHLIGHT_STYLE)

    def _layer_for(self, labels: Labels) -> Shapes:
        if self.layer is not None and self.layer in self.viewer.layers:
            if self.layer.metadata.get(HIGHLIGHT_KEY) == id(labels):
                return self.layer
            self.viewer.layers.remove(self.layer)
        active = self.viewer.layers.selection.active
        shapes = Shapes(
            ndim=labels.ndim,
            name=f"{labels.name} selection",
            scale=labels.scale,
            translate=labels.translate,
            metadata={HIGHLIGHT_KEY: id(labels)},
            **HIGHLIGHT_STYLE,
        )
        self.viewer.layers.append(shapes)
        self.viewer.layers.selection.active = active  # keep editing the labels, not the highlight
        self.layer = shapes
        return shapes

    def remove(self) -> None:
        """Remove the highlight layer (the widget closed, or its Labels layer was removed)."""
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None

    def disconnect(self) -> None:
        """Stop following the layer list (the widget closed)."""
        self.viewer.layers.events.removed.disconnect(self._on_removed)
