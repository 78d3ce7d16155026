"""Geometry for the Correct widget: the plane shown, values under clicks, seeds and cut lines.

All coordinates returned are in the Labels layer's *data* coordinates (array order, ``(..., y,
x)``), converted through world coordinates so Points and Shapes layers with other scales or
translations still line up. Errors are one-line :class:`~napari_deepseg.errors.DeepsegError`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Points, Shapes

from ..correction import rasterize_polyline
from ..errors import DeepsegError
from .correct_target import OWNER_KEY
from .layers import META_KEY

if TYPE_CHECKING:
    import napari


def current_plane(viewer: napari.Viewer, layer: Labels) -> tuple[int, ...] | None:
    """Leading indices of the plane (2D view) or volume (3D view) shown; None for the whole layer.

    Raises DeepsegError when the shown axes are not the layer's last ones (rolled/transposed
    dims) or the slider is outside the layer.
    """
    lead = layer.ndim - viewer.dims.ndisplay
    if lead <= 0:
        return None
    offset = viewer.dims.ndim - layer.ndim
    shown = sorted(d - offset for d in viewer.dims.displayed)
    if shown != list(range(lead, layer.ndim)):
        raise DeepsegError("corrections act on the last axes of the labels; reset the dims order first")
    position = layer.world_to_data(viewer.dims.point)
    plane = tuple(int(np.round(p)) for p in position[:lead])
    if any(not 0 <= p < n for p, n in zip(plane, layer.data.shape)):
        raise DeepsegError(f"the current slice is outside {layer.name!r}; move the slider onto it")
    return plane


def value_at(layer: Labels, position: Any, view_direction: Any = None, dims_displayed: Any = None) -> int:
    """The label under a world ``position`` (0 for background, outside or an invisible layer)."""
    value = layer.get_value(
        position, view_direction=view_direction, dims_displayed=dims_displayed, world=True
    )
    if isinstance(value, tuple):  # multiscale: (level, value)
        value = value[-1]
    return 0 if value is None else int(value)


def value_under_cursor(viewer: napari.Viewer, layer: Labels) -> int:
    """The label under the mouse cursor (0 when none)."""
    direction = None if viewer.dims.ndisplay == 2 else getattr(viewer.cursor, "_view_direction", None)
    return value_at(layer, viewer.cursor.position, direction, list(viewer.dims.displayed))


def _in_labels(layer: Points | Shapes, labels: Labels, vertices: Any) -> np.ndarray:
    """``(N, labels.ndim)`` coordinates of ``layer``'s data-space ``vertices`` in ``labels``' data space."""
    pts = [labels.world_to_data(layer.data_to_world(v)) for v in np.asarray(vertices)]
    return np.asarray(pts, float).reshape(-1, labels.ndim)


def _on_plane(coords: np.ndarray, plane: tuple[int, ...] | None) -> np.ndarray:
    """Boolean per row: the leading coordinates round to ``plane`` (all True without a plane)."""
    if not plane:
        return np.ones(len(coords), bool)
    return np.all(np.round(coords[:, : len(plane)]) == np.asarray(plane), axis=1)


def new_seeds_layer(viewer: napari.Viewer, labels: Labels) -> Points:
    """Add a Points layer ``"<labels> seeds"`` over ``labels``, active and in add mode."""
    layer = viewer.add_points(
        ndim=labels.ndim,
        name=f"{labels.name} seeds",
        scale=labels.scale,
        translate=labels.translate,
        face_color="yellow",
        size=max(3.0, min(labels.data.shape[-2:]) / 60),
        metadata={OWNER_KEY: id(labels)},  # removed with the labels
    )
    undo_keys_for(layer, labels)
    layer.mode = "add"
    return layer


def undo_keys_for(helper: Points | Shapes, labels: Labels) -> None:
    """Ctrl-Z / Ctrl-Shift-Z with the helper layer active undo / redo the labels' edits (a split
    or cut is made with its seeds or lines layer active, and napari's undo acts on the active
    layer only)."""
    owner = weakref.ref(labels)

    def undo(_layer: Any = None) -> None:
        if owner() is not None:
            owner().undo()

    def redo(_layer: Any = None) -> None:
        if owner() is not None:
            owner().redo()

    helper.bind_key("Control-Z", undo, overwrite=True)
    helper.bind_key("Control-Shift-Z", redo, overwrite=True)


def points_in_plane(
    points: Points, labels: Labels, plane: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``points`` on ``plane`` (labels data coordinates) and their row indices."""
    coords = _in_labels(points, labels, points.data)
    rows = np.nonzero(_on_plane(coords, plane))[0]
    if len(rows) < 2:
        raise DeepsegError(
            f"{points.name!r} has {len(rows)} seed(s) here; add two or more seeds inside the object to split"
        )
    return coords[rows], rows


