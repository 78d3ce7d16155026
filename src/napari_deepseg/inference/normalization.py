"""Intensity normalization as the model file says, computed once per plane (or stack), applied per tile.

Methods (``ModelMeta.normalization``):

- ``{"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane" | "stack"}``:
  ``x -> (x - p_low) / (p_high - p_low)`` per channel, with percentiles as ``np.percentile``
  (linear interpolation). uint8/uint16/bool images use an exact histogram (no float copy of
  the plane); other dtypes use all finite pixels up to 4 million, else a regular subsample.
  ``scope="stack"`` pools all planes of the stack (read one plane at a time).
- ``{"method": "meanstd", "mean": [...], "std": [...], "scale": 255.0}``:
  ``x -> (x / scale - mean[c]) / std[c]`` (ImageNet-style models).
- ``{"method": "none"}``: values are passed as float32.

Special values, documented behaviour (never silent garbage):

- Constant planes: when ``p_high <= p_low`` the full finite range (min, max) is used instead;
  when that is zero too (a constant plane) the normalized plane is all zeros.
- NaN and infinite pixels: see :func:`finite_plane`, the one NaN/inf policy that
  segmentation, batch prediction and fine-tuning all apply to each raw plane before its
  statistics: NaN and -inf take the plane's finite minimum, +inf its finite maximum, with a
  warning that counts them; a plane (channel) with no finite pixel is an error. Complex planes
  and float64 values beyond the float32 range are errors too (never silently cast).
  (:class:`Normalizer` still maps any non-finite value it meets to 0, or 1 for +inf.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DeepsegError

MAX_EXACT_PIXELS = 1 << 22
FLOAT32_MAX = float(np.finfo(np.float32).max)
_ROWS_PER_CHUNK = 256


@dataclass(frozen=True)
class Normalizer:
    """Per-channel affine map ``y = (x - offset[c]) * scale[c]`` plus the value for +inf.

    ``offset`` and ``scale`` have shape (C,).
    """

    offset: np.ndarray
    scale: np.ndarray
    posinf: float = 1.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Normalize a (C, h, w) or (N, C, h, w) raw array to float32."""
        x = np.asarray(raw, dtype=np.float32)
        shape = (-1, 1, 1)
        y = (x - self.offset.reshape(shape).astype(np.float32)) * self.scale.reshape(shape).astype(np.float32)
        if not np.issubdtype(np.asarray(raw).dtype, np.integer):
            bad = ~np.isfinite(x)
            if bad.any():
                y[bad] = 0.0
                y[np.isposinf(x)] = self.posinf
        return y


