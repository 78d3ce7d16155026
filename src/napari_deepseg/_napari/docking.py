"""The Plugins > DeepSeg entries as docks that never grow napari's window past the screen.

napari stacks the docks it opens from the Plugins menu in one column; four DeepSeg docks in one
column asked for 2587 px on a 768 px screen and napari's window grew to it (and Fine-tune alone
needs about 930 px). The classes here (named by ``napari.yaml``) are the dock widgets with one
addition: once docked, the widget scrolls inside its dock (:class:`DockScroll`; napari's
``dock_widgets`` and ``add_plugin_dock_widget`` still give the widget itself), the dock is made a
tab of the first DeepSeg dock in the same area (:func:`tabify_deepseg_docks`), and the window is
brought back within the screen's available height if it grew meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QApplication, QDockWidget, QMainWindow, QScrollArea, QWidget

from .batch_widget import BatchWidget
from .correct_recovery import RecoveryNotice
from .correct_widget import CorrectWidget
from .segment_widget import SegmentWidget
from .train_widget import FineTuneWidget

if TYPE_CHECKING:
    import napari

DOCK_FLAG = "deepseg_tabbed_dock"


def _dock_of(widget: QWidget) -> QDockWidget | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def _is_deepseg(dock: QDockWidget) -> bool:
    inner = dock.widget()
    found = [inner, *(inner.findChildren(QWidget) if inner is not None else [])]
    return any(getattr(w, DOCK_FLAG, False) for w in found[:50])


def tabify_deepseg_docks(window: QMainWindow, newest: QDockWidget) -> bool:
    """Make every DeepSeg dock in ``newest``'s area a tab of the first one, ``newest`` on top;
    then keep the window within the screen. True when there was more than one."""
    area = window.dockWidgetArea(newest)
    docks = [
        d
        for d in window.findChildren(QDockWidget)
        if not d.isFloating() and window.dockWidgetArea(d) == area and _is_deepseg(d)
    ]
    anchor = docks[0] if docks else newest
    for dock in docks[1:]:
        if dock not in window.tabifiedDockWidgets(anchor):
            window.tabifyDockWidget(anchor, dock)
    if len(docks) > 1:
        newest.show()
        newest.raise_()
    QTimer.singleShot(0, lambda: fit_window_to_screen(window))  # once the layout has shrunk
    return len(docks) > 1


def fit_window_to_screen(window: QWidget) -> None:
    """Shrink the window to the available screen area when it grew past it."""
    screen = window.screen() or QApplication.primaryScreen()
    if screen is None or window.isFullScreen() or window.isMaximized():
        return
    room = screen.availableGeometry()
    frame = window.frameGeometry().height() - window.geometry().height()
    height = min(window.height(), room.height() - frame)
    width = min(window.width(), room.width())
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)


class DockScroll(QScrollArea):
    """A dock's scrolling shell around a DeepSeg widget; napari sees the widget through it
    (``inner_widget()`` returns ``_magic_widget``), and the widget's attach/release follow the
    shell being docked or closed (napari's close button takes the shell out of the dock)."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self._magic_widget = widget
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            hook = "release" if self.parent() is None else "attach"
            if hasattr(self._magic_widget, hook):
                getattr(self._magic_widget, hook)()
        return super().event(event)


def _tab_when_docked(widget: QWidget) -> None:
    """After napari docks ``widget`` (the next event-loop turns): scroll it, tabify its dock."""
    setattr(widget, DOCK_FLAG, True)

    def run(tries: int = 20) -> None:
        dock = _dock_of(widget)
        window = dock.parentWidget() if dock is not None else None
        if isinstance(window, QMainWindow):
            if dock.widget() is widget:
                dock.setWidget(DockScroll(widget))
            tabify_deepseg_docks(window, dock)
        elif tries:
            QTimer.singleShot(10, lambda: run(tries - 1))

    QTimer.singleShot(0, run)


class _TabbedDock:
    """What every Plugins-menu entry adds to its widget: once docked it scrolls and becomes a
    tab of the DeepSeg docks (:func:`_tab_when_docked`); ``notice``: it also says when unsaved
    labels wait to be restored (Correct restores them itself)."""

    notice = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: Any = None) -> None:
        super().__init__(napari_viewer, parent)
        _tab_when_docked(self)
        if self.notice:
            self.recovery_notice = RecoveryNotice(self.viewer)


class SegmentDock(_TabbedDock, SegmentWidget):
    """Plugins > DeepSeg > Segment (a tab of the DeepSeg docks)."""


class CorrectDock(_TabbedDock, CorrectWidget):
    """Plugins > DeepSeg > Correct (a tab of the DeepSeg docks)."""

    notice = False


class FineTuneDock(_TabbedDock, FineTuneWidget):
    """Plugins > DeepSeg > Fine-tune (a tab of the DeepSeg docks)."""


class BatchDock(_TabbedDock, BatchWidget):
    """Plugins > DeepSeg > Batch (a tab of the DeepSeg docks)."""
