"""The ``Edit`` record every correction returns, and the plane/ids checks they share.

An ``Edit`` holds the bounding box of the changed pixels (``region``, slices over *all* dimensions
of the label array) with the values there before (``old``) and after (``new``). That is enough to
apply, revert, or hand the change to napari as one undo step::

    edit = merge_labels(layer.data, [3, 7], apply=False)   # array untouched
    layer.data_setitem(edit.indices, edit.values)           # napari writes it and records undo
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Plane = Sequence[int] | None


@dataclass(frozen=True)
class Edit:
    """One change to a label array.

    Attributes:
        kind: the operation (``"merge"``, ``"split"``, ...).
        region: tuple of slices, one per dimension of the label array, bounding the changed
            pixels; ``None`` when nothing changed.
        old, new: ``labels[region]`` before and after (same shape, the array's dtype).
        ids: the object ids the operation acted on.
        new_ids: ids created by the operation (split pieces, merge target), if any.
    """

    kind: str
    region: tuple[slice, ...] | None
    old: np.ndarray
    new: np.ndarray
    ids: tuple[int, ...] = ()
    new_ids: tuple[int, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def changed(self) -> bool:
        """True when at least one pixel changed."""
        return self.region is not None

    @property
    def mask(self) -> np.ndarray:
        """Boolean array over ``region``: the pixels that changed."""
        return self.old != self.new

    @property
    def indices(self) -> tuple[np.ndarray, ...]:
        """Full-array integer indices of the changed pixels (one array per dimension)."""
        if self.region is None:
            return ()
        local = np.nonzero(self.mask)
        return tuple(idx + s.start for idx, s in zip(local, self.region))

    @property
    def values(self) -> np.ndarray:
        """New values at ``indices`` (for napari's ``Labels.data_setitem(indices, values)``)."""
        return self.new[self.mask]

    @property
    def old_values(self) -> np.ndarray:
        """Previous values at ``indices``."""
        return self.old[self.mask]

    def apply(self, labels: Any) -> None:
        """Write the new values into ``labels`` (in place)."""
        if self.region is not None:
            labels[self.region] = self.new

    def revert(self, labels: Any) -> None:
        """Restore the old values in ``labels`` (in place): exactly the array before the edit."""
        if self.region is not None:
            labels[self.region] = self.old


def check_labels(labels: Any) -> None:
    """Refuse anything that is not an integer label array of at least 2 dimensions."""
    dtype = getattr(labels, "dtype", None)
    if dtype is None or np.dtype(dtype).kind not in "iu" or getattr(labels, "ndim", 0) < 2:
        raise ValueError(
            f"expected an integer label array of 2 or more dimensions, got {type(labels).__name__} "
            f"with dtype {dtype}; pass the data of a Labels layer"
        )


def plane_index(labels: Any, plane: Plane) -> tuple[int, ...]:
    """Validate ``plane`` (indices of the leading axes) and return it as a tuple of ints."""
    check_labels(labels)
    if plane is None:
        return ()
    plane = tuple(int(i) for i in np.atleast_1d(plane))
    if len(plane) > labels.ndim - 2:
        raise ValueError(
            f"plane {plane} indexes {len(plane)} axes but the labels have {labels.ndim}; "
            "give at most ndim - 2 leading indices"
        )
    for i, n in zip(plane, labels.shape):
        if not -n <= i < n:
            raise ValueError(f"plane {plane} is outside the labels of shape {labels.shape}")
    return tuple(i % n for i, n in zip(plane, labels.shape))


def read_plane(labels: Any, prefix: tuple[int, ...]) -> np.ndarray:
    """``labels[prefix]`` as a numpy array (a view for numpy input)."""
    return np.asarray(labels[prefix]) if prefix else np.asarray(labels)


def check_ids(sub: np.ndarray, ids: Iterable[int], what: str = "labels") -> tuple[int, ...]:
    """Ids as a tuple of distinct ints, each > 0 and present in ``sub``; else a ValueError."""
    ids = tuple(dict.fromkeys(int(i) for i in np.atleast_1d(np.asarray(ids, dtype=np.int64))))
    if not ids:
        raise ValueError(f"no {what} given; select at least one object")
    if any(i <= 0 for i in ids):
        raise ValueError(f"{what} must be positive ids (0 is background), got {list(ids)}")
    missing = [i for i in ids if not (sub == i).any()]
    if missing:
        raise ValueError(f"{what} {missing} not found in the labels; pick ids that are present")
    return ids


def bbox(mask: np.ndarray, pad: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the true pixels of ``mask`` (grown by ``pad``, clipped), or None if empty."""
    where = np.nonzero(mask)
    if not where[0].size:
        return None
    return tuple(
        slice(max(int(w.min()) - pad, 0), min(int(w.max()) + 1 + pad, n)) for w, n in zip(where, mask.shape)
    )


def next_ids(labels: Any, count: int) -> tuple[int, ...]:
    """``count`` ids above the largest id of the whole array; ValueError if the dtype is too small."""
    top = int(np.max(labels)) if np.size(labels) else 0
    wanted = tuple(range(top + 1, top + 1 + count))
    if wanted and wanted[-1] > np.iinfo(labels.dtype).max:
        raise ValueError(
            f"label dtype {labels.dtype} cannot hold id {wanted[-1]}; convert the labels to uint32"
        )
    return wanted


def finish(
    labels: Any,
    prefix: tuple[int, ...],
    box: tuple[slice, ...] | None,
    old: np.ndarray | None,
    new: np.ndarray | None,
    apply: bool,
    kind: str,
    **extra: Any,
) -> Edit:
    """Build the Edit from a crop ``box`` of the plane and its new values; write it if ``apply``."""
    changed = None if box is None else bbox(old != new)
    if changed is None:
        empty = np.zeros((0,) * labels.ndim, labels.dtype)
        return Edit(kind, None, empty, empty.copy(), **extra)
    region = tuple(slice(p, p + 1) for p in prefix) + tuple(
        slice(b.start + c.start, b.start + c.stop) for b, c in zip(box, changed)
    )
    lead = (1,) * len(prefix)
    old_c = np.array(old[changed], dtype=labels.dtype).reshape(lead + old[changed].shape)
    new_c = np.array(new[changed], dtype=labels.dtype).reshape(old_c.shape)
    edit = Edit(kind, region, old_c, new_c, **extra)
    if apply:
        edit.apply(labels)
    return edit


def trailing_coords(points: Any, ndim: int, what: str) -> np.ndarray:
    """Points as an ``(N, ndim)`` int array of their last ``ndim`` coordinates (rounded)."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim == 1:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] < ndim:
        raise ValueError(f"{what} must be an (N, {ndim}) array of point coordinates, got shape {pts.shape}")
    return np.round(pts[:, pts.shape[1] - ndim :]).astype(np.int64)
