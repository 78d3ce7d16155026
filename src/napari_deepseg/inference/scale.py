"""Object size: measuring it, and resampling planes and labels to a model's training scale.

The one place for the object-size policy. A model file may record the median object diameter
it was trained at (``ModelMeta.object_diameter``, pixels). An image whose objects have median
diameter ``d`` is then run at scale ``s = model_diameter / d`` (clamped to ``SCALE_RANGE``;
within ``DEADBAND`` of 1 it is run as it is) and its labels are mapped back to the original
grid by nearest neighbour. Training rescales each annotated image the same way, so the
network always sees objects of one size.

Diameters are equivalent-circle diameters ``sqrt(4 * area / pi)``; an image's diameter is the
median over its objects.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: the smallest and largest factor an image is resampled by
SCALE_RANGE = (0.25, 4.0)
#: scales within this relative distance of 1 are run at the image's own size
DEADBAND = 0.1
#: an estimate needs at least this many objects
MIN_OBJECTS = 3
#: the diameter estimate's first pass looks at the image resampled by these factors (the rule
#: that reads them was chosen on the selection split: benchmarks/diameter_estimate.py)
FIRST_SCALES = (0.25, 0.5, 1.0)


def object_diameters(labels: np.ndarray, exclude_border: bool = False) -> np.ndarray:
    """Equivalent-circle diameters (pixels) of the objects of an (H, W) label image.

    With ``exclude_border`` objects touching the image border (cut by a crop) are left out.
    """
    labels = np.asarray(labels)
    flat = labels.ravel().astype(np.int64, copy=False)
    areas = np.bincount(flat)
    areas[0] = 0
    if exclude_border and labels.ndim == 2 and labels.size:
        edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).astype(np.int64)
        areas[np.unique(edge)] = 0
    areas = areas[areas > 0]
    return np.sqrt(4.0 * areas / math.pi)


def median_diameter(labels: np.ndarray, exclude_border: bool = False) -> float | None:
    """Median object diameter of a label image, or None with fewer than ``MIN_OBJECTS`` objects."""
    d = object_diameters(labels, exclude_border)
    return float(np.median(d)) if len(d) >= MIN_OBJECTS else None


def scale_factor(model_diameter: float, object_diameter: float) -> float:
    """The factor that brings objects of ``object_diameter`` to ``model_diameter`` (clamped;
    1.0 inside the dead band)."""
    s = float(np.clip(model_diameter / object_diameter, *SCALE_RANGE))
    return 1.0 if abs(s - 1.0) < DEADBAND else s


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(H, W) after resampling by ``scale`` (at least 1 pixel each)."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def resize_plane(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, H, W) intensities -> (C, h, w) float32 by bilinear interpolation (antialiased when
    shrinking), pixel centres aligned."""
    x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None]
    shrink = shape[0] < plane.shape[1] or shape[1] < plane.shape[2]
    out = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
    return out[0].numpy()


def resize_into(plane: np.ndarray, out: np.ndarray, band: int = 256) -> np.ndarray:
    """:func:`resize_plane` of a (C, H, W) plane written into ``out`` (C, h, w) band by band.

    Equal to ``resize_plane(plane, out.shape[1:])`` up to float rounding, but its temporaries
    are one band of rows (float32), not the whole plane in and out: a 16k x 16k plane enlarged
    1.5x needs about 2.5 GB as float32, a 256-row band about 40 MB. Integer ``out`` gets the
    values rounded and clipped to its range. Returns ``out``.
    """
    h, w = out.shape[1:]
    shrink = h < plane.shape[1] or w < plane.shape[2]
    src, weight = row_taps(plane.shape[1], h, shrink)
    info = np.iinfo(out.dtype) if out.dtype.kind in "iu" else None
    for r in range(0, h, band):
        rows, wts = src[r : r + band], weight[r : r + band]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        part = torch.from_numpy(np.ascontiguousarray(plane[:, lo:hi], dtype=np.float32))[None]
        part = F.interpolate(part, size=(hi - lo, w), mode="bilinear", align_corners=False, antialias=shrink)
        part = part[0].numpy()  # (C, hi - lo, w): columns resampled, rows as read
        value = np.einsum("rk,crkw->crw", wts, part[:, rows - lo], dtype=np.float32)
        if info is not None:
            value = np.clip(np.rint(value), info.min, info.max)
        out[:, r : r + len(rows)] = value
    return out


