"""THE AXES RULE: what the dimensions of an array mean (letters of T, Z, C, Y, X).

Every part of the package asks this module: ``segment()`` without ``axes=``, the file reader
(for files without axis metadata: ``.npy``, plain TIFF, Zarr without NGFF axes), the napari
widgets (a layer whose RGB or channel axis napari knows) and training pairs.

Without metadata (:func:`guess_axes`):

- the last axis is channels (``C``) when it is small (at most :data:`MAX_CHANNELS_LAST`) and
  the two axes before it are each at least 4 times longer: (512, 512, 3) is ``YXC``, and so is
  (128, 128, 5), while (5, 128, 128) is ``ZYX``;
- the other axes are, in order, ``YX``, ``ZYX``, ``TZYX`` and, for five, ``TCZYX`` (the OME
  order); with channels last: ``YXC``, ``ZYXC``, ``TZYXC``.

With the channel axis known (:func:`axes_with_channel`): the non-channel axes read ``YX``,
``ZYX``, ``TZYX`` and ``C`` is inserted where the channels are.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DeepsegError

#: letters of the axes an image may have
AXES = "TZCYX"
#: the non-channel axes by their count
SPATIAL = {2: "YX", 3: "ZYX", 4: "TZYX"}
#: a last axis of at most this many entries can be channels
MAX_CHANNELS_LAST = 8


def channels_last(shape: Sequence[int]) -> bool:
    """Whether the last axis of ``shape`` holds channels (see the module docstring)."""
    if len(shape) < 3:
        return False
    n = int(shape[-1])
    return n <= MAX_CHANNELS_LAST and min(int(shape[-3]), int(shape[-2])) >= 4 * n


def guess_axes(shape: Sequence[int]) -> str:
    """Axes of an array of ``shape`` that carries no axis metadata (one-line DeepsegError for
    fewer than 2 or more than 5 dimensions)."""
    shape = tuple(shape)
    nd = len(shape)
    if nd < 2:
        raise DeepsegError(f"array of shape {shape} is not an image; give at least 2 dimensions (YX)")
    if nd > 5:
        raise DeepsegError(f"array of shape {shape} has more than 5 dimensions; give at most TCZYX")
    if channels_last(shape):
        return {3: "YXC", 4: "ZYXC", 5: "TZYXC"}[nd]
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX"}[nd]


def axes_with_channel(ndim: int, channel_axis: int | None, *, colour_last: bool = False) -> str:
    """Axis letters of an image with ``ndim`` data axes whose channel axis is known.

    Args:
        ndim: number of data axes (the channel axis included).
        channel_axis: which data axis holds channels; None for none.
        colour_last: the last axis is RGB(A) colour (napari's ``layer.rgb``); overrides
            ``channel_axis``.
    """
    if colour_last:
        channel_axis = ndim - 1
    n_space = ndim - (channel_axis is not None)
    if n_space not in SPATIAL:
        raise DeepsegError(
            f"cannot segment an image with {n_space} non-channel axes; use 2 (YX), 3 (ZYX) or 4 (TZYX)"
        )
    axes = list(SPATIAL[n_space])
    if channel_axis is not None:
        if not 0 <= channel_axis < ndim or (channel_axis >= ndim - 2 and not colour_last):
            raise DeepsegError(f"channel axis {channel_axis} is Y, X or out of range for {ndim}-D data")
        axes.insert(channel_axis, "C")
    return "".join(axes)


def paired_axes(image_shape: Sequence[int], labels_shape: Sequence[int], rgb: bool = False) -> str | None:
    """The ``axes=`` of an image annotated by labels of ``labels_shape``: None (channels last or
    no channels) for RGB and same-shape images, ``"CYX"`` / ``"CZYX"`` ... for an image with one
    more axis, first, holding channels (napari's ``channel_axis=0`` data)."""
    image_shape, labels_shape = tuple(image_shape), tuple(labels_shape)
    if rgb or len(image_shape) != len(labels_shape) + 1 or image_shape[1:] != labels_shape:
        return None
    return axes_with_channel(len(image_shape), 0)
