"""Correct's recovery copies in napari: no edit is lost to a crash or a close without saving.

:class:`RecoveryKeeper` watches the Labels layers Correct edits. Each burst of edits (napari's
``paint`` event: brush, fill, eraser, Correct's own edits) restarts a :data:`DEBOUNCE_MS` timer;
when it fires, the labels are written in a worker thread (:func:`.workers.start_worker`, never
on the GUI thread) as a copy keyed by their source image
(:mod:`napari_deepseg.correction.recovery`). One write at a time; edits during a write are
written after it. When an image with copies is shown (added to the viewer, or there when
Correct opens), :class:`RecoveryActions` offers them in Correct's restore row (Restore /
Discard) and with a notification; nothing blocks. Saving the labels removes the copy.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, Label, PushButton
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ..correction.recovery import RecoveryCopy, clear_copy, find_copies, image_key, write_copy_iter
from .compact import fit_labels
from .correct_tools import source_image
from .workers import start_worker

if TYPE_CHECKING:
    import napari

DEBOUNCE_MS = 1500  # quiet time after the last edit before a copy is written
_announced: set[str] = set()  # copies already announced in this napari session (one notification each)


def _key_of(image: Image) -> str:
    return image_key(image.data, image.name)


class RecoveryKeeper:
    """Debounced background copies of watched Labels layers; the copies of images shown."""

    def __init__(self, viewer: napari.Viewer, on_offer: Callable[[], None]) -> None:
        self.viewer = viewer
        self.on_offer = on_offer
        self.watched: weakref.WeakValueDictionary[int, Labels] = weakref.WeakValueDictionary()
        self.dirty: dict[int, Labels] = {}
        self.writing: tuple[str, str] | None = None  # (image key, labels name) being written
        self.saved_meanwhile = False
        self.written: list[str] = []  # paths written (newest last)
        self.timer = QTimer()
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.flush)
        viewer.layers.events.inserted.connect(self._on_inserted)  # a method: napari holds it weakly

    def watch(self, labels: Labels | None) -> None:
        """Keep copies of ``labels`` from its next edit on."""
        if labels is None or id(labels) in self.watched:
            return
        self.watched[id(labels)] = labels
        labels.events.paint.connect(self._on_paint)

    def _on_paint(self, event: Any) -> None:
        layer = getattr(event, "source", None)
        if isinstance(layer, Labels):
            self.dirty[id(layer)] = layer
            self.timer.start()  # restarts: one write per burst of edits

    def flush(self) -> None:
        """Write the next edited layer now (in a worker); the rest follow one at a time."""
        if self.writing or not self.dirty:
            return
        layer = self.dirty.pop(next(iter(self.dirty)))
        image = source_image(self.viewer, layer) if layer in self.viewer.layers else None
        if image is None:  # no source image to key it by (or the layer is gone)
            return self.flush()
        self.writing, self.saved_meanwhile = (_key_of(image), layer.name), False
        start_worker(
            write_copy_iter, layer.data, self.writing[0], image.name, layer.name,
            title="deepseg recovery copy", on_done=self._on_written, on_error=self._on_failed,
            on_finished=self._on_finished,
        )  # fmt: skip
        return None

    def _on_written(self, path: Any) -> None:
        if path is not None:
            self.written.append(str(path))

    def _on_failed(self, err: BaseException) -> None:
        show_info(f"could not write a recovery copy of the labels: {err}")

    def _on_finished(self) -> None:
        if self.saved_meanwhile and self.writing is not None:
            clear_copy(*self.writing)  # saved while this copy was being written: not needed
        self.writing = None
        if self.dirty:
            self.timer.start()

    def saved(self, labels: Labels) -> None:
        """The labels were saved: their copy goes (and edits already waiting are dropped)."""
        self.dirty.pop(id(labels), None)
        image = source_image(self.viewer, labels)
        if image is not None:
            clear_copy(_key_of(image), labels.name)
            self.saved_meanwhile = self.writing == (_key_of(image), labels.name)

    def offers(self) -> list[tuple[Image, RecoveryCopy]]:
        """Copies of the images shown whose labels are not open under their name."""
        names = {layer.name for layer in self.viewer.layers if isinstance(layer, Labels)}
        out = []
        for image in [lyr for lyr in self.viewer.layers if isinstance(lyr, Image) and not lyr.multiscale]:
            out += [(image, c) for c in find_copies(_key_of(image)) if c.labels not in names]
        return out

    def _on_inserted(self, event: Any) -> None:
        if isinstance(event.value, Image):
            self.on_offer()

    def close(self) -> None:
        """Write what is waiting, stop following the viewer (Correct closed)."""
        self.timer.stop()
        self.flush()
        self.viewer.layers.events.inserted.disconnect(self._on_inserted)


def restore(viewer: napari.Viewer, image: Image, copy: RecoveryCopy) -> Labels:
    """Add the copy as a Labels layer over ``image`` (its name, or ``... (recovered)`` if taken)."""
    taken = {layer.name for layer in viewer.layers}
    name = copy.labels if copy.labels not in taken else f"{copy.labels} (recovered)"
    return viewer.add_labels(copy.read(), name=name, scale=image.scale[-len(copy.shape) :],
                             translate=image.translate[-len(copy.shape) :])  # fmt: skip


class RecoveryActions:
    """Correct's restore row: the copies offered, Restore and Discard (a mixin)."""

    viewer: napari.Viewer
    labels: Any
    status: Any

    def _build_recovery(self) -> Container:
        self.recovery = RecoveryKeeper(self.viewer, self.offer_copies)
        self.recovery_text = Label(value="")
        fit_labels(self.recovery_text)
        self.restore_button = PushButton(text="Restore", tooltip="add the unsaved labels as a Labels layer")
        self.discard_button = PushButton(text="Discard", tooltip="delete this recovery copy")
        self.restore_button.changed.connect(lambda _v=None: self.restore_copy())
        self.discard_button.changed.connect(lambda _v=None: self.discard_copy())
        buttons = Container(
            layout="horizontal", labels=False, widgets=[self.restore_button, self.discard_button]
        )
        self.recovery_row = Container(labels=False, widgets=[self.recovery_text, buttons])
        self.recovery_row.visible = False
        self._offered: list[tuple[Image, RecoveryCopy]] = []
        return self.recovery_row

    def offer_copies(self) -> None:
        """Show the first copy of an image shown (non-blocking: a row and a notification)."""
        known = {c.path for _, c in self._offered}
        self._offered = self.recovery.offers()
        if not self._offered:
            self.recovery_row.visible = False
            return
        image, copy = self._offered[0]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(copy.saved))
        text = f"Unsaved labels {copy.labels!r} of {image.name!r} ({when}) can be restored"
        self.recovery_text.value = text
        self.recovery_row.visible = True
        if copy.path not in known and str(copy.path) not in _announced:
            _announced.add(str(copy.path))
            show_info(f"napari-deepseg: {self.recovery_text.value} (Correct: Restore)")

    def restore_copy(self) -> Labels | None:
        """Add the offered copy as a Labels layer, edited by Correct from now on."""
        if not self._offered:
            return None
        image, copy = self._offered[0]
        layer = restore(self.viewer, image, copy)
        self.labels.value = layer  # the person asked for it
        self.recovery.watch(layer)
        self.status.value = f"restored {layer.name!r} ({copy.path.name})"
        self.offer_copies()
        return layer

    def discard_copy(self) -> None:
        """Delete the offered copy."""
        if self._offered:
            self._offered.pop(0)[1].path.unlink(missing_ok=True)
        self.offer_copies()


class RecoveryNotice:
    """For the other DeepSeg docks: a notification when an image with recovery copies is added
    (restoring is Correct's: Plugins > DeepSeg > Correct)."""

    def __init__(self, viewer: napari.Viewer) -> None:
        viewer.layers.events.inserted.connect(self._on_inserted)  # a method: napari holds it weakly

    def _on_inserted(self, event: Any) -> None:
        image = event.value
        if not isinstance(image, Image) or image.multiscale:
            return
        for copy in find_copies(_key_of(image)):
            if str(copy.path) not in _announced:
                _announced.add(str(copy.path))
                show_info(
                    f"napari-deepseg: unsaved labels {copy.labels!r} of {image.name!r} can be restored: "
                    "open Plugins > DeepSeg > Correct"
                )
