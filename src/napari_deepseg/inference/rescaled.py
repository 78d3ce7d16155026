"""Running a model at its training object size: the diameter estimate and the rescaled run.

:func:`estimate_diameter` segments a centre crop of one plane (the middle one of a stack) at
the :data:`.scale.FIRST_SCALES` its rule reads (:func:`first_pass`) and starts from the coarsest
scale at which the objects reach the model's ``object_diameter`` (:func:`first_guess`: a model
shown objects much larger than it was trained on cuts them into pieces of about its own size, so
the image's own scale alone underestimates enlarged images); from there it rescales the crop to bring the
objects to the model's diameter and measures again until the scale settles (:func:`refine`).
:func:`run_rescaled` resamples the image's Y and X axes by the chosen scale, runs
:func:`~napari_deepseg.inference.segment_iter` on it and maps its outputs back to the original
grid (classes by nearest neighbour, probabilities bilinearly, instances with outlines from the
resampled foreground probability: :meth:`.gridmap.GridMap.labels`), plane by plane as the planes
finish, so progressive displays work. The policy numbers (range, dead band, diameter
definition) live in :mod:`.scale`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from torch import nn

from ..progress import Progress, relay
from .gridmap import GridMap
from .inputs import AxesPlan, finite_plane
from .outputs import OutputStore
from .result import in_out_axes
from .scale import (
    FIRST_SCALES,
    SCALE_RANGE,
    median_diameter,
    resize_into,
    resize_plane,
    scale_factor,
    scaled_shape,
)

#: side of the crop (at the model's scale) the estimate segments; 384 rather than 512 keeps the
#: estimate under 10% of a 2048x2048 default run (issue 36) at the same accuracy on the
#: selection split (estimates within 15% of the truth: 68.3% either way; median error 8.8% vs 8.7%)
CROP = 384
#: at most this many passes; the estimate stops when the scale changes by less than 5%
ROUNDS = 3
#: a single-plane image of at most this many pixels is segmented whole, with the run's own
#: options, by the estimate's pass at scale 1 (:class:`WholePlane`), so a run decided at scale 1
#: reuses that pass instead of segmenting the image again (issue 36: folders of small images)
WHOLE_PLANE = 576 * 576


class WholePlane:
    """The run of a small single-plane image at its own scale, made at most once.

    The estimate's pass at scale 1 measures the objects of this run (the whole plane instead of
    a centre crop); a run decided at scale 1 then returns it (``result``) rather than segmenting
    the image again. ``run``: segments the image with the run's options at its own scale,
    instances included, and returns the :class:`~.result.SegmentationResult`."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run
        self.result: Any = None

    def instances(self) -> np.ndarray:
        """(H, W) instance labels of the whole plane (the run is made on the first call)."""
        if self.result is None:
            self.result = self._run()
        return self.result.instances


def estimate_diameter(
    image: Any,
    model: nn.Module,
    model_diameter: float,
    segment: Callable[..., Any],
    *,
    axes: str | None = None,
    channels: Any = None,
    device: Any = "auto",
    precision: str = "auto",
    whole: WholePlane | None = None,
) -> float | None:
    """Median object diameter (pixels of ``image``) of the objects in ``image``, or None when
    the model finds fewer than 3 objects. ``model_diameter``: the model's training diameter;
    ``segment``: the engine's ``segment`` function (given, so this module sits below the engine);
    ``whole``: the run at scale 1 of a small single-plane image, measured there whole."""
    plane = _centre_region(image, axes, round(CROP / SCALE_RANGE[0]))  # (C, <=2048, <=2048)
    plane = finite_plane(plane, warn=False)  # NaN/inf replaced before resampling spreads them; the run warns
    options = {"channels": channels, "device": device, "precision": precision, "segment": segment}
    options["whole"] = whole
    seen = first_pass(lambda s: apparent_diameter(plane, model, s, **options), model_diameter)
    guess = first_guess(seen, model_diameter)
    if guess is None:
        return None
    return refine(plane, model, model_diameter, *guess, **options)


def first_pass(measure: Callable[[float], float | None], model_diameter: float) -> dict[float, float | None]:
    """The apparent diameters (``measure(scale)``) at the :data:`.scale.FIRST_SCALES` that
    :func:`first_guess` reads, measured lazily: the same guess as with all of them.

    With three scales, the middle one decides: objects that look smaller than the model's
    there leave the coarse scale no say (a crossing, if any, lies above the middle scale, and a
    large blob at the coarse scale alone is not trusted), and objects that look at least as
    large leave the fine one none (the crossing or the coarse scale is taken first), unless
    the coarse scale finds no objects. Each measure segments a crop, so this saves a third.
    """
    scales = sorted(FIRST_SCALES)
    if len(scales) != 3:
        return {s: measure(s) for s in scales}
    coarse, middle, fine = scales
    seen = {middle: measure(middle)}
    if seen[middle] is None or seen[middle] >= model_diameter:
        seen[coarse] = measure(coarse)
    if seen[middle] is None or seen[middle] < model_diameter or seen[coarse] is None:
        seen[fine] = measure(fine)
    return seen


