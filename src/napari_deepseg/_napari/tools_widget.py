"""One dock holding the four tools as tabs ("DeepSeg tools"), for small screens (1366x768).

Each tab scrolls on its own, so the dock needs no more height than the window gives it; long
status lines wrap inside the dock's width instead of widening it (:func:`.compact.fit_label`). The
Correct tab's shortcuts follow the dock: bound while it is docked, released when it closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QScrollArea, QTabWidget, QWidget

from .batch_widget import BatchWidget
from .correct_widget import CorrectWidget
from .layers import plain_viewer
from .segment_widget import SegmentWidget
from .train_widget import FineTuneWidget

if TYPE_CHECKING:
    import napari

MIN_WIDTH = 330


def _scrolling(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(area.horizontalScrollBarPolicy().ScrollBarAlwaysOff)
    return area


class ToolsWidget(QTabWidget):
    """Segment, Correct, Fine-tune and Batch in one dock, one tab each."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = plain_viewer(napari_viewer)  # not napari's proxy (see plain_viewer)
        self.segment = SegmentWidget(napari_viewer)
        self.correct = CorrectWidget(napari_viewer)
        self.finetune = FineTuneWidget(napari_viewer)
        self.batch = BatchWidget(napari_viewer)
        for name, widget in (
            ("Segment", self.segment),
            ("Correct", self.correct),
            ("Fine-tune", self.finetune),
            ("Batch", self.batch),
        ):
            self.addTab(_scrolling(widget), name)
        self.setMinimumWidth(MIN_WIDTH)
        self.setUsesScrollButtons(False)

    def event(self, event: Any) -> bool:
        """The Correct tab's keys follow this dock (its own parent is a scroll area)."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                self.correct.release()
            else:
                self.correct.attach()
        return super().event(event)
