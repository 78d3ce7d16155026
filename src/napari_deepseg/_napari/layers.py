"""Layer <-> array helpers for the dock widgets.

- ``io.axes.axes_with_channel`` guesses an image layer's axis letters (``YX``, ``ZYX``, ``TZYX``, with
  ``C`` where the image has channels);
- :class:`SourceSnapshot` freezes what a run needs from its source layer at launch (data,
  name, world transform), so renaming or deleting layers mid-run cannot misplace the result;
- :func:`labels_kwargs` / :func:`class_colormap` / :func:`class_features` turn a result and
  its :class:`~napari_deepseg.models.ModelMeta` into napari ``Labels`` layer arguments;
- :func:`mark_result` / :func:`is_edited` record a result layer's content at creation and
  detect later user edits (paint, fill, erase or a programmatic change).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from ..io.axes import axes_with_channel

META_KEY = "deepseg"


def plain_viewer(viewer: Any) -> Any:
    """The viewer itself when napari hands a plugin widget its public-only proxy (the Plugins
    menu does). Layers taken from the proxy are proxies too, so ``is`` between one of them and
    the layer a picker holds is False: Correct's shift-click matched no layer. The widgets keep
    the viewer itself, and every layer they meet is the layer itself."""
    return getattr(viewer, "__wrapped__", viewer)


def channel_axis_choices(layer: Image) -> list[int]:
    """Data axes that can hold channels: the RGB(A) axis of an RGB layer, else any but Y and X."""
    if layer.rgb:
        return [layer.data.ndim - 1]
    return list(range(max(0, layer.data.ndim - 2)))


CHANNEL_AXIS_NAMES = ("c", "ch", "channel", "channels")
MAX_GUESSED_CHANNELS = 4


def guess_channel_axis(layer: Image) -> tuple[int | None, str]:
    """The data axis that most likely holds channels, and why (shown to the user).

    In order: the colour axis of an RGB layer (napari's ``rgb``); an axis labelled ``c``/``ch``/
    ``channel(s)`` (napari's ``axis_labels``); a first axis of 2-4 entries on a 3-D or larger
    image whose planes are at least 8 times wider (a (C, Y, X) stack, not a few Z planes). Else
    ``None``: the leading axes are Z/T planes unless the user picks a channel axis.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    shape = tuple(data.shape)
    if layer.rgb:
        return len(shape) - 1, "RGB layer"
    leading = len(shape) - 2
    for i, name in enumerate(layer.axis_labels[:leading]):
        if str(name).strip().lower() in CHANNEL_AXIS_NAMES:
            return i, f"axis labelled {name!r}"
    if leading >= 1 and 2 <= shape[0] <= MAX_GUESSED_CHANNELS and shape[0] * 8 <= min(shape[-2:]):
        return 0, f"small first axis ({shape[0]})"
    return None, "no channel axis found"


@dataclass
class SourceSnapshot:
    """What a run takes from its source image layer at launch (independent of the layer list).

    Attributes:
        name: the layer's name at launch.
        data: the layer's array (level 0 of a multiscale image).
        axes: axis letters of ``data`` (see ``io.axes.axes_with_channel``).
        transform: ``scale``, ``translate``, ``affine`` (and ``units``, ``axis_labels``) for a
            layer over the non-channel axes, in data-axis order.
    """

    name: str
    data: Any
    axes: str
    transform: dict[str, Any] = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of ``data`` without its channel axis: the shape of the result."""
        return tuple(s for s, a in zip(self.data.shape, self.axes) if a != "C")

    @classmethod
    def from_layer(cls, layer: Image, channel_axis: int | None = None) -> SourceSnapshot:
        """Snapshot ``layer``; ``channel_axis`` as in ``io.axes.axes_with_channel`` (implied for RGB)."""
        data = layer.data[0] if layer.multiscale else layer.data
        axes = axes_with_channel(data.ndim, channel_axis, colour_last=layer.rgb)
        return cls(layer.name, data, axes, layer_transform(layer, axes))


def layer_transform(layer: Image, axes: str) -> dict[str, Any]:
    """The layer's scale, translate, affine, units and axis labels without its channel axis."""
    # layer-level axes: an RGB layer has no layer axis for colour; a channel axis inside the
    # data (one layer holding channels) is a layer axis and must be dropped.
    layer_axes = axes[:-1] if layer.rgb else axes
    keep = [i for i, a in enumerate(layer_axes) if a != "C"]
    matrix = np.asarray(layer.affine.affine_matrix)
    rows = [*keep, matrix.shape[0] - 1]
    transform: dict[str, Any] = {
        "scale": tuple(np.asarray(layer.scale)[keep]),
        "translate": tuple(np.asarray(layer.translate)[keep]),
        "affine": matrix[np.ix_(rows, rows)],
        "units": tuple(layer.units[i] for i in keep),
        "axis_labels": tuple(layer.axis_labels[i] for i in keep),
    }
    if len(keep) == len(layer_axes):  # rotate and shear only survive when no axis is dropped
        transform["rotate"] = np.asarray(layer.rotate)
        transform["shear"] = np.asarray(layer.shear)
    return transform


def class_colormap(class_colors: list[str]) -> DirectLabelColormap:
    """A napari label colour map: value i drawn in ``class_colors[i]``, 0 transparent."""
    color_dict: dict[int | None, Any] = {0: "transparent", None: "transparent"}
    color_dict.update({i: c for i, c in enumerate(class_colors) if i > 0})
    return DirectLabelColormap(color_dict=color_dict)


def class_features(class_names: list[str], class_colors: list[str]) -> dict[str, list]:
    """Labels layer features: one row per class value (``index``), with its name and colour."""
    return {
        "index": list(range(len(class_names))),
        "class": list(class_names),
        "color": list(class_colors),
    }


def labels_kwargs(snapshot: SourceSnapshot, name: str, meta: Any = None) -> dict[str, Any]:
    """``Labels`` layer keyword arguments placing a result over ``snapshot``'s image.

    Args:
        snapshot: the source image at launch.
        name: layer name.
        meta: a :class:`~napari_deepseg.models.ModelMeta` for a class map (class names and
            colours become features and a colour map); ``None`` for instance labels.
    """
    kwargs: dict[str, Any] = {"name": name, **snapshot.transform}
    if meta is not None and meta.class_names:
        kwargs["colormap"] = class_colormap(meta.class_colors)
        kwargs["features"] = class_features(meta.class_names, meta.class_colors)
    return kwargs


COMPACT_INSTANCES_BELOW = 2**15  # ids left free for splits before uint16 would overflow


def display_labels(data: Any) -> np.ndarray:
    """A label map in the smallest unsigned dtype napari draws without a remapping pass.

    napari maps uint32 labels to a texture through a modulo pass over every pixel (about 0.2 s
    per 4 MPix, twice when a layer is added); uint8/uint16 go straight to the GPU. Instance maps
    with fewer than 32768 objects become uint16 (room for splits), class maps uint8.
    """
    array = np.asarray(data)
    top = int(array.max()) if array.size else 0
    if array.dtype.kind in "ui" and top < COMPACT_INSTANCES_BELOW and (array.min() if array.size else 0) >= 0:
        return array.astype(np.uint8 if top < 256 and array.dtype.itemsize == 1 else np.uint16, copy=False)
    return array


def data_digest(data: Any) -> str:
    """A content hash of a labels array (shape, dtype and values)."""
    array = np.ascontiguousarray(np.asarray(data))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(array.view(np.uint8).reshape(-1) if array.size else b"")
    return digest.hexdigest()


def mark_result(layer: Labels, digest: str | None = None, **record: Any) -> None:
    """Record ``layer`` as an unedited deepseg result (content hash + ``record`` in metadata).

    Painting, filling or erasing afterwards (``layer.events.paint``) marks it edited. The record's
    ``created`` time (seconds since the epoch) lets the Correct widget find the newest result.
    ``digest``: the data's :func:`data_digest` when already computed (off the GUI thread).
    """
    first = META_KEY not in layer.metadata
    layer.metadata[META_KEY] = {
        **record,
        "digest": digest or data_digest(layer.data),
        "painted": False,
        "created": time.time(),
    }
    if first:
        layer.events.paint.connect(lambda _event: _set_painted(layer))


def _set_painted(layer: Labels) -> None:
    record = layer.metadata.get(META_KEY)
    if record is not None:
        record["painted"] = True


def is_edited(layer: Labels) -> bool:
    """Whether the user may have changed ``layer`` since :func:`mark_result`.

    Layers that deepseg did not make count as edited (they are the user's).
    """
    record = layer.metadata.get(META_KEY)
    if not record:
        return True
    return bool(record.get("painted")) or data_digest(layer.data) != record.get("digest")


def result_layer_record(layer: Any) -> dict[str, Any] | None:
    """The deepseg record of a layer made by a run, or ``None``."""
    if not isinstance(layer, Labels):
        return None
    record = layer.metadata.get(META_KEY)
    return record if isinstance(record, dict) else None


def is_painted(layer: Labels) -> bool:
    """Whether the user painted, filled or erased on a result layer since it was made."""
    record = result_layer_record(layer)
    return record is None or bool(record.get("painted"))


def refill_result_layer(layer: Labels, data: np.ndarray, kwargs: dict[str, Any]) -> Labels:
    """Give an existing result layer new data and the run's name, transform, colours, hidden
    (napari neither converts nor draws a hidden layer: the caller shows it in a GUI turn of its
    own, so a large plane is converted for display once, and alone in its turn).

    The data keeps the layer's dtype where it can hold the values: napari's view of the layer
    (texture format, colour lookup) is not rebuilt for another dtype under a live layer.
    """
    old = np.dtype(layer.data.dtype)
    if data.dtype != old and old.kind in "ui" and data.size and int(data.max()) <= np.iinfo(old).max:
        data = data.astype(old)
    layer.visible = False
    layer.data = data
    for key, value in kwargs.items():
        setattr(layer, key, value)
    return layer


#: the label maps a run can place
LABEL_OUTPUTS = ("classes", "instances")


@dataclass(frozen=True)
class PreparedLabels:
    """A label map made ready for napari in the worker: display dtype and content hash."""

    data: np.ndarray
    digest: str


def prepare_labels(result: Any, outputs: tuple[str, ...]) -> dict[str, PreparedLabels]:
    """The result's label maps as napari draws them fastest (worker thread: no GUI stall).

    Maps kept in scratch files (``meta["outputs_stored"] == "disk"``: a plane too large for the
    memory limit) keep their dtype: a compact copy would hold the plane in memory again.
    """
    prepared = {}
    on_disk = getattr(result, "meta", {}).get("outputs_stored") == "disk"
    for out in LABEL_OUTPUTS:
        data = getattr(result, out, None)
        if data is not None and out in outputs:
            array = data if on_disk else display_labels(data)
            prepared[out] = PreparedLabels(array, data_digest(array))
    return prepared
