"""Ask before napari's window closes while a run is going (the Fine-tune widget's training).

:class:`CloseGuard` filters the main window's close event: while ``busy()``, it asks whether to
stop the run and keep what it has (``stop()``; the window then closes once the run has ended,
see :meth:`CloseGuard.run_ended`) or to keep it running (the window stays open).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QMessageBox, QWidget


class CloseGuard(QObject):
    """Event filter on napari's main window (see the module docstring).

    Args:
        window: napari's main window (the root of a docked widget's Qt parents).
        busy: whether a run is going.
        question: the text of the question (e.g. where the model will be saved).
        stop: stops the run so that it saves what it has.

    The callables should hold their widget weakly (the guard lives as long as the window).
    """

    def __init__(
        self, window: QWidget, busy: Callable[[], bool], question: Callable[[], str], stop: Callable[[], None]
    ) -> None:
        super().__init__(window)  # the window is the parent (not kept in an attribute: no cycle)
        self.busy, self.question, self.stop = busy, question, stop
        self.close_pending = False
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        """Hold a close of the window while busy, after asking."""
        window = self.parent()
        if window is None or obj is not window or event.type() != QEvent.Type.Close or not self.busy():
            return False
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        answer = QMessageBox.question(window, "napari-deepseg: training is running", self.question(), buttons)
        if answer == QMessageBox.StandardButton.Yes:
            self.close_pending = True
            self.stop()
        event.ignore()
        return True

    def run_ended(self) -> bool:
        """Close the window if the user asked to while the run went on; True when it will."""
        if not self.close_pending:
            return False
        self.close_pending = False
        QTimer.singleShot(0, self.parent().close)
        return True


def guard_window_of(
    widget: QWidget, busy: Callable[[], bool], question: Callable[[], str], stop: Callable[[], None]
) -> CloseGuard | None:
    """A :class:`CloseGuard` on the window ``widget`` is docked in, or ``None`` when it is in none.

    The window is the root of the widget's Qt parents (a floating dock keeps napari's window as
    its parent), not napari's private ``Window._qt_window``.
    """
    root = widget
    while root.parentWidget() is not None:
        root = root.parentWidget()
    return None if root is widget else CloseGuard(root, busy, question, stop)
