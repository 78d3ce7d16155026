"""Instance post-processing in the Segment widget: the fields, and a live preview.

The fields override the model file's settings (0 = the model's own): foreground threshold,
seed threshold (``"threshold"`` seeding), seed smoothing sigma and seed dynamic (``"maxima"``
and ``"distance"`` seeding) and minimum object size. Runs pass them to ``segment_iter(postprocess=...)``.

Live preview: after a run on a 2D image (up to ``PREVIEW_PIXELS``) the widget keeps the
probabilities; changing a field re-makes the instances from them in a worker
(:func:`postprocess_task`) and shows them in the unedited instances layer, so the effect of a
threshold is visible at once without running the network again. An edited layer is never
replaced (the note says so).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import Container, FloatSpinBox, Label, SpinBox

from ..progress import Progress
from .layers import data_digest, display_labels

#: the largest 2D plane whose probabilities the widget keeps for the preview
PREVIEW_PIXELS = 16 * 2**20


class PostprocessControls:
    """The magicgui fields (``container``) and the overrides they describe."""

    def __init__(self) -> None:
        self.foreground = FloatSpinBox(label="foreground threshold (0 = model's)", min=0, max=0.99, step=0.05)
        self.seed_threshold = FloatSpinBox(label="seed threshold (0 = model's)", min=0, max=0.99, step=0.05)
        self.seed_sigma = FloatSpinBox(label="seed smoothing px (0 = model's)", min=0, max=20, step=0.5)
        self.seed_h = FloatSpinBox(label="seed dynamic (0 = model's)", min=0, max=1, step=0.01)
        self.min_size = SpinBox(label="min object size px (0 = model's)", min=0, max=10**6, step=8)
        self.foreground.tooltip = "P(interior) + P(boundary) above which a pixel belongs to an object"
        self.seed_threshold.tooltip = "threshold seeding: interior probability that starts an object"
        self.seed_sigma.tooltip = (
            "maxima and distance seeding: smoothing before the seeds; larger merges more"
        )
        self.seed_h.tooltip = (
            "maxima and distance seeding: how far a peak must rise above the saddle to its neighbour "
            "to start an object of its own; larger merges more"
        )
        self.min_size.tooltip = (
            "objects with fewer pixels (of the image, whatever scale it runs at) are dropped"
        )
        self.note = Label(value="")
        self.fields = (self.foreground, self.seed_threshold, self.seed_sigma, self.seed_h, self.min_size)
        self.container = Container(widgets=[*self.fields, self.note])

    def overrides(self) -> dict[str, Any]:
        """The settings the user changed (others stay the model file's)."""
        out: dict[str, Any] = {}
        if self.foreground.value:
            out["foreground_threshold"] = float(self.foreground.value)
        if self.seed_threshold.value:
            out["seed_threshold"] = float(self.seed_threshold.value)
        if self.seed_sigma.value:
            out["seed_sigma"] = float(self.seed_sigma.value)
        if self.seed_h.value:
            out["seed_h"] = float(self.seed_h.value)
        if self.min_size.value:
            out["min_size"] = int(self.min_size.value)
        return out

    def on_change(self, callback: Any) -> None:
        for field in self.fields:
            field.changed.connect(callback)


def keeps_probabilities(spatial_shape: tuple[int, ...]) -> bool:
    """Whether a run on an image of this (non-channel) shape keeps probabilities for the preview."""
    return len(spatial_shape) == 2 and int(np.prod(spatial_shape)) <= PREVIEW_PIXELS


def following_classes(classes: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """The run's class map made to agree with (previewed) instances: background where there is
    no object, the run's class inside objects (interior where the run said background)."""
    inside = np.where(classes == 0, np.asarray(1, classes.dtype), classes)
    return np.where(instances > 0, inside, np.asarray(0, classes.dtype))


def postprocess_task(
    probabilities: np.ndarray,
    model: Any,
    overrides: dict[str, Any],
    scale: float = 1.0,
    classes: np.ndarray | None = None,
    shape: tuple[int, int] | None = None,
) -> Generator[Progress, None, tuple[np.ndarray, str, np.ndarray | None]]:
    """Instances from a run's kept (K, h, w) probabilities on the grid the model ran on, with
    the model's settings and ``overrides`` (image pixels, converted at the run's ``scale``), as
    the run made them, on the image's (H, W) ``shape`` (default: the probabilities' own);
    returns the labels as napari draws them, their digest and, given the run's (H, W)
    ``classes``, the class map that follows them (:func:`following_classes`; worker thread)."""
    from ..inference.engine import postprocess_settings
    from ..inference.gridmap import GridMap
    from ..inference.options import scaled_postprocess
    from ..inference.postprocess import consecutive, foreground_threshold, instances_from_probabilities

    settings = postprocess_settings(model, None, scaled_postprocess(overrides, scale))  # image pixels
    yield Progress("preview", 0, 1, "re-making the instances")
    prob = probabilities.astype(np.float32)
    shape = tuple(shape or prob.shape[1:])
    labels = instances_from_probabilities(prob, **settings)
    if labels.shape != shape:  # outlines on the image grid as the run draws them
        grid = GridMap.between(labels.shape, shape)
        labels = consecutive(grid.labels(labels, prob, foreground_threshold(settings)))
    labels = display_labels(labels)
    followed = (
        None if classes is None or classes.shape != labels.shape else following_classes(classes, labels)
    )
    return labels, data_digest(labels), followed


class Preview:
    """The kept probabilities of the last 2D run and the instances layer they re-make."""

    def __init__(self, controls: PostprocessControls, start_worker: Any) -> None:
        self.controls, self.start_worker = controls, start_worker
        self.source: tuple[np.ndarray, Any, float, tuple[int, int]] | None = None
        self.layer: Any = None
        self.classes_layer: Any = None  # the run's classes layer, kept in step with the preview
        self.classes: np.ndarray | None = None  # its class map as the run made it
        self.worker: Any = None
        self.pending = False

    def keep(self, result: Any, model: Any, layer: Any, classes_layer: Any = None) -> None:
        """Keep ``result``'s probabilities (or forget them) for previews on ``layer``; the run's
        ``classes_layer`` then follows the previewed objects."""
        probs = getattr(result, "probabilities", None)
        self.classes_layer = classes_layer
        self.classes = None if classes_layer is None else np.array(classes_layer.data, copy=True)
        if probs is None or layer is None or probs.ndim != 3:
            self.source, self.layer = None, None
            return
        sizing = result.meta.get("object_diameter") or {}
        run_grid = getattr(result, "run_probabilities", None)  # what a rescaled run's instances came from
        kept = probs if run_grid is None else run_grid
        self.source = (kept, model, float(sizing.get("scale", 1.0)), tuple(probs.shape[1:]))
        self.layer = layer
        self.controls.note.value = "changes show at once on the instances layer"

    def update(self, _value: Any = None) -> None:
        """A field changed: re-make the instances (one worker at a time; the last change wins)."""
        from .layers import is_edited

        if self.source is None or self.layer is None:
            return
        if is_edited(self.layer):
            self.controls.note.value = "the instances layer was edited: run again to apply the settings"
            return
        if self.worker is not None:
            self.pending = True
            return
        probs, model, scale, shape = self.source
        self.worker = self.start_worker(
            postprocess_task, probs, model, self.controls.overrides(), scale, self.classes, shape,
            title="Preview post-processing", on_done=self._show, on_error=self._failed,
            on_finished=self._finished,
        )  # fmt: skip

    def _failed(self, err: BaseException) -> None:
        lines = str(err).strip().splitlines()
        self.controls.note.value = f"preview failed: {lines[0] if lines else type(err).__name__}"

    def _show(self, out: tuple[np.ndarray, str, np.ndarray | None]) -> None:
        from .layers import is_edited

        labels, digest, classes = out
        layer = self.layer
        if layer is None or is_edited(layer):
            return
        _replace_result(layer, labels, digest)
        note = f"preview: {int(labels.max())} objects"
        other = self.classes_layer
        if classes is not None and other is not None:
            if is_edited(other):
                note += "; the classes layer was edited and keeps its content"
            else:
                _replace_result(other, classes, data_digest(classes))
                note += "; the classes layer follows them"
        self.controls.note.value = note

    def _finished(self) -> None:
        self.worker = None
        if self.pending:
            self.pending = False
            self.update()


#: record fields mark_result writes itself
KEPT = ("digest", "painted", "created")


def _replace_result(layer: Any, data: np.ndarray, digest: str) -> None:
    """Put ``data`` into an unedited result layer, which stays an unedited result."""
    from .corrected import keep_original
    from .layers import mark_result, result_layer_record

    record = {k: v for k, v in (result_layer_record(layer) or {}).items() if k not in KEPT}
    layer.data = data
    mark_result(layer, digest, **record)
    keep_original(layer)