def seeded_object(labels: Labels, seeds: np.ndarray, plane: tuple[int, ...] | None) -> int:
    """The object under the first seed (the one to split)."""
    index = tuple(int(i) for i in np.round(seeds[0]))
    if any(not 0 <= i < n for i, n in zip(index, labels.data.shape)):
        raise DeepsegError("the first seed is outside the labels; place the seeds inside the object to split")
    value = int(labels.data[index])
    if value == 0:
        raise DeepsegError("the first seed is on background; place the seeds inside the object to split")
    return value


def remove_points(points: Points, rows: np.ndarray) -> None:
    """Delete the given rows of a Points layer (the seeds just used)."""
    points.selected_data = {int(r) for r in rows}
    points.remove_selected()


def new_lines_layer(viewer: napari.Viewer, labels: Labels) -> Shapes:
    """Add a Shapes layer ``"<labels> cut lines"`` over ``labels``, active and in add-line mode."""
    layer = viewer.add_shapes(
        ndim=labels.ndim,
        name=f"{labels.name} cut lines",
        scale=labels.scale,
        translate=labels.translate,
        edge_color="red",
        edge_width=1,
        metadata={OWNER_KEY: id(labels)},  # removed with the labels
    )
    undo_keys_for(layer, labels)
    layer.mode = "add_line"
    return layer


def last_line(shapes: Shapes, labels: Labels, plane: tuple[int, ...] | None) -> tuple[int, np.ndarray]:
    """Index and labels-space vertices ``(N, ndim)`` of the last line or path drawn on ``plane``."""
    for index in reversed(range(len(shapes.data))):
        if shapes.shape_type[index] not in ("line", "path"):
            continue
        coords = _in_labels(shapes, labels, shapes.data[index])
        if _on_plane(coords, plane).all():
            return index, coords
    raise DeepsegError(f"no line or path in {shapes.name!r} here; draw a line across the object to cut")


def crossed_object(
    labels: Labels, line: np.ndarray, plane: tuple[int, ...] | None, selection: list[int]
) -> int:
    """The object to cut: the one selected if exactly one is, else the one most under the line."""
    if len(selection) == 1:
        return selection[0]
    sub = np.asarray(labels.data[plane] if plane else labels.data)
    path = rasterize_polyline(np.round(line[:, -2:]).astype(np.int64), sub.shape[-2:])
    ids, counts = np.unique(sub[path], return_counts=True)
    counts, ids = counts[ids > 0], ids[ids > 0]
    if not ids.size:
        raise DeepsegError("the line does not cross any object; draw it across the object to cut")
    return int(ids[np.argmax(counts)])


def remove_shape(shapes: Shapes, index: int) -> None:
    """Delete one shape (the cut line just used)."""
    shapes.selected_data = {index}
    shapes.remove_selected()


def _spatial_shape(layer: Image) -> tuple[int, ...]:
    return tuple(layer.data.shape[:-1] if layer.rgb else layer.data.shape)


def source_image(viewer: napari.Viewer, labels: Labels) -> Image | None:
    """The image ``labels`` were segmented from (Segment's record), else the top-most visible
    image of the labels' shape (RGB allowed), else any image of that shape; None without one."""
    images = [lyr for lyr in viewer.layers if isinstance(lyr, Image) and not lyr.multiscale]
    fitting = [lyr for lyr in images if _spatial_shape(lyr) == tuple(labels.data.shape)]
    source = (labels.metadata.get(META_KEY) or {}).get("source")
    named = [lyr for lyr in fitting if lyr.name == source]
    plain = [lyr for lyr in fitting if not lyr.metadata.get("deepseg_probability")]
    visible = [lyr for lyr in plain if lyr.visible]
    return (named or visible[::-1] or plain[::-1] or [None])[0]


def split_guides(viewer: napari.Viewer, labels: Labels) -> dict[str, Any]:
    """``image=`` and ``boundary=`` for :func:`~napari_deepseg.correction.split_label`, where found.

    The image is :func:`source_image`; the boundary is that run's ``... probability boundary``
    layer when the probabilities were kept.
    """
    image = source_image(viewer, labels)
    source = (labels.metadata.get(META_KEY) or {}).get("source")
    boundary = [
        lyr
        for lyr in viewer.layers
        if isinstance(lyr, Image)
        and not lyr.multiscale
        and lyr.metadata.get("deepseg_probability")
        and _spatial_shape(lyr) == tuple(labels.data.shape)
        and lyr.name.endswith(" boundary")
        and (source is None or lyr.name.startswith(f"{source} "))
    ]
    return {
        "image": None if image is None else image.data,
        "boundary": boundary[-1].data if boundary else None,
    }