def resize_window(
    read: Any,
    full: tuple[int, int],
    small: tuple[int, int],
    rows: slice,
    cols: slice,
    dtype: Any,
    band: int = 256,
) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` of the (C, h, w) = ``small`` resampling of a (C, H, W) =
    ``full`` plane, reading only the input they need: equal to those pixels of
    ``resize_into(plane, out)`` for an ``out`` of ``dtype`` (integer: rounded and clipped), up to
    float rounding, so a window of a huge image resamples as the whole image would.

    Args:
        read: ``read(row_slice, col_slice)`` -> the (C, r, c) input there.
        full, small: the input and output plane sizes; ``rows``, ``cols``: output slices.
    """
    shrink = small[0] < full[0] or small[1] < full[1]
    src_y, w_y = (a[rows] for a in row_taps(full[0], small[0], shrink))
    src_x, w_x = (a[cols] for a in row_taps(full[1], small[1], shrink))
    x0, x1 = int(src_x.min()), int(src_x.max()) + 1
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    out = None
    for r in range(0, len(src_y), band):
        ry, wy = src_y[r : r + band], w_y[r : r + band]
        y0, y1 = int(ry.min()), int(ry.max()) + 1
        part = np.asarray(read(slice(y0, y1), slice(x0, x1)), dtype=np.float32)  # (C, y1 - y0, x1 - x0)
        value = apply_taps(part, (ry - y0, wy), (src_x - x0, w_x))
        if info is not None:
            value = np.clip(np.rint(value), info.min, info.max)
        if out is None:
            out = np.empty((value.shape[0], len(src_y), len(src_x)), dtype)
        out[:, r : r + len(ry)] = value
    return out


def apply_taps(part: np.ndarray, taps_y: tuple, taps_x: tuple) -> np.ndarray:
    """(..., h, w) ``part`` resampled at (rows, weights) taps of :func:`row_taps`, the rows and
    columns counted from ``part``'s first: (..., len(rows), len(cols))."""
    (ry, wy), (rx, wx) = taps_y, taps_x
    rows = sum(wy[:, k, None] * part[..., ry[:, k], :] for k in range(wy.shape[1]))
    return sum(wx[:, k] * rows[..., rx[:, k]] for k in range(wx.shape[1]))


def row_taps(n_in: int, n_out: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source rows and weights of each output row for torch's bilinear resampling
    (``align_corners=False``; with ``antialias`` a triangle filter as wide as the shrink factor):
    (n_out, K) int64 rows and float32 weights, unused taps with weight 0 on a valid row."""
    scale = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    if not antialias:
        pos = np.maximum(scale * (i + 0.5) - 0.5, 0.0)
        first = np.floor(pos).astype(np.int64)
        second = np.minimum(first + 1, n_in - 1)
        frac = pos - first
        return np.stack([first, second], 1), np.stack([1 - frac, frac], 1).astype(np.float32)
    support = max(scale, 1.0)
    centre = scale * (i + 0.5)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    taps = int((last - first).max())
    rows = first[:, None] + np.arange(taps)[None, :]
    wts = np.maximum(0.0, 1.0 - np.abs((rows - centre[:, None] + 0.5) / support))
    wts[rows >= last[:, None]] = 0.0
    wts /= wts.sum(1, keepdims=True)
    return np.minimum(rows, n_in - 1), wts.astype(np.float32)


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` pixels resampling a length ``n_in`` (pixel centres)."""
    idx = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., H, W) labels or classes -> (..., h, w) by nearest neighbour (values unchanged)."""
    rows = nearest_indices(labels.shape[-2], shape[0])
    cols = nearest_indices(labels.shape[-1], shape[1])
    return labels[..., rows[:, None], cols[None, :]]


def rescale_pair(
    image: np.ndarray, labels: np.ndarray, scale: float, channels_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W[, C]) image and (H, W) labels resampled by ``scale`` (image bilinear, float32;
    labels nearest). ``channels_last``: the image has a trailing channel axis."""
    shape = scaled_shape(labels.shape[-2:], scale)
    planes = np.moveaxis(image, -1, 0) if channels_last else image[None]
    out = resize_plane(planes, shape)
    out = np.moveaxis(out, 0, -1) if channels_last else out[0]
    return out, resize_labels(labels, shape)


__all__ = [
    "DEADBAND",
    "FIRST_SCALES",
    "SCALE_RANGE",
    "median_diameter",
    "object_diameters",
    "rescale_pair",
    "resize_into",
    "resize_labels",
    "resize_plane",
    "resize_window",
    "row_taps",
    "scale_factor",
    "scaled_shape",
]
