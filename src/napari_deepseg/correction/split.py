"""Split one object: by seeded watershed on its distance transform, or along a drawn polyline.

Coordinates are in array order (``(y, x)`` in 2D, ``(z, y, x)`` in 3D), as napari's Points and
Shapes layers give them in data coordinates; points may carry more coordinates than the plane
acted on (e.g. napari's full ``(t, z, y, x)``): only the last ones are used. ``plane`` and ``apply``
work as in :mod:`napari_deepseg.correction.ops`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line
from skimage.segmentation import watershed

from .edit import Edit, Plane, bbox, check_ids, finish, next_ids, plane_index, read_plane, trailing_coords


def _check_seeds(sub: np.ndarray, label_id: int, seeds: Any) -> np.ndarray:
    pts = trailing_coords(seeds, sub.ndim, "seeds")
    if len(pts) < 2:
        raise ValueError(f"splitting needs at least two seed points, got {len(pts)}; add a seed per piece")
    if len(np.unique(pts, axis=0)) < len(pts):
        raise ValueError("two seeds fall on the same pixel; place each seed in a different part")
    for p in pts:
        inside = all(0 <= c < n for c, n in zip(p, sub.shape)) and sub[tuple(p)] == label_id
        if not inside:
            raise ValueError(
                f"seed {tuple(int(c) for c in p)} is outside object {label_id}; place every seed inside it"
            )
    return pts


def split_label(labels: Any, label_id: int, seeds: Any, *, plane: Plane = None, apply: bool = True) -> Edit:
    """Split one object into as many pieces as seeds, by watershed on its distance transform.

    Args:
        labels: label array ``(..., Y, X)``; the split acts in the plane ``labels[plane]`` (2D or ND).
        label_id: the object to split.
        seeds: ``(N, D)`` point coordinates, ``N >= 2``, each inside the object.

    The piece of the first seed keeps ``label_id``; the others get new ids above the largest id of
    the whole array (``edit.new_ids`` lists all pieces' ids, in seed order). Pixels of the object not
    reached from any seed (a separate fragment) keep ``label_id``.
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    (label_id,) = check_ids(sub, [label_id], "label")
    pts = _check_seeds(sub, label_id, seeds)
    box = bbox(sub == label_id, pad=1)
    old = sub[box]
    obj = old == label_id
    markers = np.zeros(obj.shape, np.int32)
    local = pts - np.array([s.start for s in box])
    markers[tuple(local.T)] = np.arange(1, len(pts) + 1)
    pieces = watershed(-ndi.distance_transform_edt(obj), markers, mask=obj)
    added = next_ids(labels, len(pts) - 1)
    lut = np.array([label_id, label_id, *added], dtype=np.int64)  # 0 (unreached) keeps the id
    new = np.where(obj, lut[pieces], old).astype(sub.dtype)
    return finish(labels, prefix, box, old, new, apply, "split", ids=(label_id,), new_ids=(label_id, *added))


def rasterize_polyline(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the 8-connected pixel path through ``points`` (``(N, 2)`` ints).

    The path is clipped to the array; an 8-connected path separates 4-connected regions.
    """
    out = np.zeros(shape, bool)
    for (r0, c0), (r1, c1) in pairwise(points):
        rr, cc = draw_line(int(r0), int(c0), int(r1), int(c1))
        keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        out[rr[keep], cc[keep]] = True
    return out


def split_label_by_line(
    labels: Any, label_id: int, line: Any, *, plane: Plane = None, apply: bool = True
) -> Edit:
    """Cut one object along a polyline drawn across it (2D planes only).

    Args:
        labels: label array ``(..., Y, X)``; ``labels[plane]`` must be 2D.
        label_id: the object to cut.
        line: ``(N, 2)`` (or ``(N, D)``, last two used) vertices, ``N >= 2``; it may extend beyond
            the object and the array.

    The line's pixels are removed from the object, the rest is split into 4-connected pieces and
    the line's pixels are given back to the nearest piece, so the object loses no pixel. The
    largest piece keeps ``label_id``; the others get new ids above the array's largest id
    (``edit.new_ids``: all pieces, largest first). Raises ValueError when the line does not cut the
    object into more pieces than it had.
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    if sub.ndim != 2:
        raise ValueError(
            f"line cuts work on 2D planes but labels[plane] has shape {sub.shape}; pass plane=(...) "
            "with the leading indices"
        )
    (label_id,) = check_ids(sub, [label_id], "label")
    pts = trailing_coords(line, 2, "line")
    if len(pts) < 2:
        raise ValueError(f"a cut line needs at least two points, got {len(pts)}; draw a line or path")
    box = bbox(sub == label_id, pad=1)
    old = sub[box]
    obj = old == label_id
    starts = np.array([s.start for s in box])
    cut = rasterize_polyline(pts - starts, obj.shape)
    _, n_before = ndi.label(obj)
    pieces, n_after = ndi.label(obj & ~cut)
    if n_after <= n_before:
        raise ValueError(
            f"the line does not cut object {label_id} in two; draw it across the object from edge to edge"
        )
    nearest = ndi.distance_transform_edt(pieces == 0, return_distances=False, return_indices=True)
    pieces = np.where(obj, pieces[tuple(nearest)], 0)
    sizes = np.bincount(pieces.ravel(), minlength=n_after + 1)[1:]
    order = np.argsort(-sizes, kind="stable") + 1  # piece labels, largest first
    added = next_ids(labels, n_after - 1)
    lut = np.zeros(n_after + 1, np.int64)
    lut[order] = (label_id, *added)
    new = np.where(obj, lut[pieces], old).astype(sub.dtype)
    return finish(
        labels, prefix, box, old, new, apply, "split_line", ids=(label_id,), new_ids=(label_id, *added)
    )
