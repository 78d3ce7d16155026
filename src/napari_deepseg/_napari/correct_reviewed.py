"""The Correct widget's reviewed-region actions (a mixin): draw, mark the view, clear, save, load.

The rectangles and the mask are :mod:`.reviewed`; the sidecar file is
:mod:`napari_deepseg.correction.reviewed`. Every action runs through the widget's ``_guarded``
(errors become a notification and a status line) and acts on the widget's chosen Labels layer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QFileDialog

from ..correction.reviewed import load_reviewed, save_labels_and_reviewed
from ..errors import DeepsegError
from . import reviewed as rv

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

LABELS_FILTER = "TIFF labels (*.tif *.tiff)"
SIDECAR_FILTER = "Reviewed mask (*.reviewed.npz);;All files (*)"


class ReviewedActions:
    """Reviewed-region buttons of :class:`~.correct_widget.CorrectWidget`."""

    viewer: napari.Viewer
    labels: Any
    _guarded: Callable[[Callable[[], str]], bool]
    _layer: Callable[[], Labels]
    _info: Callable[[str], None]
    recovery: Any  # correct_recovery.RecoveryKeeper

    # ----- reviewed regions -----
    def draw_reviewed(self) -> bool:
        """Select the labels' reviewed-rectangles layer (created if needed) in rectangle mode."""

        def action() -> str:
            shapes = rv.reviewed_shapes_layer(self.viewer, self._layer())
            self.viewer.layers.selection.active = shapes
            shapes.mode = "add_rectangle"
            return "draw rectangles over the regions you checked"

        return self._guarded(action)

    def mark_view(self) -> bool:
        """Add the visible canvas extent as a reviewed rectangle."""
        return self._guarded(lambda: self._reviewed_status(rv.mark_view_reviewed(self.viewer, self._layer())))

    def _reviewed_status(self, _: Any = None) -> str:
        mask = rv.reviewed_mask_for(self._layer())
        return "nothing reviewed" if mask is None else f"reviewed: {100 * mask.mean():.1f}% of the layer"

    def clear_reviewed(self) -> bool:
        """Forget this layer's reviewed regions (the rectangles and the mask)."""

        def action() -> str:
            layer = self._layer()
            shapes = rv.find_reviewed_shapes(self.viewer, layer)
            if shapes is not None:
                self.viewer.layers.remove(shapes)
            rv.set_reviewed_mask(layer, None)
            return "nothing reviewed"

        return self._guarded(action)

    def save_to(self, path: str | Path) -> bool:
        """Write the labels as a TIFF at ``path`` and the reviewed mask as ``<path>.reviewed.npz``."""

        def action() -> str:
            layer = self._layer()
            rects = layer.metadata.get(rv.RECTANGLES_KEY, [])
            written = save_labels_and_reviewed(
                path, np.asarray(layer.data), rv.reviewed_mask_for(layer), rects, overwrite=True
            )  # the save dialog asked before replacing a file
            self.recovery.saved(layer)  # saved: its recovery copy is no longer needed
            self._info("saved " + " and ".join(p.name for p in written))
            return f"saved {written[0]}"

        return self._guarded(action)

    def load_from(self, path: str | Path) -> bool:
        """Load a reviewed mask (a labels file's sidecar or the ``.reviewed.npz`` itself)."""

        def action() -> str:
            layer = self._layer()
            loaded = load_reviewed(path)
            if loaded is None:
                raise DeepsegError(f"no reviewed mask at {path}; pick a *.reviewed.npz file")
            shapes = rv.find_reviewed_shapes(self.viewer, layer)
            if shapes is not None:
                self.viewer.layers.remove(shapes)
            rv.set_reviewed_mask(layer, *loaded)
            if loaded[1]:
                rv.reviewed_shapes_layer(self.viewer, layer)
            return self._reviewed_status()

        return self._guarded(action)

    def save_dialog(self) -> None:
        """Ask for a file name and save (the "Save labels + reviewed mask..." button)."""
        name = getattr(self.labels.value, "name", "labels")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save labels + reviewed mask", f"{name}.tif", LABELS_FILTER
        )
        if path:
            self.save_to(path)

    def load_dialog(self) -> None:
        """Ask for a sidecar file and load it (the "Load mask..." button)."""
        path, _ = QFileDialog.getOpenFileName(self, "Load reviewed mask", "", SIDECAR_FILTER)
        if path:
            self.load_from(path)
