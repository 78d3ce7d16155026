"""Run by test_docking.py under its own 1366x768 Xvfb screen: a shown napari window; the four
Plugins > DeepSeg entries are clicked in the Plugins menu one after another (their menu actions
triggered, as a click does); prints the screen's available height, the window's height after
each, and how many DeepSeg docks are visible tabs."""

from __future__ import annotations

import json
import sys

import napari
from qtpy.QtWidgets import QApplication, QDockWidget

ENTRIES = ("Segment", "Correct", "Fine-tune", "Batch")


def _actions(menu):
    for action in menu.actions():
        if action.menu() is not None:
            yield from _actions(action.menu())
        else:
            yield action


def main(order: list[str]) -> None:
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    window = viewer.window._qt_window
    for _ in range(20):
        app.processEvents()
    plugins = next(a.menu() for a in window.menuBar().actions() if "Plugins" in a.text())
    heights = []
    for entry in order:
        (action,) = [a for a in _actions(plugins) if a.text().replace("&", "") == entry]
        action.trigger()
        for _ in range(30):
            app.processEvents()
        heights.append(window.frameGeometry().height())
    docks = [d for d in window.findChildren(QDockWidget) if d.windowTitle().split(" (")[0] in ENTRIES]
    tabbed = {d.windowTitle().split(" (")[0] for d in docks if window.tabifiedDockWidgets(d)}
    room = window.screen().availableGeometry().height()
    inner = sorted(type(w).__name__ for w in viewer.window.dock_widgets.values())
    report = {"room": room, "heights": heights, "docks": len(docks), "tabbed": sorted(tabbed), "inner": inner}
    print(json.dumps(report))
    sys.stdout.flush()
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1:] or list(ENTRIES))
