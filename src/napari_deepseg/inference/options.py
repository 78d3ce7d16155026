"""THE SEGMENTATION OPTIONS: :class:`SegmentOptions`, every inference option in one place.

The role :class:`~napari_deepseg.training.FinetuneConfig` plays for training: each option has
its default, its valid range, its unit and one check (:data:`SPECS`). ``segment()`` and
``segment_iter()`` take the options as keyword arguments (a thin front) or as
``options=SegmentOptions(...)``; the engine, :class:`~.job.Job`, the napari run plan, batch
and the CLI carry this one object. CLI flags and their help come from :data:`SPECS`
(``cli/_segment_options.py``).

Every size a person gives is in pixels of the image as given: object sizes (``min_size``,
``object_diameter``) and the network's sizes (``tile``, ``overlap``, ``block``) alike. A run that
resamples the image to the model's object size converts them to its grid
(:meth:`SegmentOptions.at_scale`): ``tile=512`` on an image shrunk by half runs tiles of 256
of the grid the network sees, the same 512 image pixels. The defaults (``None``) are chosen on
that grid.

The halo rule (one for tiles, blocks and chunks): neighbouring tiles share ``overlap`` pixels
(default ``tile // 8`` of the requested tile, 64 for the default tile); blocks of a large
plane and chunks of a huge image both add ``halo = max(64, overlap)`` pixels of context on
each side (:meth:`SegmentOptions.halo`). How each level splits its extent, and why they
differ: tiles (``tiling.tile_starts``) overlap by ``overlap`` and are sized to the plane
(``tiling.fit_tile``); blocks (``blocks.split_axis``) are equal pieces of a plane, none
thinner than the rest, each read with ``halo`` more on each side; chunks of an image on disk
(``batch.work.plan_chunks``) follow the 1024-pixel grid of the output store's chunks, so that
no two workers ever write one store chunk, each read with the same ``halo``. A chunk is then
segmented as a plane region by the same tiles and blocks (``inference.window``).

Adding an option: a field here with its default, a :class:`Spec` in :data:`SPECS` (range,
unit, help, CLI flag), and its use (see docs/development.md, "where to add X").
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _checks
from ..errors import DeepsegError
from .memory import DEFAULT_HALO, MIN_MEMORY, parse_size
from .postprocess import SEED_METHODS

OUTPUTS = ("classes", "instances", "probabilities")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEFAULT_TILE = 512
MIN_TILE, MAX_TILE = 8, 16384
#: object diameters a person may give, in pixels (segmentation and fine-tuning alike)
DIAMETER_RANGE = (2.0, 1000.0)
POSTPROCESS_KEYS = (
    "seed_threshold",
    "foreground_threshold",
    "min_size",
    "seed_method",
    "seed_sigma",
    "seed_h",
)


@dataclass(frozen=True)
class Spec:
    """How one option is described to people: unit, range text, help, CLI flag (None: no flag)."""

    unit: str
    range: str
    help: str
    flag: str | None = None
    default_text: str | None = None


SPECS: dict[str, Spec] = {
    "channels": Spec("channel indices", ">= 0", "image channels feeding the model, e.g. 0 or 1,2,0",
                     "--channels", "all, mapped by the model's channel mode"),
    "device": Spec("", "auto, cpu, cuda, cuda:N, mps", "where the network runs", "--device", "auto"),
    "precision": Spec("", ", ".join(PRECISIONS),
                      "auto: bf16 on GPUs and on bf16 CPUs for models measured to agree; or force one",
                      "--precision", "auto"),
    "tile": Spec("image pixels", f"{MIN_TILE}-{MAX_TILE}", "tile side", "--tile",
                 "512-768, fitted to the image"),
    "overlap": Spec("image pixels", "0 to tile - 1",
                    "pixels shared by neighbouring tiles; blocks and chunks add max(64, overlap) pixels "
                    "of context", "--overlap", "tile // 8 (64)"),
    "batch_size": Spec("tiles", "1-1024", "tiles per forward pass", "--batch-size",
                       "2 on CPU, 4 on GPU, fewer for larger tiles"),
    "outputs": Spec("", ", ".join(OUTPUTS), "what to make (classes are always made)", None, "classes"),
    "tta": Spec("", "on/off", "average the 8 flips and rotations (8x slower)", "--tta", "off"),
    "min_size": Spec("image pixels", ">= 0", "objects with fewer pixels are dropped", "--min-size",
                     "the model file's, else 16"),
    "stitch_3d": Spec("IoU", "(0, 1]", "join objects of consecutive Z planes overlapping by this IoU",
                      "--stitch-3d", "off"),
    "max_memory": Spec("bytes", f">= {MIN_MEMORY // 1024**2}M",
                       "memory the run aims to stay under (e.g. 512M, 2G); sets block and chunk sizes",
                       "--max-memory", "half the available memory, at most 2G"),
    "block": Spec("image pixels", ">= 128", "block side of planes segmented block by block",
                  "--block", "from the memory limit, 512-2048"),
    "object_diameter": Spec("image pixels", f"auto, off or {DIAMETER_RANGE[0]:g}-{DIAMETER_RANGE[1]:g}",
                            "object (nucleus) diameter, for models trained at one object size: auto "
                            "estimates it and rescales the image to the model's size, off runs the "
                            "image as it is", "--diameter", "auto"),
    "postprocess": Spec("", ", ".join(POSTPROCESS_KEYS), "overrides of the model's instance post-processing"),
}  # fmt: skip


@dataclass(frozen=True)
class SegmentOptions:
    """Every option of a segmentation run, checked when made (one-line DeepsegError).

    Attributes (units and ranges in :data:`SPECS`):
        channels: image channel indices feeding the model (None: all, mapped by the model).
        device: "auto", "cpu", "cuda", "cuda:N", "mps" (checked against the machine at run time).
        precision: "auto", "fp32", "bf16" or "fp16".
        tile: tile side (None: 512-768 fitted to the image); overlap: pixels shared by
            neighbouring tiles (None: tile // 8); batch_size: tiles per forward pass.
        outputs: among "classes", "instances", "probabilities".
        tta: average the 8 flips/rotations.
        min_size: smallest object kept, image pixels (None: the model file's setting, else 16).
        stitch_3d: False, or the IoU threshold joining objects of consecutive Z planes.
        max_memory: bytes the run aims to stay under (None: the memory policy's default).
        block: block side of large planes (None: from the memory limit).
        object_diameter: None (estimate), "off" or a diameter in image pixels.
        postprocess: overrides of the model file's post-processing (keys of POSTPROCESS_KEYS).
    """

    channels: tuple[int, ...] | None = None
    device: Any = "auto"
    precision: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    outputs: tuple[str, ...] = ("classes",)
    tta: bool = False
    min_size: int | None = None
    stitch_3d: float | bool = False
    max_memory: int | None = None
    block: int | None = None
    object_diameter: float | str | None = None
    postprocess: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        for name, value in _checked(self).items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> SegmentOptions:
        """A copy with ``changes`` (option names only; checked)."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise _checks.ArgumentTypeError(
                f"unknown segmentation option(s) {', '.join(unknown)}; use {', '.join(FIELDS)}"
            )
        return dataclasses.replace(self, **changes)

    @property
    def tile_overlap(self) -> int:
        """Pixels shared by neighbouring tiles: ``overlap``, else a 1/8 of the requested tile."""
        return self.overlap if self.overlap is not None else (self.tile or DEFAULT_TILE) // 8

    @property
    def halo(self) -> int:
        """Context pixels on each side of a block or a chunk: ``max(64, tile overlap)``."""
        return halo_for(self.tile_overlap)

    @property
    def limit_given(self) -> bool:
        """Whether the caller set the memory limit (kept to the smallest blocks if need be)."""
        return self.max_memory is not None

    def at_scale(self, scale: float) -> SegmentOptions:
        """The options of a run resampled by ``scale``: the sizes a person gives in image pixels
        (``min_size``, ``postprocess["min_size"]``, ``tile``, ``overlap``, ``block``) converted
        to the run's grid (lengths kept within their ranges)."""
        if scale == 1.0:
            return self
        post = scaled_postprocess(self.postprocess, scale)
        tile = length_at_scale(self.tile, scale, MIN_TILE, MAX_TILE)
        overlap = length_at_scale(self.overlap, scale, 0, MAX_TILE)
        if overlap is not None and tile is not None:
            overlap = min(overlap, tile - 1)
        return self.replace(
            min_size=area_at_scale(self.min_size, scale), postprocess=post, tile=tile, overlap=overlap,
            block=length_at_scale(self.block, scale, 128, 1 << 20),
        )  # fmt: skip

    def record(self) -> dict[str, Any]:
        """The options as plain JSON values (manifests, result metadata)."""
        out = dataclasses.asdict(self)
        out["device"] = str(self.device)
        return out


def area_at_scale(pixels: int | None, scale: float) -> int | None:
    """An object size in image pixels as pixels of the image resampled by ``scale``."""
    return None if pixels is None else max(0, round(pixels * scale * scale))


def length_at_scale(pixels: int | None, scale: float, low: int, high: int) -> int | None:
    """A length in image pixels as pixels of the image resampled by ``scale``, within [low, high]."""
    return None if pixels is None else int(min(high, max(low, round(pixels * scale))))


def scaled_postprocess(overrides: Mapping[str, Any] | None, scale: float) -> dict[str, Any] | None:
    """Post-processing overrides with their ``min_size`` (image pixels) at ``scale``."""
    if not overrides or "min_size" not in overrides or scale == 1.0:
        return None if overrides is None else dict(overrides)
    return {**overrides, "min_size": area_at_scale(overrides["min_size"], scale)}


def halo_for(overlap: int) -> int:
    """THE HALO RULE: blocks and chunks add ``max(64, overlap)`` pixels of context on each side
    (``overlap``: the tiles' overlap), so an object cut by a block or chunk border is seen whole
    from both sides wherever the tiles themselves see it whole."""
    return max(DEFAULT_HALO, int(overlap))


FIELDS = tuple(f.name for f in dataclasses.fields(SegmentOptions))


def make_options(options: SegmentOptions | None = None, **changes: Any) -> SegmentOptions:
    """``options`` (default: all defaults) with keyword ``changes`` applied and checked."""
    if options is not None and not isinstance(options, SegmentOptions):
        raise _checks.ArgumentTypeError(f"options must be a SegmentOptions, not {type(options).__name__}")
    return (options or DEFAULTS).replace(**changes) if changes else (options or DEFAULTS)


# --------------------------------------------------------------------------- checks


def _checked(opts: SegmentOptions) -> dict[str, Any]:
    """Every field checked and normalized (one-line DeepsegError naming the valid range)."""
    tile = _whole(opts.tile, "tile", MIN_TILE, MAX_TILE)
    overlap = _whole(opts.overlap, "overlap", 0, MAX_TILE)
    if tile is not None and overlap is not None and overlap >= tile:
        raise DeepsegError(f"overlap={overlap} must be less than tile={tile}; lower the overlap")
    return {
        "channels": _channels(opts.channels),
        "device": _device(opts.device),
        "precision": _choice(opts.precision, "precision", PRECISIONS),
        "tile": tile,
        "overlap": overlap,
        "batch_size": _whole(opts.batch_size, "batch_size", 1, 1024),
        "outputs": _outputs(opts.outputs),
        "tta": _flag(opts.tta, "tta"),
        "min_size": _whole(opts.min_size, "min_size", 0, 10**9),
        "stitch_3d": _stitch(opts.stitch_3d),
        "max_memory": _memory(opts.max_memory),
        "block": _whole(opts.block, "block", 128, 1 << 20),
        "object_diameter": check_diameter(opts.object_diameter),
        "postprocess": checked_postprocess(opts.postprocess),
    }


def _whole(value: Any, name: str, low: int, high: int) -> int | None:
    value = _checks.integer(value, name, minimum=low, optional=True)
    if value is not None and value > high:
        raise DeepsegError(f"{name}={value} is too large; use {name}={high} or less")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool | numbers.Integral) or value not in (0, 1):
        raise _checks.ArgumentTypeError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def _choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise DeepsegError(f"{name}={value!r} is unknown; use one of {', '.join(allowed)}")
    return value.lower()


def _device(value: Any) -> Any:
    if hasattr(value, "type") and hasattr(value, "index"):  # a torch.device
        return value
    if not isinstance(value, str) or not value.strip():
        raise _checks.ArgumentTypeError(f"device must be a name such as 'cpu' or 'cuda:0', not {value!r}")
    return value.strip().lower()


def _channels(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise _checks.ArgumentTypeError(f"channels must be a list of channel indices, not {value!r}")
    picked = tuple(_checks.integer(c, "channels", minimum=0) for c in value)
    if not picked:
        raise DeepsegError("channels is empty; give at least one channel index, or None for all")
    return picked


def _outputs(value: Any) -> tuple[str, ...]:
    names = _checks.names(value, "outputs", OUTPUTS)
    if not names:
        raise DeepsegError(f"outputs is empty; choose from {', '.join(OUTPUTS)}")
    return tuple(dict.fromkeys(names))


def _stitch(value: Any) -> float | bool:
    if value is None or value is False:
        return False
    if value is True:
        return 0.5
    return _checks.number(value, "stitch_3d", 0.0, 1.0, low_open=True)


def _memory(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
        raise _checks.ArgumentTypeError(f"max_memory must be bytes or a size such as '2G', not {value!r}")
    size = parse_size(value)
    if size < MIN_MEMORY:
        raise DeepsegError(
            f"max_memory={value!r} is too small; use at least {MIN_MEMORY // 1024**2}M (e.g. 2G)"
        )
    return size


def check_diameter(value: Any) -> float | str | None:
    """``object_diameter``: None or "auto" (estimate: None), "off", or a number of pixels in
    :data:`DIAMETER_RANGE` (numbers written as text are read)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().lower() == "off":
        return "off"
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    low, high = DIAMETER_RANGE
    if isinstance(number, bool) or not isinstance(number, numbers.Real) or not low <= float(number) <= high:
        raise DeepsegError(
            f"object_diameter={value!r} is not valid; give 'auto', 'off' or a diameter in pixels "
            f"from {low:g} to {high:g} (e.g. 24)"
        )
    return float(number)


def checked_postprocess(overrides: Any) -> dict[str, Any] | None:
    """Post-processing overrides: known keys, values in range (None: none)."""
    if overrides is None:
        return None
    if not isinstance(overrides, Mapping):
        raise _checks.ArgumentTypeError(f"postprocess must be a dict of settings, not {overrides!r}")
    unknown = sorted(set(overrides) - set(POSTPROCESS_KEYS))
    if unknown:
        raise DeepsegError(
            f"unknown post-processing setting(s) {', '.join(unknown)}; use {', '.join(POSTPROCESS_KEYS)}"
        )
    out = dict(overrides)
    for key in ("seed_threshold", "foreground_threshold"):
        if key in out:
            out[key] = _checks.number(out[key], key)
            if not 0 < out[key] < 1:
                raise DeepsegError(f"{key} must be between 0 and 1, not {out[key]:g}")
    for key in ("seed_sigma", "seed_h"):
        if key in out:
            out[key] = _checks.number(out[key], key, 0.0, 1000.0)
    if "min_size" in out:
        out["min_size"] = _whole(out["min_size"], "min_size", 0, 10**9)
    if "seed_method" in out:
        out["seed_method"] = _choice(out["seed_method"], "seed_method", SEED_METHODS)
    return out


DEFAULTS = SegmentOptions()