def first_guess(seen: dict[float, float | None], model_diameter: float) -> tuple[float, float] | None:
    """(scale, estimate) from the apparent diameters at the first-pass scales, or None.

    The coarsest crossing: going from coarse to fine, the first pair of scales between which
    the apparent diameter reaches the model's, interpolated log-linearly (objects look smaller
    than the model's size below it; above it a model shown enlarged objects cuts them into
    pieces of about its own size, so finer scales are not trusted). A coarse scale that already
    looks large counts only when the next finer scale looks large too (tiny objects shrunk 4x
    can merge into large blobs). Without a crossing: the finest scale's measure.
    """
    found = sorted((s, d) for s, d in seen.items() if d)
    for i, (s, d) in enumerate(found):
        if d < model_diameter:
            continue
        if i > 0 and found[i - 1][1] < model_diameter:
            s0, d0 = found[i - 1]
            t = math.log(model_diameter / d0) / math.log(d / d0)
            scale = s0 * (s / s0) ** t
            return scale, model_diameter / scale
        if i + 1 == len(found) or found[i + 1][1] >= model_diameter:
            return s, d / s
    return (found[-1][0], found[-1][1] / found[-1][0]) if found else None


def refine(
    plane: np.ndarray, model: nn.Module, model_diameter: float, scale: float, estimate: float, **options: Any
) -> float:
    """The estimate after re-measuring at the scale it implies, until that scale settles
    (within 5%, at most ``ROUNDS - 1`` passes). ``options``: channels, device, precision."""
    for _ in range(ROUNDS - 1):
        new = float(np.clip(model_diameter / estimate, *SCALE_RANGE))
        if abs(new / scale - 1) < 0.05:
            break
        scale = new
        d = apparent_diameter(plane, model, scale, **options)
        if d is None:
            break
        estimate = d / scale
    return estimate


def apparent_diameter(
    plane: np.ndarray,
    model: nn.Module,
    scale: float,
    channels: Any = None,
    device: Any = "auto",
    precision: str = "auto",
    segment: Callable[..., Any] | None = None,
    whole: WholePlane | None = None,
) -> float | None:
    """Median diameter of the objects the model finds in the centre crop of a (C, H, W) plane
    resampled by ``scale`` (a crop of ``CROP`` pixels after resampling), in resampled pixels;
    objects cut by the crop's border are left out where enough remain. None: under 3 objects.
    ``segment``: the engine's ``segment`` function; ``whole``: at scale 1, the objects of this
    run of the whole plane are measured instead of a crop's."""
    if whole is not None and scale == 1.0:
        labels = whole.instances()
        return median_diameter(labels, exclude_border=True) or median_diameter(labels)
    crop = _centre_crop(plane, round(CROP / scale))
    if scale != 1.0:
        crop = resize_plane(crop, scaled_shape(crop.shape[1:], scale))
    labels = segment(
        crop, model, axes="CYX", channels=channels, device=device, precision=precision,
        outputs=("instances",), object_diameter="off",
    ).instances  # fmt: skip
    return median_diameter(labels, exclude_border=True) or median_diameter(labels)


