"""Blended logits -> class probabilities, and the float16 conversions around them.

Probabilities are stored as float16 (outputs, and the rows kept for instances). Most
probabilities of a confident model lie below float16's normal range (2^-14, about 6e-5), where
numpy converts one value at a time, 5 to 15 times slower than its ordinary cast. These helpers
give the very same values faster, with numpy alone (post-processing stays single-threaded
numpy and scipy, so it can run beside the network without taking torch's threads):
float16 -> float32 through a table of all 65536 values, float32 -> float16 by numpy's cast for
normal values and by rounding ``value * 2^24`` half to even for the subnormal ones (their bit
pattern is that integer).
"""

from __future__ import annotations

import numpy as np

#: float32 value of every float16 bit pattern
_WIDEN = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
_SUBNORMAL = np.float32(2.0**-14)


def softmax(sums: np.ndarray, weights: np.ndarray, classes: int | None = None) -> np.ndarray:
    """Class probabilities of blended logits: the softmax over K of ``sums / weights``; with
    ``classes`` (K) smaller than the maps, the maps after the K classes (a distance output) are
    their logits' sigmoid.

    Args:
        sums: (K [+ extra], n, W) float32 weighted sums of logits; overwritten (with the result).
        weights: (n, W) float32 sums of the blending weights (positive).
        classes: K, the class maps (default: all of them).

    Returns:
        ``sums``, holding the (K [+ extra], n, W) float32 probabilities (the same arithmetic, in
        the same order, as dividing, subtracting the maximum, ``exp`` and normalizing in new
        arrays).
    """
    np.divide(sums, weights, out=sums)
    k = len(sums) if classes is None else min(int(classes), len(sums))
    probs, extra = sums[:k], sums[k:]
    probs -= probs.max(axis=0, keepdims=True)
    np.exp(probs, out=probs)
    probs /= probs.sum(axis=0, keepdims=True)
    if len(extra):  # 1 / (1 + exp(-x))
        np.negative(extra, out=extra)
        np.exp(extra, out=extra)
        extra += 1
        np.reciprocal(extra, out=extra)
    return sums


def to_float16(values: np.ndarray) -> np.ndarray:
    """``values.astype(np.float16)`` (the same bits) for float32 ``values``."""
    values = np.asarray(values, np.float32)
    small = np.less(values, _SUBNORMAL)
    small &= ~np.signbit(values)  # negative values and -0.0: numpy's cast
    if not small.any():
        return values.astype(np.float16)
    normal = np.where(small, np.float32(0), values).astype(np.float16).view(np.uint16)
    scaled = np.multiply(values, np.float32(2.0**24), out=np.zeros_like(values), where=small)
    tiny = np.rint(scaled, out=scaled).astype(np.uint16)  # 1024: the smallest normal
    return np.where(small, tiny, normal).view(np.float16)


def write_float16(out: np.ndarray, values: np.ndarray) -> None:
    """``out[...] = values`` into a float16 ``out``, converted by :func:`to_float16`."""
    out[...] = to_float16(values) if out.dtype == np.float16 else values


def as_float32(values: np.ndarray, copy: bool = False) -> np.ndarray:
    """``values.astype(np.float32, copy=copy)``; float16 through the table (always a new array)."""
    if values.dtype == np.float16:
        return _WIDEN.take(values.view(np.uint16))
    return values.astype(np.float32, copy=copy)
