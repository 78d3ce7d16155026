"""Reviewed regions: which pixels of a label image the user has checked (numpy only, no GUI).

A *reviewed mask* is a boolean array of the labels' shape ``(..., Y, X)``: True where the labels
were checked and count in training, False where they are ignored (see ``finetune``'s per-pair
``reviewed`` masks). The napari widget lets the user draw rectangles; this module turns them into
a mask and stores the mask beside the labels file.

Sidecar file: the mask of ``cells_labels.tif`` is ``cells_labels.tif.reviewed.npz``
(:func:`reviewed_path`), a compressed NumPy archive holding

- ``mask``: the boolean mask, bit-packed (``np.packbits`` of the flattened mask);
- ``shape``: the mask's shape (int64);
- ``vertices`` (K, D) float64 and ``counts`` (M,) int64: the M rectangles (or polygons) it was
  drawn from, in labels data coordinates, their vertices concatenated (may be empty).

It loads with ``np.load(path)`` (no pickled objects) and :func:`load_reviewed`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import points_in_poly

from .._files import atomic_path
from ..errors import DeepsegError

SIDECAR_SUFFIX = ".reviewed.npz"


def _plane_of(vertices: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Leading indices (rounded) of a shape's vertices, or None when it lies outside the array."""
    lead = vertices[:, : len(shape) - 2]
    plane = tuple(int(v) for v in np.round(lead.mean(axis=0)))
    if any(not 0 <= p < n for p, n in zip(plane, shape)):
        return None
    return plane


def _fill_polygon(target: np.ndarray, yx: np.ndarray) -> None:
    """Set True the pixels of 2D ``target`` whose centre lies inside (or on) polygon ``yx`` (N, 2)."""
    lo = np.maximum(np.ceil(yx.min(axis=0) - 1e-9), 0).astype(int)
    hi = np.minimum(np.floor(yx.max(axis=0) + 1e-9) + 1, target.shape).astype(int)
    if np.any(hi <= lo):
        return
    rows, cols = np.unique(yx[:, 0]), np.unique(yx[:, 1])
    if len(yx) == 4 and len(rows) == 2 and len(cols) == 2:  # axis-aligned rectangle: exact
        target[lo[0] : hi[0], lo[1] : hi[1]] = True
        return
    rr, cc = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]]
    inside = points_in_poly(np.stack([rr.ravel(), cc.ravel()], axis=1), yx).reshape(rr.shape)
    target[lo[0] : hi[0], lo[1] : hi[1]] |= inside


def rectangles_to_mask(
    rectangles: Sequence[Any], shape: Sequence[int], *, plane: Sequence[int] | None = None
) -> np.ndarray:
    """Boolean mask of ``shape`` that is True inside the given rectangles (or polygons).

    Args:
        rectangles: each an ``(N, D)`` array of vertices in the labels' data coordinates
            (napari ``Shapes.data`` for rectangles: 4 corners), axes ``(..., y, x)``. A pixel is
            inside when its centre is inside or on the border (a rectangle from corner
            ``(-0.5, -0.5)`` to ``(9.5, 9.5)`` covers pixels 0..9).
        shape: the labels' shape ``(..., Y, X)``.
        plane: for a stack, the leading indices (e.g. ``(z,)``) every rectangle applies to.
            Without it, a rectangle with full ``len(shape)`` coordinates marks the plane its
            leading coordinates round to (how napari draws on one slice of a stack), and a
            rectangle with only ``(y, x)`` coordinates marks every plane.

    Returns:
        ``np.ndarray`` of bool, shape ``shape``.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise DeepsegError(f"a reviewed mask needs a label shape of 2 or more axes, got {shape}")
    mask = np.zeros(shape, bool)
    for rect in rectangles:
        vertices = np.asarray(rect, dtype=float)
        if vertices.ndim != 2 or vertices.shape[1] < 2 or len(vertices) < 3:
            raise DeepsegError(
                f"a reviewed region must be (N >= 3, D >= 2) polygon vertices, got shape {vertices.shape}"
            )
        if plane is not None:
            where: tuple[Any, ...] | None = tuple(int(p) for p in plane)
        elif vertices.shape[1] >= len(shape):
            where = _plane_of(vertices[:, vertices.shape[1] - len(shape) :], shape)
        else:
            where = (Ellipsis,)
        if where is not None:
            target = mask[where]
            for index in np.ndindex(*target.shape[:-2]):
                _fill_polygon(target[index], vertices[:, -2:])
    return mask


def reviewed_path(labels_path: str | os.PathLike) -> Path:
    """The sidecar file of a labels file: ``<labels file name>.reviewed.npz`` in the same folder."""
    path = Path(labels_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def save_reviewed(labels_path: str | os.PathLike, mask: np.ndarray, rectangles: Sequence[Any] = ()) -> Path:
    """Write the sidecar of ``labels_path`` (atomically) and return its path.

    Args:
        labels_path: the labels file the mask belongs to (it need not exist yet).
        mask: boolean mask, the labels' shape.
        rectangles: the regions the mask was drawn from (``(N, D)`` vertex arrays), kept so a
            GUI can show them again; optional.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise DeepsegError(f"a reviewed mask must be boolean, got dtype {mask.dtype}")
    rects = [np.asarray(r, dtype=float) for r in rectangles]
    dim = max((r.shape[1] for r in rects), default=mask.ndim)
    vertices = np.zeros((0, dim)) if not rects else np.concatenate([_pad(r, dim) for r in rects])
    out = reviewed_path(labels_path)
    with atomic_path(out, suffix=".partial.npz") as tmp:
        np.savez_compressed(
            tmp,
            mask=np.packbits(mask.ravel()),
            shape=np.asarray(mask.shape, np.int64),
            vertices=vertices,
            counts=np.asarray([len(r) for r in rects], np.int64),
        )
    return out


