"""Split one object: by seeds grown through the image and the model's output, or along a polyline.

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


SEED_COMPACTNESS = 0.15  # the watershed's pull towards the nearest seed, per object radius
MIN_FRACTION = 0.1


def _relief(obj: np.ndarray, image: Any, boundary: Any) -> np.ndarray:
    """Where pieces meet: high on image edges, on the model's boundary probability, far from the core.

    ``obj`` (box,) bool; ``image`` the box of the image (channels last allowed) or None;
    ``boundary`` the box of a boundary probability in [0, 1] or None. Terms are scaled to [0, 1].
    """
    dist = ndi.distance_transform_edt(obj)
    relief = 1.0 - dist / max(float(dist.max()), 1.0)
    terms = []
    if image is not None:
        gray = np.asarray(image, np.float32)
        if gray.ndim == obj.ndim + 1:
            gray = gray.mean(axis=-1)  # RGB or channels last: edges of the mean intensity
        edges = ndi.gaussian_gradient_magnitude(gray, 1.0)
        scale = float(np.percentile(edges[obj], 95)) or 1.0
        terms.append(np.clip(edges / scale, 0.0, 1.0))
    if boundary is not None:
        terms.append(np.clip(np.asarray(boundary, np.float32), 0.0, 1.0))
    return relief + sum(terms) / len(terms) if terms else relief


def _check_guide(guide: Any, sub: np.ndarray, prefix: tuple, name: str) -> Any:
    """``guide[prefix]`` when it has the plane's shape (channels last allowed), else a ValueError."""
    if guide is None:
        return None
    part = np.asarray(guide[prefix] if prefix else guide)
    if part.shape[: sub.ndim] != sub.shape or part.ndim > sub.ndim + 1:
        raise ValueError(
            f"the {name} has shape {np.shape(guide)}, not the labels' {sub.shape}; pass a matching {name}"
        )
    return part


def split_label(
    labels: Any,
    label_id: int,
    seeds: Any,
    *,
    image: Any = None,
    boundary: Any = None,
    min_fraction: float = MIN_FRACTION,
    plane: Plane = None,
    apply: bool = True,
) -> Edit:
    """Split one object into as many pieces as seeds, growing the seeds through the image.

    Args:
        labels: label array ``(..., Y, X)``; the split acts in the plane ``labels[plane]`` (2D or ND).
        label_id: the object to split.
        seeds: ``(N, D)`` point coordinates, ``N >= 2``, each inside the object.
        image: the image under the labels, ``labels.shape`` or ``labels.shape + (C,)`` (RGB), or None.
        boundary: the model's boundary probability, ``labels.shape``, values in [0, 1], or None.
        min_fraction: the smallest piece allowed, as a fraction of the object's pixels.

    Seeds grow by a compact watershed whose relief is high on the image's edges, on the boundary
    probability and away from the object's core (its distance transform): pieces meet where a
    person would draw the line. When a piece comes out below ``min_fraction`` the pull towards the
    nearest seed is raised (pieces become more even) and the split is retried; if it still is, a
    ValueError names the seed. The piece of the first seed keeps ``label_id``; the others get new
    ids above the largest id of the whole array (``edit.new_ids``: all pieces' ids in seed order).
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    (label_id,) = check_ids(sub, [label_id], "label")
    pts = _check_seeds(sub, label_id, seeds)
    image, boundary = (
        _check_guide(image, sub, prefix, "image"),
        _check_guide(boundary, sub, prefix, "boundary"),
    )
    box = bbox(sub == label_id, pad=1)
    old = sub[box]
    obj = old == label_id
    pieces = _grow(
        obj,
        pts - np.array([s.start for s in box]),
        _relief(obj, None if image is None else image[box], None if boundary is None else boundary[box]),
        min_fraction,
        pts,
    )
    added = next_ids(labels, len(pts) - 1)
    lut = np.array([label_id, label_id, *added], dtype=np.int64)  # 0 (unreached) keeps the id
    new = np.where(obj, lut[pieces], old).astype(sub.dtype)
    return finish(labels, prefix, box, old, new, apply, "split", ids=(label_id,), new_ids=(label_id, *added))


def _grow(
    obj: np.ndarray, local: np.ndarray, relief: np.ndarray, min_fraction: float, seeds: np.ndarray
) -> np.ndarray:
    """Watershed pieces 1..N of ``obj`` from the seed pixels ``local``, each >= ``min_fraction``.

    ``seeds`` are the same seeds in the caller's coordinates (for the error message).
    """
    markers = np.zeros(obj.shape, np.int32)
    markers[tuple(local.T)] = np.arange(1, len(local) + 1)
    area = int(obj.sum())
    compactness = SEED_COMPACTNESS / np.sqrt(area / len(local))
    for _ in range(4):
        pieces = watershed(relief, markers, mask=obj, compactness=compactness)
        sizes = np.bincount(pieces.ravel(), minlength=len(local) + 1)[1:]
        if sizes.min() >= min_fraction * area:
            return pieces
        compactness *= 10
    small = int(np.argmin(sizes))
    raise ValueError(
        f"seed {tuple(int(c) for c in seeds[small])} would get only {sizes[small]} of {area} pixels "
        f"(under {min_fraction:.0%}); move it towards the middle of its part"
    )


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