def _centre_region(image: Any, axes: str | None, side: int) -> np.ndarray:
    """The raw (C, <=side, <=side) centre of the middle plane, reading only that region (so a
    lazy dask or zarr image is not read whole)."""
    plan = AxesPlan.parse(tuple(image.shape), axes)
    h, w = plan.size("Y"), plan.size("X")
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    window = {"Y": slice(y0, y0 + side), "X": slice(x0, x0 + side)}
    view = image[tuple(window.get(a, slice(None)) for a in plan.axes)]
    sub = AxesPlan.parse(tuple(view.shape), plan.axes)
    return sub.read_plane(view, tuple(sub.size(a) // 2 for a in sub.loop_axes))


def _centre_crop(plane: np.ndarray, side: int) -> np.ndarray:
    """The centre (C, <=side, <=side) window of a (C, H, W) plane, as float32."""
    h, w = plane.shape[1:]
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return np.asarray(plane[:, y0 : y0 + side, x0 : x0 + side], dtype=np.float32)


def estimates(model_diameter: float | None, object_diameter: Any) -> bool:
    """Whether a run measures the objects' size: the model records its training diameter and
    the option is auto (None or ``"auto"``). The one rule for :func:`choose_scale` and for
    the engine's whole-plane pass (:class:`WholePlane`)."""
    return model_diameter is not None and object_diameter in (None, "auto")


def choose_scale(
    model: nn.Module,
    model_diameter: float | None,
    object_diameter: Any,
    estimate_options: dict[str, Any],
    segment: Callable[..., Any],
) -> dict[str, Any] | None:
    """The rescale decision for a run: None when the model records no diameter or the user
    turned it off; else ``{"model_diameter", "object_diameter", "source", "scale"}``.
    ``segment``: the engine's ``segment`` function, for the estimate."""
    if model_diameter is None or object_diameter == "off":
        return None
    if estimates(model_diameter, object_diameter):
        image = estimate_options.pop("image")
        d = estimate_diameter(image, model, model_diameter, segment, **estimate_options)
        source = "estimated" if d is not None else "no objects found; image run at its own scale"
    else:
        d, source = float(object_diameter), "given"
    scale = scale_factor(model_diameter, d) if d else 1.0
    return {"model_diameter": float(model_diameter), "object_diameter": d, "source": source, "scale": scale}


def run_rescaled(
    image: Any, plan: AxesPlan, scale: float, inner: Any, store: OutputStore
) -> Generator[Progress, None, Any]:
    """Resample ``image`` by ``scale``, run ``inner(scaled, axes, out_grid)`` (the engine's run,
    which stores instances on ``out_grid``'s image grid) on it and map the classes and
    probabilities back; returns the inner result with every output on the original grid.
    ``store`` holds the resampled image and the mapped outputs (memory or scratch files, the
    run's :class:`.outputs.OutputStore`)."""
    loop = plan.loop_axes
    full = (plan.size("Y"), plan.size("X"))
    small = scaled_shape(full, scale)
    lead = tuple(plan.size(a) for a in loop)
    dtype = np.dtype(np.float32) if np.dtype(image.dtype).kind in "fc" else np.dtype(image.dtype)
    shape = (*lead, plan.channels, *small)
    store.reserve(math.prod(shape) * dtype.itemsize)
    scaled = store.zeros(shape, dtype)
    for index in plan.plane_indices():  # band by band: no float32 copy of the whole plane
        where = "image" + "".join(f" ({a}={i})" for a, i in zip(loop, index))
        resize_into(finite_plane(plan.read_plane(image, index), where), scaled[index])  # one true count
        store.release()
    mapper = _Mapper(lead, GridMap.between(small, full), store)
    value = yield from relay(inner(scaled, loop + "CYX", mapper.grid), mapper.event)
    del scaled
    return mapper.result(value, loop, plan.out_axes)


class _Mapper:
    """Classes on the original grid, filled from the scaled run's plane and block events
    (instances arrive on the original grid already)."""

    def __init__(self, lead: tuple[int, ...], grid: GridMap, store: OutputStore):
        self.lead, self.grid, self.store = lead, grid, store
        self.classes: np.ndarray | None = None

    def event(self, event: Progress) -> Progress:
        """The event with its plane's classes (``info``) mapped to the original grid."""
        if event.stage not in ("planes", "blocks") or not event.info:
            return event
        info, index = dict(event.info), tuple(event.info.get("index", ()))
        if "y" in info:
            info["y"], info["x"] = self.grid.span(info["y"], info["x"])
        ys, xs = info.get("y", slice(None)), info.get("x", slice(None))
        plane = info.get("classes")
        if plane is not None:
            if self.classes is None:
                self.classes = self.store.zeros((*self.lead, *self.grid.full), plane.dtype)
            out = self.classes[index]
            rows, cols = self.grid.rows[ys], self.grid.cols[xs]
            out[ys, xs] = plane[rows[:, None], cols[None, :]]
            info["classes"] = out
        return Progress(event.stage, event.done, event.total, event.message, info)

    def result(self, result: Any, loop: str, out_axes: str) -> Any:
        """The inner result with classes (mapped plane by plane as the plane events came) and
        probabilities (row bands) on the original grid; the run's own probabilities are kept as
        ``run_probabilities`` (what its instances were made from, for a faithful re-make)."""
        if self.classes is None:  # every plane event maps its plane's classes: none were seen
            empty = self.store.zeros((*self.lead, *self.grid.full), result.classes.dtype)
            self.classes = self.grid.fill(empty, result.classes)
        result.classes = self.classes
        if result.probabilities is not None:
            p = result.probabilities
            back = self.store.zeros((*p.shape[:-2], *self.grid.full), p.dtype)
            resize_into(p.reshape(-1, *p.shape[-2:]), back.reshape(-1, *self.grid.full))
            result.probabilities, result.run_probabilities = back, p
        return in_out_axes(result, loop, out_axes)