def _pad(vertices: np.ndarray, dim: int) -> np.ndarray:
    """Vertices with leading zero columns up to ``dim`` coordinates."""
    return np.pad(vertices, ((0, 0), (dim - vertices.shape[1], 0)))


def load_reviewed(path: str | os.PathLike) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Read a reviewed mask: ``(mask, rectangles)``, or None when there is no sidecar.

    Args:
        path: a labels file (its sidecar is read) or the ``*.reviewed.npz`` file itself.
    """
    path = Path(path)
    sidecar = path if path.name.endswith(SIDECAR_SUFFIX) else reviewed_path(path)
    if not sidecar.is_file():
        return None
    try:
        with np.load(sidecar, allow_pickle=False) as data:
            shape = tuple(int(n) for n in data["shape"])
            bits = np.unpackbits(data["mask"], count=int(np.prod(shape)))
            vertices, counts = data["vertices"], data["counts"]
    except (KeyError, ValueError, OSError) as err:
        raise DeepsegError(f"{sidecar} is not a reviewed-mask file ({err}); delete or re-save it") from err
    mask = bits.astype(bool).reshape(shape)
    rectangles = np.split(vertices, np.cumsum(counts)[:-1]) if len(counts) else []
    return mask, list(rectangles)


def save_labels_and_reviewed(
    path: str | os.PathLike,
    labels: np.ndarray,
    mask: np.ndarray | None,
    rectangles: Sequence[Any] = (),
    axes: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``labels`` as a TIFF (``io.write_labels_tiff``) and, if given, the mask's sidecar.

    The output guard checks ``path`` first: a ``.tif``/``.tiff`` name, replaced only with
    ``overwrite`` (the Correct widget's save dialog asks before it passes it).

    Args:
        path: destination ``*.tif``.
        labels: integer labels ``(..., Y, X)``; ``axes`` defaults to ``YX``/``ZYX``/``TZYX``.
        mask: boolean reviewed mask of ``labels.shape``, or None (then only the labels are
            written and a stale sidecar next to them is removed).

    Returns:
        The paths written.
    """
    from .._files import guard_output
    from ..io.images import write_labels_tiff

    guard_output(path, what="labels file", suffixes=(".tif", ".tiff"), overwrite=overwrite)
    labels = np.asarray(labels)
    if mask is not None and np.shape(mask) != labels.shape:
        raise DeepsegError(
            f"reviewed mask shape {np.shape(mask)} differs from labels shape {labels.shape}; "
            "mark the reviewed regions again on these labels"
        )
    axes = axes or "TZYX"[-labels.ndim :]
    written = [write_labels_tiff(path, labels, axes)]
    if mask is not None:
        written.append(save_reviewed(path, np.asarray(mask, dtype=bool), rectangles))
    else:
        reviewed_path(path).unlink(missing_ok=True)
    return written


__all__ = [
    "SIDECAR_SUFFIX",
    "load_reviewed",
    "rectangles_to_mask",
    "reviewed_path",
    "save_labels_and_reviewed",
    "save_reviewed",
]
