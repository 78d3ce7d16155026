"""Axes strings (Y, X, C, Z, T in any order), plane-by-plane reading and channel mapping.

Every 2D plane (all Y, X and C of one combination of the other axes) is read with one basic
index into the image, ``np.asarray(image[index])``, so numpy, dask and zarr inputs are read one
plane at a time and never loaded whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DeepsegError
from ..io.axes import AXES, guess_axes


@dataclass(frozen=True)
class AxesPlan:
    """How an image with ``axes`` is walked plane by plane.

    Attributes:
        axes: the image's axes, upper case, one letter per dimension.
        shape: the image's shape.
        loop_axes: axes other than C, Y, X in image order (e.g. "TZ"); a plane index is a tuple
            over these.
        out_axes: the image's axes without C (the shape of class maps and instances).
    """

    axes: str
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, shape: tuple[int, ...], axes: str | None) -> AxesPlan:
        """Validate ``axes`` against ``shape`` (one-line DeepsegError on mismatch)."""
        if axes is None:
            axes = guess_axes(shape)
        if not isinstance(axes, str):
            raise DeepsegError(f"axes must be a string such as 'ZYX', not {type(axes).__name__}")
        ax = axes.upper()
        if len(ax) != len(shape):
            raise DeepsegError(
                f"axes {axes!r} has {len(ax)} letters but the image has {len(shape)} dimensions {shape}"
            )
        bad = set(ax) - set(AXES)
        if bad or len(set(ax)) != len(ax) or "Y" not in ax or "X" not in ax:
            raise DeepsegError(
                f"axes {axes!r} must use each of Y and X once and optionally C, Z, T (e.g. 'ZYX', 'YXC')"
            )
        if any(n == 0 for n in shape):
            raise DeepsegError(f"the image is empty (shape {shape}); give an image with pixels")
        return cls(ax, tuple(int(n) for n in shape))

    def size(self, axis: str) -> int:
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1

    @property
    def loop_axes(self) -> str:
        return "".join(a for a in self.axes if a in "TZ")

    @property
    def out_axes(self) -> str:
        return self.axes.replace("C", "")

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(n for a, n in zip(self.axes, self.shape) if a != "C")

    @property
    def channels(self) -> int:
        return self.size("C")

    def plane_indices(self) -> Iterator[tuple[int, ...]]:
        """All plane indices (tuples over :attr:`loop_axes`) in C order."""
        return itertools.product(*(range(self.size(a)) for a in self.loop_axes))

    @property
    def n_planes(self) -> int:
        return int(np.prod([self.size(a) for a in self.loop_axes], dtype=np.int64))

    def read_plane(
        self, image, index: tuple[int, ...], rows: slice = slice(None), cols: slice = slice(None)
    ) -> np.ndarray:
        """The raw (C, H, W) plane at ``index`` (C = 1 when the image has no C axis), or only its
        window ``rows`` x ``cols`` (only that is read from a lazy image)."""
        pos = dict(zip(self.loop_axes, index))
        key = tuple(pos.get(a, rows if a == "Y" else cols if a == "X" else slice(None)) for a in self.axes)
        plane = np.asarray(image[key])
        kept = "".join(a for a in self.axes if a in "CYX")
        if "C" not in kept:
            plane, kept = plane[None], "C" + kept
        return plane.transpose([kept.index(a) for a in "CYX"])

    def out_key(self, index: tuple[int, ...]) -> tuple[tuple, bool]:
        """Index into an output (non-C) array for a plane, and whether X comes before Y there."""
        pos = dict(zip(self.loop_axes, index))
        key = tuple(pos[a] if a in pos else slice(None) for a in self.out_axes)
        return key, self.out_axes.index("X") < self.out_axes.index("Y")


def check_channels(image_channels: int, channels: Sequence[int] | None) -> list[int] | None:
    """Validate ``channels=`` indices against the image's channel count."""
    if channels is None:
        return None
    if isinstance(channels, int | np.integer):
        channels = [int(channels)]
    chans = [int(c) for c in channels]
    if not chans or any(c < -image_channels or c >= image_channels for c in chans):
        raise DeepsegError(
            f"channels={list(channels)} is out of range for an image with {image_channels} channel(s)"
        )
    return [c % image_channels for c in chans]