def finite_plane(raw: np.ndarray, where: str = "image", warn: bool = True) -> np.ndarray:
    """Apply the NaN/inf policy to one raw (C, H, W) plane before normalization.

    Integer and bool planes are returned as they are. In a float plane, per channel, NaN and
    -inf pixels are replaced by the channel's finite minimum and +inf pixels by its finite
    maximum (a copy; the caller's array is never changed), and a ``RuntimeWarning`` counts them.
    A channel with no finite pixel at all raises a one-line :class:`DeepsegError`: such a plane
    has nothing to segment or learn from, and a result for it would be silently wrong.

    Args:
        raw: (C, H, W) plane as read from the image.
        where: names the plane in messages, e.g. ``"image plane (Z=3)"`` or ``"pair 0"``.
        warn: emit the warning (off when the same plane is read twice, e.g. for statistics).
    """
    x = np.asarray(raw)
    if x.dtype.kind == "c":
        raise DeepsegError(
            f"{where} is complex ({x.dtype}); give a real image, e.g. its magnitude np.abs(image)"
        )
    if x.dtype.kind != "f":
        return x
    finite = np.isfinite(x)
    _check_float32_range(x, finite, where)
    if finite.all():
        return x
    out = np.array(x, copy=True)
    n_nan = int(np.isnan(x).sum())
    n_inf = int(x.size - finite.sum()) - n_nan
    for c in range(out.shape[0]):
        good = finite[c]
        if good.all():
            continue
        if not good.any():
            channel = f" channel {c}" if out.shape[0] > 1 else ""
            raise DeepsegError(
                f"{where}{channel} has no finite pixel (all NaN or infinite); "
                "fix the image or leave this plane out"
            )
        values = out[c][good]
        lo, hi = values.min(), values.max()
        plane = out[c]
        plane[np.isnan(plane) | np.isneginf(plane)] = lo
        plane[np.isposinf(plane)] = hi
    if warn:
        warnings.warn(
            f"{where}: {n_nan} NaN and {n_inf} infinite pixel(s) replaced by the plane's finite "
            "minimum (NaN, -inf) and maximum (+inf); check the image",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


def check_float32_range(x: np.ndarray, where: str) -> None:
    """:func:`_check_float32_range` of a raw plane (before channel mapping casts it)."""
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        _check_float32_range(x, np.isfinite(x), where)


def _check_float32_range(x: np.ndarray, finite: np.ndarray, where: str) -> None:
    """A one-line DeepsegError for float64 values beyond float32 (the network's precision): cast,
    they would become infinite and the result garbage."""
    if x.dtype.itemsize <= 4:
        return
    peak = float(np.max(np.abs(x), where=finite, initial=0.0))
    if peak > FLOAT32_MAX:
        factor = 10.0 ** math.ceil(math.log10(peak) - 30)
        raise DeepsegError(
            f"{where} has values up to {peak:.3g}, beyond the float32 range (3.4e38) the network computes "
            f"in; scale the image down first (e.g. image / {factor:.0e})"
        )


def check_normalization(spec: dict[str, Any], channels: int) -> dict[str, Any]:
    """Validate a normalization dict for a model of ``channels`` inputs (returns it completed)."""
    spec = dict(spec or {"method": "percentile"})
    method = spec.get("method", "percentile")
    if method == "percentile":
        spec.setdefault("low", 1.0)
        spec.setdefault("high", 99.8)
        spec.setdefault("scope", "plane")
        if not 0 <= spec["low"] < spec["high"] <= 100 or spec["scope"] not in ("plane", "stack"):
            raise DeepsegError(f"bad percentile normalization {spec}; need 0 <= low < high <= 100")
    elif method == "meanstd":
        mean = np.broadcast_to(np.asarray(spec.get("mean", 0.0), np.float64), (channels,))
        std = np.broadcast_to(np.asarray(spec.get("std", 1.0), np.float64), (channels,))
        if np.any(std <= 0):
            raise DeepsegError(f"meanstd normalization needs positive std, got {spec.get('std')}")
        spec.update(mean=mean.tolist(), std=std.tolist(), scale=float(spec.get("scale", 1.0)))
    elif method != "none":
        raise DeepsegError(f"unknown normalization method {method!r}; use percentile, meanstd or none")
    spec["method"] = method
    return spec


def fixed_normalizer(spec: dict[str, Any], channels: int) -> Normalizer | None:
    """The normalizer for methods that need no image statistics (``None`` for percentile)."""
    if spec["method"] == "none":
        return Normalizer(np.zeros(channels), np.ones(channels), posinf=0.0)
    if spec["method"] == "meanstd":
        mean, std, scale = np.asarray(spec["mean"]), np.asarray(spec["std"]), spec["scale"]
        return Normalizer(mean * scale, 1.0 / (std * scale), posinf=0.0)
    return None


def percentile_normalizer(planes: Iterable[np.ndarray], low: float, high: float) -> Normalizer:
    """Percentile normalizer pooled over (C, H, W) raw planes (one plane for scope "plane")."""
    stats = None
    for plane in planes:
        stats = [
            _ChannelStats.for_dtype(plane.dtype) if stats is None else stats[c] for c in range(len(plane))
        ]
        for c in range(len(plane)):
            stats[c].add(plane[c])
    return _normalizer(stats, low, high)


def banded_percentile_normalizer(
    bands: Iterable[tuple[int, np.ndarray]], size: tuple[int, int], low: float, high: float
) -> Normalizer:
    """:func:`percentile_normalizer` of (C, H, W) planes of ``size`` (H, W) given as row bands
    ``(first row, (C, n, W) band)``, each plane's bands in order: the same statistics (float
    planes: the same subsample of pixels) without a whole plane in memory."""
    step = _sample_step(size[0] * size[1])
    stats = None
    for row0, band in bands:
        if stats is None:
            stats = [_ChannelStats.for_dtype(band.dtype) for _ in range(len(band))]
        for c in range(len(band)):
            stats[c].add(band[c], step, row0)
    return _normalizer(stats, low, high)


def _sample_step(pixels: int) -> int:
    """Float planes: every step-th row and column is sampled (at most about MAX_EXACT_PIXELS)."""
    return max(1, int(np.ceil(np.sqrt(pixels / MAX_EXACT_PIXELS))))


def _normalizer(stats: list[_ChannelStats] | None, low: float, high: float) -> Normalizer:
    if stats is None:
        raise DeepsegError("no planes to compute normalization statistics from")
    offset, scale = np.zeros(len(stats)), np.zeros(len(stats))
    for c, st in enumerate(stats):
        lo, hi = st.percentiles(low, high)
        if not hi > lo:
            lo, hi = st.range()
        offset[c] = lo if np.isfinite(lo) else 0.0
        scale[c] = 1.0 / (hi - lo) if np.isfinite(hi - lo) and hi > lo else 0.0
    return Normalizer(offset, scale)


class _ChannelStats:
    """Exact histogram for small unsigned ints; sampled finite values for everything else."""

    def __init__(self, bins: int | None) -> None:
        self.hist = np.zeros(bins, np.int64) if bins else None
        self.samples: list[np.ndarray] = []

    @classmethod
    def for_dtype(cls, dtype: np.dtype) -> _ChannelStats:
        if dtype == np.bool_ or dtype == np.uint8:
            return cls(256)
        if dtype == np.uint16:
            return cls(65536)
        return cls(None)

    def add(self, x: np.ndarray, step: int | None = None, row0: int = 0) -> None:
        """Count an (H, W) plane, or rows ``row0..`` of one whose sample ``step`` is given."""
        if self.hist is not None:
            for r in range(0, x.shape[0], _ROWS_PER_CHUNK):
                chunk = x[r : r + _ROWS_PER_CHUNK].ravel().astype(np.intp)
                self.hist += np.bincount(chunk, minlength=len(self.hist))
            return
        step = _sample_step(x.size) if step is None else step
        sub = np.asarray(x[(-row0) % step :: step, ::step], dtype=np.float64).ravel()
        self.samples.append(sub[np.isfinite(sub)])

    def percentiles(self, low: float, high: float) -> tuple[float, float]:
        if self.hist is not None:
            return _hist_percentile(self.hist, low), _hist_percentile(self.hist, high)
        values = np.concatenate(self.samples) if self.samples else np.zeros(0)
        if values.size == 0:
            return 0.0, 0.0
        lo, hi = np.percentile(values, [low, high])
        return float(lo), float(hi)

    def range(self) -> tuple[float, float]:
        if self.hist is not None:
            nz = np.flatnonzero(self.hist)
            return (float(nz[0]), float(nz[-1])) if nz.size else (0.0, 0.0)
        values = [s for s in self.samples if s.size]
        if not values:
            return 0.0, 0.0
        return float(min(v.min() for v in values)), float(max(v.max() for v in values))


def _hist_percentile(hist: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) from a histogram of integer values."""
    n = int(hist.sum())
    if n == 0:
        return 0.0
    rank = q / 100.0 * (n - 1)
    lower = int(np.floor(rank))
    frac = rank - lower
    cum = np.cumsum(hist)
    v_lo = int(np.searchsorted(cum, lower, side="right"))
    v_hi = int(np.searchsorted(cum, min(lower + 1, n - 1), side="right"))
    return float(v_lo + frac * (v_hi - v_lo))
