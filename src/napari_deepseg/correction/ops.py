"""Object-level edits of instance labels: merge, delete, remove small, fill holes, relabel.

Every function takes a label array (0 = background, any integer dtype, 2 or more dimensions,
axes ``(..., Y, X)``), optionally ``plane=`` (indices of leading axes, e.g. ``(t, z)``, to act on
one plane of a stack; default: the whole array), and ``apply=`` (default True: modify ``labels`` in
place; False: leave it untouched and only return the ``Edit``, e.g. to pass it to napari's
``Labels.data_setitem`` which records the undo step). Bad input raises a one-line ``ValueError``
and leaves the array unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .edit import Edit, Plane, bbox, check_ids, finish, plane_index, read_plane


def merge_labels(labels: Any, ids: Iterable[int], *, plane: Plane = None, apply: bool = True) -> Edit:
    """The listed objects become one, with the first id of ``ids`` (``edit.new_ids``).

    Raises ValueError for fewer than two distinct ids or ids absent from the (plane of the) labels.
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    ids = check_ids(sub, ids)
    if len(ids) < 2:
        raise ValueError(f"merging needs at least two different labels, got {list(ids)}; select more")
    sel = np.isin(sub, ids)
    box = bbox(sel)
    old = sub[box]
    new = np.where(sel[box], ids[0], old).astype(sub.dtype)
    return finish(labels, prefix, box, old, new, apply, "merge", ids=ids, new_ids=(ids[0],))


def delete_labels(labels: Any, ids: Iterable[int], *, plane: Plane = None, apply: bool = True) -> Edit:
    """Set the listed objects to background (0). Raises ValueError for ids absent from the labels."""
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    ids = check_ids(sub, ids)
    sel = np.isin(sub, ids)
    box = bbox(sel)
    old = sub[box]
    new = np.where(sel[box], 0, old).astype(sub.dtype)
    return finish(labels, prefix, box, old, new, apply, "delete", ids=ids)


def remove_small(labels: Any, min_size: int, *, plane: Plane = None, apply: bool = True) -> Edit:
    """Delete every object of fewer than ``min_size`` pixels (voxels), counted in the plane acted on.

    Ids are not made connected first: an object's size is all its pixels. ``edit.ids`` lists the
    removed objects (empty edit when none is small).
    """
    if int(min_size) != min_size or min_size < 1:
        raise ValueError(f"min_size must be a positive whole number of pixels, got {min_size}")
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    ids, counts = np.unique(sub, return_counts=True)
    small = tuple(int(i) for i in ids[(counts < min_size) & (ids != 0)])
    if not small:
        return finish(labels, prefix, None, None, None, apply, "remove_small")
    sel = np.isin(sub, small)
    box = bbox(sel)
    old = sub[box]
    new = np.where(sel[box], 0, old).astype(sub.dtype)
    return finish(labels, prefix, box, old, new, apply, "remove_small", ids=small)


def _hole_owner(sub: np.ndarray, holes: np.ndarray, n: int) -> np.ndarray:
    """For each background component 0..n, the single object id around it, or 0 if none/several.

    Components touching the array border are not holes (owner 0).
    """
    comps, nbs = [], []
    for axis in range(sub.ndim):
        lo = [slice(None)] * sub.ndim
        hi = list(lo)
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        for a, b in ((lo, hi), (hi, lo)):  # background pixel at a, its neighbour at b
            comp, nb = holes[tuple(a)].ravel(), sub[tuple(b)].ravel()
            keep = (comp > 0) & (nb > 0)
            comps.append(comp[keep].astype(np.int64))
            nbs.append(nb[keep].astype(np.int64))
    pairs = np.unique(np.stack([np.concatenate(comps), np.concatenate(nbs)]), axis=1)
    owner = np.zeros(n + 1, np.int64)
    owner[pairs[0]] = pairs[1]
    owner[np.bincount(pairs[0], minlength=n + 1) != 1] = 0  # no neighbour, or several
    edges = [np.take(holes, [0, -1], axis=ax).ravel() for ax in range(sub.ndim)]
    owner[np.unique(np.concatenate(edges))] = 0
    return owner


def fill_holes(
    labels: Any, ids: Iterable[int] | None = None, *, plane: Plane = None, apply: bool = True
) -> Edit:
    """Fill background regions enclosed by a single object with that object's id.

    Args:
        ids: fill only the holes of these objects (default: of every object).

    Holes bordered by two or more objects, or touching the array edge, stay background.
    Adjacency is face-connected (4-connected in 2D), as in ``scipy.ndimage.binary_fill_holes``.
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    wanted = None if ids is None else check_ids(sub, ids)
    holes, n = ndi.label(sub == 0)
    if n == 0:
        return finish(labels, prefix, None, None, None, apply, "fill_holes")
    owner = _hole_owner(sub, holes, n)
    if wanted is not None:
        owner[~np.isin(owner, wanted)] = 0
    fill = owner[holes]
    box = bbox(fill > 0)
    if box is None:
        return finish(labels, prefix, None, None, None, apply, "fill_holes")
    old = sub[box]
    new = np.where(fill[box] > 0, fill[box], old).astype(sub.dtype)
    filled = tuple(int(i) for i in np.unique(owner[owner > 0]))
    return finish(labels, prefix, box, old, new, apply, "fill_holes", ids=filled)


def relabel_sequential(labels: Any, *, plane: Plane = None, apply: bool = True) -> Edit:
    """Renumber the objects 1..N keeping their order (0 stays background).

    With ``plane``, only that plane is renumbered (its ids may then repeat ids of other planes).
    ``edit.info["mapping"]`` maps old ids to new ones.
    """
    prefix = plane_index(labels, plane)
    sub = read_plane(labels, prefix)
    ids, inverse = np.unique(sub, return_inverse=True)
    start = 0 if ids.size and ids[0] == 0 else 1
    new_ids = np.arange(start, start + ids.size, dtype=np.int64)
    if np.array_equal(ids, new_ids):
        return finish(labels, prefix, None, None, None, apply, "relabel")
    new = new_ids.astype(sub.dtype)[inverse.reshape(sub.shape)]
    box = bbox(new != sub)
    mapping = {int(a): int(b) for a, b in zip(ids, new_ids) if a != b}
    return finish(
        labels,
        prefix,
        box,
        sub[box],
        new[box],
        apply,
        "relabel",
        ids=tuple(mapping),
        info={"mapping": mapping},
    )