def channel_mapping(available: int, wanted: int, mode: str, picked: bool) -> str:
    """How ``available`` image channels feed a ``wanted``-channel model: "same", "gray", "rgb", "drop-alpha".

    Raises a one-line DeepsegError for an impossible mapping.
    """
    if available == wanted:
        return "same"
    if wanted == 1 and available in (3, 4) and mode != "select" and not picked:
        return "hed" if mode == "gray-hed" else "gray"
    if wanted == 3 and available == 1:
        return "rgb"
    if wanted == 3 and available == 4:
        return "drop-alpha"
    raise DeepsegError(
        f"the model takes {wanted} channel(s) but {available} are given; pick {wanted} with "
        f"channels=[...] (image channel indices)"
    )


def map_channels(plane: np.ndarray, how: str) -> np.ndarray:
    """Apply a :func:`channel_mapping` result to a raw (C, H, W) plane."""
    if how == "gray":
        return plane[:3].mean(axis=0, dtype=np.float32)[None]
    if how == "hed":
        return hematoxylin_or_gray(plane[:3])[None]
    if how == "rgb":
        return np.broadcast_to(plane, (3, *plane.shape[1:]))
    if how == "drop-alpha":
        return plane[:3]
    return plane


#: an RGB plane whose mean |R-G| + |G-B| is below this fraction of its intensity range is
#: colourless (e.g. a fluorescence image saved as RGB) and is averaged to gray
COLOUR_THRESHOLD = 0.05


def hematoxylin_or_gray(rgb: np.ndarray) -> np.ndarray:
    """A (3, H, W) RGB plane -> (H, W) float32: hematoxylin optical density for colour images
    (H&E histology: nuclei bright, as in fluorescence), the channel mean for colourless ones.

    Intensities are scaled by the plane's 99.9th percentile (the bright background is white),
    turned into optical density ``-log(I)`` and unmixed with scikit-image's H&E-DAB stain
    matrix (``skimage.color.hed_from_rgb``, Ruifrok & Johnston 2001); the hematoxylin
    component is returned. Training and inference both come here (channel mode ``"gray-hed"``).
    """
    from skimage.color import hed_from_rgb

    rgb = np.asarray(rgb, dtype=np.float32)
    lo, hi = float(rgb.min()), float(rgb.max())
    colour = (np.abs(rgb[0] - rgb[1]).mean() + np.abs(rgb[1] - rgb[2]).mean()) / max(hi - lo, 1e-6)
    if colour < COLOUR_THRESHOLD:
        return rgb.mean(axis=0, dtype=np.float32)
    white = max(float(np.percentile(rgb, 99.9)), 1e-6)
    od = -np.log(np.clip(rgb / white, 1e-3, 1.0))
    h = np.tensordot(hed_from_rgb[:, 0].astype(np.float32), od, axes=(0, 0))
    return np.ascontiguousarray(h, dtype=np.float32)


def to_channels_last(image: np.ndarray, axes: str) -> np.ndarray:
    """``image`` with axes ``axes`` (letters of TZCYX) as (..., Y, X) or (..., Y, X, C).

    The non-spatial axes keep their order in front; a channel axis of size 1 is dropped.
    Training uses it to take images in the same ``axes=`` notation as :func:`segment`.
    """
    image = np.asarray(image)
    plan = AxesPlan.parse(tuple(image.shape), axes)
    order = plan.axes
    front = [order.index(a) for a in order if a not in "YXC"]
    tail = [order.index("Y"), order.index("X")] + ([order.index("C")] if "C" in order else [])
    out = np.transpose(image, front + tail)
    return out[..., 0] if "C" in order and out.shape[-1] == 1 else out


def model_channels(plane: np.ndarray, wanted: int, mode: str, channels: Sequence[int] | None) -> np.ndarray:
    """A raw (C, H, W) plane as the model's ``wanted`` input channels: the one channel rule.

    ``channels`` picks image channels first; then :func:`channel_mapping` (RGB/RGBA averaged to
    gray for 1-channel models unless picked or ``mode="select"``, gray replicated for 3-channel
    ones, alpha dropped; any other mismatch, e.g. 2 channels to a gray model, is refused with
    the fix). Inference and training both call it.
    """
    picked = check_channels(plane.shape[0], channels)
    if picked is not None:
        plane = plane[picked]
    return map_channels(plane, channel_mapping(plane.shape[0], wanted, mode, picked is not None))
