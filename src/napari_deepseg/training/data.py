"""Training pairs, model-input conversion, validation split, patch sampling and augmentation.

A training pair is an image and its labels (and optionally a *reviewed* mask):

- image (H, W) or (H, W, C) channels-last (RGB(A) as napari and most files hold it), or a
  stack (..., H, W) / (..., H, W, C) whose labels have shape (..., H, W): each plane is a pair;
- labels (H, W) integer (see :mod:`napari_deepseg.training.labels` for dense/sparse meaning);
- reviewed (H, W) bool or None: only True pixels count in the loss.

Images are converted to the model's input exactly as inference does: channels chosen by the
model's ``channel_mode`` (gray: RGB averaged; rgb: gray replicated), then normalized with the
model's ``normalization`` (percentile per plane by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage as ndi

from ..errors import DeepsegError
from ..inference.inputs import to_channels_last
from .labels import IGNORE


@dataclass
class TrainingPair:
    """One annotated image. ``image`` (H, W) or (H, W, C); ``labels`` and ``reviewed`` (H, W).

    ``weight``: relative share of training patches drawn from this pair (None: in proportion
    to its annotated pixels, the default when no pair has a weight). ``emphasis``: (H, W) bool,
    the pixels a person corrected (merged, split, deleted, drew); the loss weighs them
    ``correction_weight`` times.
    """

    image: np.ndarray
    labels: np.ndarray
    reviewed: np.ndarray | None = None
    name: str = ""
    weight: float | None = None
    emphasis: np.ndarray | None = None


def as_pairs(pairs: Iterable[Any], prefix: str = "pair", axes: str | None = None) -> list[TrainingPair]:
    """Normalize user input to 2D :class:`TrainingPair` objects, splitting stacks into planes.

    Each item may be a TrainingPair, a tuple ``(image, labels)`` / ``(image, labels, reviewed)``
    or a dict with keys image, labels, reviewed, name. ``axes`` (letters of TZCYX, as for
    ``segment()``, e.g. ``"CYX"``) are the images' axes; the labels have the same axes without
    C. Without ``axes``, images are (..., H, W) or (..., H, W, C) with colour last. Shapes are
    checked here (one-line errors).
    """
    out: list[TrainingPair] = []
    for i, item in enumerate(pairs):
        pair = _to_pair(item, f"{prefix} {i}")
        if axes is not None:
            pair = _with_axes(pair, axes)
        out.extend(_split_planes(pair))
    if not out:
        raise DeepsegError("no training pairs given; pass at least one (image, labels) pair")
    return out


def _to_pair(item: Any, default_name: str) -> TrainingPair:
    if isinstance(item, TrainingPair):
        pair = item
    elif isinstance(item, dict):
        pair = TrainingPair(
            item["image"], item["labels"], item.get("reviewed"), item.get("name", ""), item.get("weight"),
            item.get("emphasis"),
        )  # fmt: skip
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        pair = TrainingPair(item[0], item[1], item[2] if len(item) == 3 else None)
    else:
        raise DeepsegError(f"{default_name}: expected (image, labels[, reviewed]) or a TrainingPair")
    weight = pair.weight
    if weight is not None and not (isinstance(weight, int | float) and weight > 0):
        raise DeepsegError(f"{default_name}: weight must be a positive number, not {weight!r}")
    return TrainingPair(
        np.asarray(pair.image),
        np.asarray(pair.labels),
        None if pair.reviewed is None else np.asarray(pair.reviewed, dtype=bool),
        pair.name or default_name,
        None if weight is None else float(weight),
        None if pair.emphasis is None else np.asarray(pair.emphasis, dtype=bool),
    )


def image_channels(pairs: Sequence[TrainingPair]) -> int:
    """Channels of the (already channels-last) training images: 1 for (H, W), else the last axis."""
    counts = {1 if p.image.ndim == p.labels.ndim else int(p.image.shape[-1]) for p in pairs}
    if len(counts) != 1:
        raise DeepsegError(
            f"the training images have different channel counts {sorted(counts)}; give one kind"
        )
    return counts.pop()


def _with_axes(pair: TrainingPair, axes: str) -> TrainingPair:
    """The pair with its image (and labels, reviewed: ``axes`` without C) as (..., H, W[, C])."""
    spatial = axes.upper().replace("C", "")
    labels = to_channels_last(pair.labels, spatial)
    reviewed = None if pair.reviewed is None else to_channels_last(pair.reviewed, spatial)
    emphasis = None if pair.emphasis is None else to_channels_last(pair.emphasis, spatial)
    return TrainingPair(
        to_channels_last(pair.image, axes), labels, reviewed, pair.name, pair.weight, emphasis
    )


def _split_planes(pair: TrainingPair) -> list[TrainingPair]:
    image, labels, name = pair.image, pair.labels, pair.name
    if labels.ndim < 2:
        raise DeepsegError(f"{name}: labels must be 2D or a stack of 2D planes, got shape {labels.shape}")
    channels_last = image.ndim == labels.ndim + 1 and image.shape[:-1] == labels.shape
    if image.shape != labels.shape and not (channels_last and image.shape[-1] <= 4):
        raise DeepsegError(
            f"{name}: image shape {image.shape} does not match labels shape {labels.shape}; "
            "labels must cover the image pixel for pixel (colour as the last image axis)"
        )
    for what, mask in (("reviewed", pair.reviewed), ("emphasis", pair.emphasis)):
        if mask is not None and mask.shape != labels.shape:
            raise DeepsegError(
                f"{name}: {what} mask shape {mask.shape} differs from labels shape {labels.shape}"
            )
    if labels.ndim == 2:
        return [pair]
    lead = labels.shape[:-2]
    planes = []
    for idx in np.ndindex(*lead):
        img = image[idx]  # (H, W) or (H, W, C)
        rev = None if pair.reviewed is None else pair.reviewed[idx]
        emph = None if pair.emphasis is None else pair.emphasis[idx]
        planes.append(
            TrainingPair(
                np.asarray(img), np.asarray(labels[idx]), rev, f"{name}{list(idx)}", pair.weight, emph
            )
        )
    return planes


# --------------------------------------------------------------------------- prepared regions


@dataclass
class Region:
    """An image (C, Hp, Wp) and target (Hp, Wp) padded for sampling; ``centers`` index annotations."""

    image: np.ndarray
    target: np.ndarray
    name: str
    centers: np.ndarray
    weight: float | None = None
    labels: np.ndarray | None = None  # instance labels of a validation region (unpadded)
    distance: np.ndarray | None = None  # (Hp, Wp) float32 distance targets (distance models)


def pad_region(
    image: np.ndarray,
    target: np.ndarray,
    name: str,
    margin: int,
    min_size: int,
    multiple: int = 1,
    weight: float | None = None,
    labels: np.ndarray | None = None,
    distance: np.ndarray | None = None,
) -> Region:
    """Pad image (reflect) and target (``IGNORE``) by ``margin`` plus enough to reach ``min_size``.

    With ``multiple`` > 1 the padded target interior is a multiple of it (for exact tiling).
    ``labels``: the instance labels of a validation region, kept unpadded (the original image
    starts at row and column ``margin`` of the padded arrays). ``distance``: (H, W) distance
    targets of a model with a distance output, padded with 0 (the padding is ignored anyway).
    """
    h, w = target.shape
    th = max(min_size, -(-h // multiple) * multiple)
    tw = max(min_size, -(-w // multiple) * multiple)
    pads = ((margin, margin + th - h), (margin, margin + tw - w))
    mode = "reflect" if max(pads[0]) < h and max(pads[1]) < w else "symmetric"
    img = np.pad(image, ((0, 0), *pads), mode=mode)
    tgt = np.pad(target, pads, constant_values=IGNORE)
    centers = np.flatnonzero(tgt >= 0)
    dist = None if distance is None else np.pad(distance.astype(np.float32), pads)
    return Region(img.astype(np.float32), tgt, name, centers, weight, labels, dist)


def split_validation(target: np.ndarray, fraction: float) -> tuple[slice, slice] | None:
    """The (rows, cols) slices of the held-out strip: the last ``fraction`` of the longer axis."""
    if fraction <= 0:
        return None
    h, w = target.shape
    if h >= w:
        n = max(1, round(h * fraction))
        return slice(h - n, h), slice(0, w)
    n = max(1, round(w * fraction))
    return slice(0, h), slice(w - n, w)


# --------------------------------------------------------------------------- sampling


def draw_shares(regions: list[Region]) -> np.ndarray:
    """How often each region is drawn (sums to 1): in proportion to its ``weight`` when any
    region has one (regions without a weight then count 1), else to its annotated pixels."""
    if any(r.weight is not None for r in regions):
        counts = np.array([1.0 if r.weight is None else r.weight for r in regions])
    else:
        counts = np.array([len(r.centers) for r in regions], np.float64)
    return counts / counts.sum()


class Batch(NamedTuple):
    """Training inputs (B, C, in, in) float32, class targets (B, out, out) int64 and, for a
    model with a distance output, distance targets (B, out, out) float32 (else None)."""

    x: np.ndarray
    y: np.ndarray
    distance: np.ndarray | None = None


class PatchSampler:
    """Random training windows, centred on annotated pixels with probability ``fg_fraction``.

    Regions are chosen in proportion to their annotated pixels, or to their ``weight`` when any
    region has one (regions without a weight then count 1). A sample is an input window
    (C, in_size, in_size) and its target (out_size, out_size), the centre of the window
    (``in_size - out_size`` = 2 x the model's output margin). With ``zoom`` > 1 each window is
    first resampled by a random factor in [1 / zoom, zoom] (log-uniform): scale augmentation.
    """

    def __init__(
        self,
        regions: list[Region],
        in_size: int,
        out_size: int,
        fg_fraction: float = 0.8,
        zoom: float = 1.0,
    ) -> None:
        self.regions = [r for r in regions if len(r.centers)]
        self.weights = draw_shares(self.regions)
        self.in_size, self.out_size, self.fg_fraction = in_size, out_size, fg_fraction
        self.zoom = float(zoom)

    def sample(
        self, batch: int, rng: np.random.Generator, augment: bool = True, elastic: bool = False
    ) -> Batch:
        """A :class:`Batch` of ``batch`` windows (distance targets when the regions have them)."""
        xs, ys, ds = [], [], []
        maps = int(self.regions[0].distance is not None)
        m = (self.in_size - self.out_size) // 2
        crop = (slice(m, m + self.out_size), slice(m, m + self.out_size))
        for _ in range(batch):
            region = self.regions[rng.choice(len(self.regions), p=self.weights)]
            x, y = self._window(region, rng)
            if augment:
                x, y = augment_patch(x, y, rng, elastic=elastic, maps=maps)
            xs.append(x[: len(x) - maps])
            ys.append(y[crop])
            if maps:
                ds.append(x[-1][crop])
        x, y = np.stack(xs).astype(np.float32), np.stack(ys).astype(np.int64)
        return Batch(x, y, np.stack(ds).astype(np.float32) if maps else None)

    def _window(self, region: Region, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """An input window (C [+ 1 distance map], n, n) and its target (n, n), zoomed to ``in_size``."""
        hp, wp = region.target.shape
        n = self.in_size
        if self.zoom > 1:
            factor = float(np.exp(rng.uniform(-np.log(self.zoom), np.log(self.zoom))))
            n = int(min(hp, wp, max(8, round(self.in_size / factor))))
        y0, x0 = self._corner(region, n, rng)
        rows, cols = slice(y0, y0 + n), slice(x0, x0 + n)
        x, y = region.image[:, rows, cols], region.target[rows, cols]
        if region.distance is not None:  # moved with the image (bilinear when zoomed)
            x = np.concatenate([x, region.distance[None, rows, cols]])
        if n != self.in_size:
            x, y = zoom_window(x, y, self.in_size)
        return x, y

    def _corner(self, region: Region, n: int, rng: np.random.Generator) -> tuple[int, int]:
        hp, wp = region.target.shape
        if rng.random() < self.fg_fraction:
            cy, cx = divmod(int(region.centers[rng.integers(len(region.centers))]), wp)
            y0 = int(np.clip(cy - n // 2 + rng.integers(-n // 4, n // 4 + 1), 0, hp - n))
            x0 = int(np.clip(cx - n // 2 + rng.integers(-n // 4, n // 4 + 1), 0, wp - n))
        else:
            y0, x0 = int(rng.integers(hp - n + 1)), int(rng.integers(wp - n + 1))
        return y0, x0


def zoom_window(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A (C, m, m) window and its (m, m) target resampled to ``size`` (bilinear / nearest)."""
    from ..inference.scale import resize_labels, resize_plane

    return resize_plane(x, (size, size)), resize_labels(y, (size, size))


def augment_patch(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, elastic: bool = False, maps: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random rot90, flip, gamma, intensity scale and shift (and elastic) of x (C, n, n), y (n, n).

    The last ``maps`` channels of x are target maps (a distance target): moved with the image,
    never re-toned.
    """
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    if elastic and rng.random() < 0.5:
        x, y = elastic_deform(x, y, rng)
    x, targets = x[: len(x) - maps], x[len(x) - maps :]
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        x = lo + (hi - lo) * ((x - lo) / (hi - lo)) ** rng.uniform(0.7, 1.4)
    x = x * rng.uniform(0.8, 1.25) + rng.uniform(-0.1, 0.1)
    if maps:
        x = np.concatenate([x, targets])
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


def elastic_deform(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, alpha: float = 6.0, sigma: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random displacement (max about ``alpha`` px): bilinear for x, nearest for y."""
    n = y.shape
    d = [ndi.gaussian_filter(rng.uniform(-1, 1, n), sigma) for _ in range(2)]
    scale = alpha / max(1e-6, max(np.abs(d[0]).max(), np.abs(d[1]).max()))
    yy, xx = np.meshgrid(np.arange(n[0]), np.arange(n[1]), indexing="ij")
    coords = np.array([yy + d[0] * scale, xx + d[1] * scale])
    xo = np.stack([ndi.map_coordinates(c, coords, order=1, mode="reflect") for c in x])
    yo = ndi.map_coordinates(y, coords, order=0, mode="nearest")
    return xo, yo.astype(y.dtype)


def tile_windows(region: Region, in_size: int, out_size: int) -> list[tuple[int, int]]:
    """Top-left corners of windows whose centres (out_size) tile the padded target exactly."""
    margin = (in_size - out_size) // 2
    h, w = region.target.shape[0] - 2 * margin, region.target.shape[1] - 2 * margin
    return [
        (y, x) for y in range(0, h - out_size + 1, out_size) for x in range(0, w - out_size + 1, out_size)
    ]
