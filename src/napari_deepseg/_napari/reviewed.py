"""Reviewed regions of a Labels layer in napari: rectangles in a Shapes layer -> layer metadata.

The reviewed mask of a Labels layer lives in ``layer.metadata["deepseg_reviewed"]`` (a boolean
array of the layer's data shape); :func:`reviewed_mask_for` reads it (the Fine-tune widget uses
it). The user draws rectangles in a Shapes layer named ``"<labels> reviewed"``
(:func:`reviewed_shapes_layer`), or adds the visible canvas as one (:func:`mark_view_reviewed`);
:func:`link_reviewed` keeps the metadata equal to the mask of those rectangles. The numpy parts
(rectangles -> mask, the ``.reviewed.npz`` sidecar) are :mod:`napari_deepseg.correction.reviewed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels, Shapes

from ..correction.reviewed import rectangles_to_mask
from ..errors import DeepsegError

if TYPE_CHECKING:
    import napari

REVIEWED_KEY = "deepseg_reviewed"
RECTANGLES_KEY = "deepseg_reviewed_rectangles"
LINK_KEY = "deepseg_reviewed_of"  # Shapes layer metadata: id() of the Labels layer it marks
REVIEWED_STYLE = {"face_color": "#2ca02c33", "edge_color": "#2ca02c", "edge_width": 2}


def reviewed_mask_for(labels_layer: Any) -> np.ndarray | None:
    """The reviewed mask of a Labels layer (bool, the layer's data shape), or None if unmarked.

    Raises DeepsegError when the stored mask no longer fits the layer's data (resized labels).
    """
    mask = getattr(labels_layer, "metadata", {}).get(REVIEWED_KEY)
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(labels_layer.data.shape):
        raise DeepsegError(
            f"the reviewed mask of {labels_layer.name!r} has shape {mask.shape} but the labels "
            f"{tuple(labels_layer.data.shape)}; clear and mark the reviewed regions again"
        )
    return mask


def set_reviewed_mask(labels_layer: Labels, mask: np.ndarray | None, rectangles: Any = ()) -> None:
    """Store (or with None, remove) the reviewed mask and its rectangles in the layer's metadata."""
    if mask is None:
        labels_layer.metadata.pop(REVIEWED_KEY, None)
        labels_layer.metadata.pop(RECTANGLES_KEY, None)
        return
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(labels_layer.data.shape):
        raise DeepsegError(
            f"reviewed mask shape {mask.shape} differs from the labels {tuple(labels_layer.data.shape)}"
        )
    labels_layer.metadata[REVIEWED_KEY] = mask
    labels_layer.metadata[RECTANGLES_KEY] = [np.asarray(r, float) for r in rectangles]


def shapes_in_labels_coords(shapes: Shapes, labels: Labels) -> list[np.ndarray]:
    """The rectangles/polygons of ``shapes`` as vertex arrays in ``labels``' data coordinates."""
    out = []
    for vertices, kind in zip(shapes.data, shapes.shape_type):
        if kind not in ("rectangle", "polygon"):
            continue
        out.append(np.array([labels.world_to_data(shapes.data_to_world(v)) for v in vertices]))
    return out


def sync_mask(shapes: Shapes, labels: Labels) -> np.ndarray | None:
    """Recompute the labels' reviewed mask from ``shapes`` (None and removed when it is empty)."""
    rects = shapes_in_labels_coords(shapes, labels)
    if not rects:
        set_reviewed_mask(labels, None)
        return None
    mask = rectangles_to_mask(rects, labels.data.shape)
    set_reviewed_mask(labels, mask, rects)
    return mask


def find_reviewed_shapes(viewer: napari.Viewer, labels: Labels) -> Shapes | None:
    """The Shapes layer linked to ``labels`` (see :func:`link_reviewed`), if it is in the viewer."""
    for layer in viewer.layers:
        if isinstance(layer, Shapes) and layer.metadata.get(LINK_KEY) == id(labels):
            return layer
    return None


def is_reviewed_shapes(layer: Any) -> bool:
    """Whether ``layer`` is a Shapes layer holding some Labels layer's reviewed rectangles."""
    return isinstance(layer, Shapes) and LINK_KEY in layer.metadata


def link_reviewed(shapes: Shapes, labels: Labels) -> None:
    """Keep ``labels``' reviewed mask equal to the rectangles of ``shapes`` from now on."""
    shapes.metadata[LINK_KEY] = id(labels)
    shapes.events.data.connect(lambda _event=None: sync_mask(shapes, labels))


def reviewed_shapes_layer(viewer: napari.Viewer, labels: Labels) -> Shapes:
    """The Shapes layer ``"<labels> reviewed"`` of ``labels``; created and linked if absent.

    A new layer starts with the rectangles stored in the labels' metadata (e.g. loaded from a
    sidecar) and shares the labels' scale and translation.
    """
    shapes = find_reviewed_shapes(viewer, labels)
    if shapes is not None:
        return shapes
    rects = [np.asarray(r, float) for r in labels.metadata.get(RECTANGLES_KEY, [])]
    shapes = Shapes(
        [_pad_to(r, labels.ndim) for r in rects],
        shape_type="rectangle",
        ndim=labels.ndim,
        name=f"{labels.name} reviewed",
        scale=labels.scale,
        translate=labels.translate,
        **REVIEWED_STYLE,
    )
    link_reviewed(shapes, labels)  # before adding: layer pickers already see it as reviewed
    viewer.add_layer(shapes)
    return shapes


def _pad_to(vertices: np.ndarray, ndim: int) -> np.ndarray:
    return np.pad(vertices, ((0, 0), (max(ndim - vertices.shape[1], 0), 0)))[:, -ndim:]


def visible_rectangle(viewer: napari.Viewer, labels: Labels) -> np.ndarray:
    """The visible canvas as a rectangle (4, ndim) in ``labels``' data coordinates, clipped to it.

    Raises DeepsegError in 3D view or when the labels are not in view.
    """
    if viewer.dims.ndisplay != 2:
        raise DeepsegError("mark the view as reviewed in 2D view; switch the viewer to 2D first")
    displayed = list(viewer.dims.displayed)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9 / older
    half = np.asarray(viewer.canvas.size, float) / (2 * camera.zoom)
    center = np.asarray(camera.center, float)[-2:]
    point = np.asarray(viewer.dims.point, float)
    corners = []
    for dy, dx in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
        world = point.copy()
        world[displayed] = center + half * (dy, dx)
        corners.append(labels.world_to_data(world)[-labels.ndim :])
    rect = np.array(corners)
    shape = np.asarray(labels.data.shape[-2:], float)
    yx = np.clip(rect[:, -2:], -0.5, shape - 0.5)
    if np.any(np.ptp(yx, axis=0) < 1):
        raise DeepsegError(f"the labels {labels.name!r} are not in view; pan to them first")
    rect[:, -2:] = yx
    return rect


def mark_view_reviewed(viewer: napari.Viewer, labels: Labels) -> np.ndarray:
    """Add the visible canvas extent as a reviewed rectangle; returns it (labels data coordinates)."""
    rect = visible_rectangle(viewer, labels)
    shapes = reviewed_shapes_layer(viewer, labels)
    world = np.array([labels.data_to_world(v) for v in rect])
    shapes.add_rectangles(np.array([shapes.world_to_data(w) for w in world]), **REVIEWED_STYLE)
    return rect
