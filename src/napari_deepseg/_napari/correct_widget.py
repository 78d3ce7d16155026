"""The "Correct" dock widget: object-level edits of a Labels layer, each one undo step.

Form fields plus short handlers: every edit calls a :mod:`napari_deepseg.correction` function
with ``apply=False`` and writes its :class:`~napari_deepseg.correction.Edit` with
``layer.data_setitem`` (one entry in the layer's undo history: ctrl-z restores it exactly).
Edits act on what is shown: the current plane in 2D view, the current volume in 3D view.
Geometry (seeds, cut lines, selection clicks) is :mod:`.correct_tools`; reviewed regions are
:mod:`.reviewed`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..correction import (
    Edit,
    delete_labels,
    fill_holes,
    merge_labels,
    relabel_sequential,
    remove_small,
    split_label,
    split_label_by_line,
)
from ..errors import DeepsegError
from . import correct_tools as tools
from . import guard_triton
from . import reviewed as rv
from .compact import fit_combos, fit_labels
from .correct_colors import recolour
from .correct_recovery import RecoveryActions
from .correct_reviewed import ReviewedActions
from .correct_target import TargetFollowing, header_text
from .layers import plain_viewer
from .selection import SelectionHighlight, default_labels, is_helper_layer
from .shortcuts import Shortcuts

if TYPE_CHECKING:
    import napari


# key -> (method name, what it does); bound on the viewer's keymap while the widget is docked
SHORTCUTS: dict[str, tuple[str, str]] = {
    "Shift-M": ("merge", "merge the selected objects"),
    "Shift-D": ("delete_under_cursor", "delete the object under the cursor"),
    "Shift-S": ("split_by_seeds", "split the object under the seeds"),
    "Shift-C": ("cut_by_line", "cut an object along the last drawn line"),
    "Shift-H": ("fill", "fill holes (of the selected objects, or all)"),
    "Shift-R": ("mark_view", "mark the current view as reviewed"),
    "Shift-X": ("clear_selection", "clear the selection"),
}


def _tip(method: str, text: str) -> str:
    key = next((k for k, (m, _) in SHORTCUTS.items() if m == method), None)
    return f"{text} [{key}]" if key else text


class CorrectWidget(ReviewedActions, TargetFollowing, RecoveryActions, QWidget):
    """Dock widget: labels layer, selection, merge/delete/split/cut, cleanup, reviewed regions.

    While docked, its shortcuts (:data:`SHORTCUTS`) are bound on the viewer's keymap and a
    shift-click callback on the viewer selects objects of the chosen layer; both are released
    when the widget leaves its dock (napari's close button) or is destroyed.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        guard_triton()  # a later torch import in this process must not load triton (see guard_triton)
        self.viewer = plain_viewer(napari_viewer)  # not napari's proxy (see plain_viewer)
        self.selection: list[int] = []
        self.shortcuts = Shortcuts(napari_viewer, self, SHORTCUTS)
        self.highlight = SelectionHighlight(napari_viewer)
        self._build_form()
        self._connect()
        start = default_labels(napari_viewer)
        if start is not None:
            self.labels.value = start
        self._on_labels_changed()
        self.attach()
        self.offer_copies()

    # ----- form -----
    def _button(self, text: str, method: str, tip: str) -> PushButton:
        button = PushButton(text=text, tooltip=_tip(method, tip))
        button.changed.connect(lambda _v=None: getattr(self, method)())
        return button

    def _build_form(self) -> None:
        self.labels = ComboBox(label="labels", choices=partial(self._choices, Labels), nullable=False)
        self.labels.tooltip = "The Labels layer the tools edit (ctrl-z in napari undoes each edit)"
        self.header = Label(value=header_text(None))  # always names the layer edited
        self.selected = Label(value="selected: none (shift-click objects)")
        self.selected.tooltip = "Shift-click an object in the labels layer to (de)select it"
        self.points = ComboBox(label="seeds", choices=partial(self._choices, Points))
        self.shapes = ComboBox(label="cut lines", choices=self._line_choices)
        self.min_size = SpinBox(label="min size (px)", min=1, max=10**7, value=30)
        self.status = Label(value="ready")
        fit_labels(self.status, self.selected, self.header)
        fit_combos(self.labels, self.points, self.shapes)
        b = self._button
        rows = [
            [b("Merge", "merge", "merge the selected objects into one"),
             b("Delete", "delete_selected", "delete the selected objects"),
             b("Clear", "clear_selection", "clear the selection")],
            [b("Split by seeds", "split_by_seeds",
               "split the object under the seeds (two or more points of the seeds layer)")],
            [b("Cut along line", "cut_by_line", "cut an object along the last line in the cut-lines layer")],
            [b("Remove small", "remove_small_objects", "delete objects smaller than the minimum size")],
            [b("Fill holes", "fill", "fill holes of the selected objects (or of all)"),
             b("Relabel 1..N", "relabel", "renumber all objects 1..N (whole layer)")],
        ]  # fmt: skip
        reviewed = [
            [b("Draw reviewed", "draw_reviewed", "draw rectangles over the regions you checked"),
             b("Mark view reviewed", "mark_view", "add the visible canvas as a reviewed rectangle")],
            [b("Clear reviewed", "clear_reviewed", "forget the reviewed regions of this layer"),
             b("Load mask...", "load_dialog", "load a .reviewed.npz mask saved with these labels")],
            [b("Save labels + reviewed mask...", "save_dialog",
               "write the labels TIFF and <file>.reviewed.npz next to it")],
        ]  # fmt: skip
        layout = QVBoxLayout(self)
        layout.addWidget(self.header.native)
        layout.addWidget(self._build_recovery().native)  # shown when unsaved labels can be restored
        form = Container(widgets=[self.labels, self.selected])
        layout.addWidget(form.native)
        for i, row in enumerate(rows):
            if i == 1:
                layout.addWidget(Container(widgets=[self.points, self.shapes, self.min_size]).native)
            layout.addWidget(Container(layout="horizontal", labels=False, widgets=row).native)
        layout.addWidget(Label(value="<b>Reviewed regions</b>").native)
        for row in reviewed:
            layout.addWidget(Container(layout="horizontal", labels=False, widgets=row).native)
        layout.addWidget(self.status.native)
        keys = QCollapsible("Shortcuts", self)
        help_label = QLabel("Shift-click: (de)select an object" + self.shortcuts.help_html())
        help_label.setWordWrap(True)
        keys.addWidget(help_label)
        layout.addWidget(keys)
        layout.addStretch(1)
        self.setToolTip("Shortcuts: " + "; ".join(f"{k}: {t}" for k, (_, t) in SHORTCUTS.items()))

    def _choices(self, kind: type, _widget: Any = None) -> list[tuple[str, Any]]:
        return [  # multiscale labels (a large plane's running layer) cannot be painted: not offered
            (lyr.name, lyr)
            for lyr in self.viewer.layers
            if isinstance(lyr, kind) and not is_helper_layer(lyr) and not getattr(lyr, "multiscale", False)
        ]

    def _line_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(n, layer) for n, layer in self._choices(Shapes) if not rv.is_reviewed_shapes(layer)]

    def _connect(self) -> None:
        events = self.viewer.layers.events
        events.removed.connect(self._on_removed)  # first: the pickers still hold the removed layer
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self._reset_choices)
        events.inserted.connect(lambda e: e.value.events.name.connect(self._reset_choices))
        events.inserted.connect(self._on_inserted)
        self.viewer.layers.selection.events.active.connect(self._follow_active)
        self.viewer.dims.events.current_step.connect(self._show_selection)
        self.labels.changed.connect(self._on_labels_changed)

    # ----- docked: keys and shift-click on the viewer -----
    def attach(self) -> None:
        """Bind the shortcuts and the shift-click selection on the viewer."""
        self.shortcuts.bind()
        self.watch_layer_list(True)
        if self._on_click not in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.append(self._on_click)

    def release(self) -> None:
        """Unbind the shortcuts and shift-click, remove the selection highlight."""
        self.shortcuts.release()
        self.watch_layer_list(False)
        self.recovery.flush()  # edits waiting for their copy are written now
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)
        self.highlight.remove()
        self.highlight.disconnect()

    def event(self, event: QEvent) -> bool:
        """Attach when docked, release when napari's close button takes the widget out of its dock."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                self.release()
            else:
                self.attach()
        return super().event(event)

    def _reset_choices(self, _event: Any = None) -> None:
        """Refresh the pickers; a layer still in the viewer stays chosen (magicgui's combo box
        can move to another entry when a layer is renamed)."""
        for combo in (self.labels, self.points, self.shapes):
            kept = combo.value
            combo.reset_choices()
            if kept is not None and kept in combo.choices and combo.value is not kept:
                combo.value = kept
        self.header.value = header_text(self.labels.value)

    def _on_labels_changed(self, _value: Any = None) -> None:
        """A new target: named in the header; the old one's status and selection go."""
        self.header.value = header_text(self.labels.value)
        self.recovery.watch(self.labels.value)  # a recovery copy after each burst of edits
        self.status.value = "ready"
        self._set_selection([])

    # ----- selection -----
    def _on_click(self, _viewer: Any, event: Any) -> None:
        """Shift-click on the canvas: (de)select the object of the chosen layer under the cursor."""
        layer, active = self.labels.value, self.viewer.layers.selection.active
        if event.type != "mouse_press" or "Shift" not in event.modifiers or layer is None:
            return
        if active is not None and active is not layer and not isinstance(active, Image):
            return  # shift-click belongs to the active Points/Shapes layer's own tools
        value = tools.value_at(layer, event.position, event.view_direction, event.dims_displayed)
        if not value:
            return
        ids = [i for i in self.selection if i != value]
        self._set_selection(ids if len(ids) < len(self.selection) else [*self.selection, value])

    def _set_selection(self, ids: list[int]) -> None:
        self.selection = ids
        text = ", ".join(map(str, ids)) if ids else "none (shift-click objects)"
        self.selected.value = f"selected: {text}"
        self._show_selection()

    def _show_selection(self, _event: Any = None) -> None:
        layer = self.labels.value
        try:
            plane = tools.current_plane(self.viewer, layer) if layer is not None else None
        except DeepsegError:
            plane, layer = None, None  # rolled dims or off the layer: nothing to outline
        if self.viewer.dims.ndisplay != 2:
            layer = None
        self.highlight.show(layer, self.selection, plane)

    def clear_selection(self) -> None:
        """Forget the selected objects."""
        self._set_selection([])

    # ----- edits -----
    def _layer(self) -> Labels:
        layer = self.labels.value
        if not isinstance(layer, Labels):
            raise DeepsegError("no Labels layer chosen; open or create a Labels layer and choose it")
        if layer.multiscale:
            raise DeepsegError(f"{layer.name!r} is multiscale; correct a single-scale Labels layer")
        return layer

    def _apply(
        self, func: Callable[..., Edit], *args: Any, whole: bool = False, post: Any = None, **kwargs: Any
    ) -> Edit:
        layer = self._layer()
        plane = None if whole else tools.current_plane(self.viewer, layer)
        edit = func(layer.data, *args, plane=plane, apply=False, **kwargs)
        edit = post(edit) if post is not None else edit  # e.g. piece colours that stand out
        if edit.changed:
            layer.data_setitem(edit.indices, edit.values)
        return edit

    def _info(self, message: str) -> None:
        show_info(message)

    def _guarded(self, action: Callable[[], str]) -> bool:
        """Run ``action`` (returns a status line); show its error as a notification instead."""
        try:
            message = action()
        except ValueError as err:  # DeepsegError and the core's one-line ValueErrors
            self.status.value = f"not done: {err}"
            show_error(str(err))
            return False
        self.status.value = message
        return True

    def merge(self) -> bool:
        """Merge the selected objects into the first one selected."""

        def action() -> str:
            edit = self._apply(merge_labels, self.selection)
            self._set_selection([])
            return f"merged {list(edit.ids)} into {edit.new_ids[0]}"

        return self._guarded(action)

    def delete_selected(self) -> bool:
        """Delete the selected objects."""

        def action() -> str:
            edit = self._apply(delete_labels, self.selection)
            self._set_selection([])
            return f"deleted {list(edit.ids)}"

        return self._guarded(action)

    def delete_under_cursor(self) -> bool:
        """Delete the object under the mouse cursor."""

        def action() -> str:
            layer = self._layer()
            value = tools.value_under_cursor(self.viewer, layer)
            if not value:
                raise DeepsegError("no object under the cursor; point at an object and press Shift-D")
            self._apply(delete_labels, [value])
            self._set_selection([i for i in self.selection if i != value])
            return f"deleted {value}"

        return self._guarded(action)

    def split_by_seeds(self) -> bool:
        """Split the object under the seed points (two or more) of the seeds layer."""

        def action() -> str:
            layer, points = self._layer(), self.points.value
            if points is None:
                self.points.value = tools.new_seeds_layer(self.viewer, layer)
                return "click two or more seeds inside one object, then Split by seeds"
            plane = tools.current_plane(self.viewer, layer)
            seeds, rows = tools.points_in_plane(points, layer, plane)
            label_id = tools.seeded_object(layer, seeds, plane)
            guides = tools.split_guides(self.viewer, layer)
            pieces = recolour(layer, tools.source_image(self.viewer, layer))
            edit = self._apply(split_label, label_id, seeds, post=pieces, **guides)
            tools.remove_points(points, rows)
            return f"split {label_id} into {list(edit.new_ids)}"

        return self._guarded(action)

    def cut_by_line(self) -> bool:
        """Cut an object along the last line or path of the cut-lines layer."""

        def action() -> str:
            layer, shapes = self._layer(), self.shapes.value
            if shapes is None:
                self.shapes.value = tools.new_lines_layer(self.viewer, layer)
                return "draw a line across the object, then Cut along line"
            plane = tools.current_plane(self.viewer, layer)
            if self.viewer.dims.ndisplay != 2:
                raise DeepsegError("cut along a line in 2D view; switch the viewer to 2D")
            index, line = tools.last_line(shapes, layer, plane)
            label_id = tools.crossed_object(layer, line, plane, self.selection)
            pieces = recolour(layer, tools.source_image(self.viewer, layer))
            edit = self._apply(split_label_by_line, label_id, line, post=pieces)
            tools.remove_shape(shapes, index)
            return f"cut {label_id} into {list(edit.new_ids)}"

        return self._guarded(action)

    def remove_small_objects(self) -> bool:
        """Delete objects smaller than the minimum size (in the plane or volume shown)."""
        return self._guarded(
            lambda: f"removed {len(self._apply(remove_small, self.min_size.value).ids)} small objects"
        )

    def fill(self) -> bool:
        """Fill holes of the selected objects, or of every object when none is selected."""
        ids = list(self.selection) or None
        return self._guarded(lambda: f"filled holes of {len(self._apply(fill_holes, ids).ids)} objects")

    def relabel(self) -> bool:
        """Renumber the objects of the whole layer 1..N."""

        def action() -> str:
            edit = self._apply(relabel_sequential, whole=True)
            self._set_selection([])
            return f"renumbered {len(edit.ids)} objects"

        return self._guarded(action)
