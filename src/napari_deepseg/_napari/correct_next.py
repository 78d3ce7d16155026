"""What to correct next, in napari: the uncertainty ranking as a list the user steps through.

:func:`uncertainty_of` (worker thread) turns a result with instances and probabilities into the
uncertainty map and the ranking (:mod:`napari_deepseg.inference.uncertainty`);
:class:`CorrectNextList` (GUI thread) lists it, least certain first; **Next** or a click on an
entry moves the viewer to that plane, centres and zooms the camera on the place and selects the
object's label in the instances layer, so the Correct tools act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

#: the entry's box fills about this fraction of the view after a jump
VIEW_FRACTION = 0.3


@dataclass
class UncertaintyView:
    """The uncertainty map (the result's non-channel shape) and the ranking: (plane index,
    :class:`~napari_deepseg.inference.uncertainty.Uncertain`) pairs, plane by plane."""

    map: np.ndarray
    ranking: list[tuple[tuple[int, ...], Any]]


def uncertainty_of(result: Any) -> UncertaintyView:
    """Uncertainty map and ranking of a result with instances and probabilities (worker thread)."""
    from ..inference.uncertainty import rank_uncertain, uncertainty_map

    inst, prob = np.asarray(result.instances), np.asarray(result.probabilities)
    out = np.zeros(inst.shape, np.float32)
    ranking = []
    for idx in np.ndindex(*inst.shape[:-2]):
        p = prob[(slice(None), *idx)].astype(np.float32)
        out[idx] = uncertainty_map(p)
        ranking += [(idx, entry) for entry in rank_uncertain(inst[idx], p)]
    return UncertaintyView(out, ranking)


class CorrectNextList(QWidget):
    """The ranking of the last run, least certain first; Next / click jumps to an entry."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.entries: list[tuple[tuple[int, ...], Any]] = []
        self.labels_layer: Any = None
        self.list = QListWidget(self)
        self.list.setMaximumHeight(120)
        self.next_button = QPushButton("Next", self)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.note, 1)
        row.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.list)
        self.next_button.clicked.connect(self.next)
        self.list.currentRowChanged.connect(self.go)
        self.setVisible(False)

    def set_ranking(self, ranking: list[tuple[tuple[int, ...], Any]], labels_layer: Any) -> None:
        """Show a new ranking (of ``labels_layer``'s objects); nothing is selected yet."""
        self.entries, self.labels_layer = list(ranking), labels_layer
        self.list.blockSignals(True)
        self.list.clear()
        for index, e in self.entries:
            plane = f"plane {list(index)} " if index else ""
            what = f"object {e.id}" if e.id else "possible miss"
            self.list.addItem(f"{e.rank}. {plane}{what}: uncertainty {e.score:.2f}, {e.pixels} px")
        self.list.blockSignals(False)
        objects = sum(1 for _, e in self.entries if e.id)
        self.note.setText(
            f"What to correct next: {objects} objects, least certain first, then "
            f"{len(self.entries) - objects} possible misses"
        )
        self.setVisible(bool(self.entries))

    def next(self) -> None:
        """Go to the entry after the current one (the first at the start)."""
        if self.entries:
            self.list.setCurrentRow(min(self.list.currentRow() + 1, len(self.entries) - 1))

    def go(self, row: int) -> None:
        """Move the viewer to entry ``row``: its plane, centred, zoomed; select its label."""
        if not 0 <= row < len(self.entries):
            return
        index, e = self.entries[row]
        layer = self.labels_layer
        if layer is None or layer not in self.viewer.layers:
            return
        world = np.asarray(layer.data_to_world((*index, e.y, e.x)), dtype=float)
        for axis, value in enumerate(world[:-2]):
            self.viewer.dims.set_point(axis, value)
        _camera(self.viewer).center = tuple(world[-2:])
        self._zoom_to(layer, e)
        if e.id:
            layer.selected_label = e.id

    def _zoom_to(self, layer: Any, e: Any) -> None:
        scale = np.abs(np.asarray(layer.scale[-2:], dtype=float))
        extent = np.array([(e.y1 - e.y0), (e.x1 - e.x0)], dtype=float) * scale
        canvas = np.asarray(self.viewer.canvas.size, dtype=float)
        zoom = VIEW_FRACTION * float(np.min(canvas / np.maximum(extent, 1e-9)))
        _camera(self.viewer).zoom = max(zoom, 1e-3)


def _camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
