"""Keyboard shortcuts of a dock widget, bound through napari's keymap API while the widget is docked.

napari calls a key binding as ``func(viewer)`` and its action manager reads ``func.__name__`` on
every key press (a ``functools.partial`` has none: every key press then raises). Each shortcut
here is a plain named function (``deepseg_<method>``) that holds the widget weakly, bound with
``viewer.bind_key`` when the widget is docked and unbound when it leaves its dock (napari's
close button re-parents the widget to None), is hidden or destroyed. Unbinding only removes
our own functions, so napari's keys and other plugins' keys bound since stay as they are.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from napari.utils.key_bindings import coerce_keybinding


def _named_handler(target: weakref.ref, method: str, text: str) -> Callable[[Any], None]:
    """A key handler named ``deepseg_<method>`` calling ``target().method()`` while it lives."""

    def handler(_viewer: Any = None) -> None:
        widget = target()
        if widget is not None:
            getattr(widget, method)()

    handler.__name__ = handler.__qualname__ = f"deepseg_{method}"
    handler.__doc__ = text
    return handler


class Shortcuts:
    """A widget's shortcuts on a viewer's keymap.

    Args:
        viewer: the napari viewer whose keymap receives the bindings.
        widget: the object whose methods the keys call (held weakly).
        table: ``{key: (method name, description)}``, keys in napari's form (``"Shift-M"``).
    """

    def __init__(self, viewer: Any, widget: Any, table: dict[str, tuple[str, str]]) -> None:
        self._viewer = weakref.ref(viewer)
        target = weakref.ref(widget)
        self.table = dict(table)
        self.handlers = {key: _named_handler(target, method, text) for key, (method, text) in table.items()}
        self.bound = False

    def bind(self) -> None:
        """Bind every shortcut on the viewer (replacing whatever those keys did)."""
        viewer = self._viewer()
        if viewer is None or self.bound:
            return
        for key, handler in self.handlers.items():
            viewer.bind_key(key, handler, overwrite=True)
        self.bound = True

    def release(self) -> None:
        """Unbind the keys still bound to our handlers (others' later bindings are left alone)."""
        viewer = self._viewer()
        self.bound = False
        if viewer is None:
            return
        for key, handler in self.handlers.items():
            if viewer.keymap.get(coerce_keybinding(key)) is handler:
                viewer.bind_key(key, None)

    def help_html(self) -> str:
        """The shortcuts as a small HTML table (key, what it does) for the widget's help."""
        rows = "".join(
            f"<tr><td><b>{key}</b>&nbsp;</td><td>{text}</td></tr>" for key, (_, text) in self.table.items()
        )
        return f"<table>{rows}</table>"
