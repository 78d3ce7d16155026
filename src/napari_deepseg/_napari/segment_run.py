"""One segmentation run of the Segment widget, without Qt widgets.

:class:`RunPlan` is frozen at launch (source snapshot, model choice, options). The background
part is :func:`segment_task` (load the model unless cached, then the engine's generator). The
GUI-thread part is :class:`ResultPlacer`: it shows stack planes as they finish in a temporary
layer, and places the final result in a Labels layer named after the image and the model,
reusing an earlier unedited result layer of the same name and never overwriting an edited one
unless the user chose "replace".
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from torch import nn

from ..inference.device import available_devices as available_devices  # the core policy, for the widgets
from ..inference.options import DEFAULTS, SegmentOptions
from ..models import ModelMeta, model_meta
from ..models.modelfile import makes_instances, map_names
from ..progress import Progress
from .correct_next import uncertainty_of
from .corrected import keep_original
from .gui_steps import GuiSteps, add_layer_steps
from .layers import (
    LABEL_OUTPUTS,
    PreparedLabels,
    SourceSnapshot,
    data_digest,
    is_edited,
    is_painted,
    labels_kwargs,
    mark_result,
    prepare_labels,
    refill_result_layer,
    result_layer_record,
)
from .live_levels import early_data, live_levels, running_layer
from .model_choices import ModelChoice


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, fixed at launch.

    Attributes:
        snapshot: the source image (data, axes, transform, name) at launch.
        choice: the model picker's entry.
        outputs: requested outputs among ``classes``, ``instances``, ``probabilities``.
        options: the segmentation options (:class:`~napari_deepseg.inference.SegmentOptions`:
            channels, device, tile, overlap, tta, max_memory, object_diameter, post-processing
            overrides, ...); the outputs the engine makes are derived from ``outputs``.
        replace: overwrite an edited earlier result layer of the same name.
        uncertainty: also make the uncertainty map and the ranking of what to correct next
            (instance models; :mod:`napari_deepseg.inference.uncertainty`).
        keep_probabilities: also compute probabilities for the post-processing preview.
        unchecked: ``(output, data, recorded digest)`` of the earlier unpainted result layers
            the run may refill; the worker hashes them (a large plane took 0.3-0.5 s of the
            GUI thread) and the edited ones are kept (:meth:`ResultPlacer.unchecked`).
    """

    snapshot: SourceSnapshot
    choice: ModelChoice
    outputs: tuple[str, ...] = ("classes",)
    options: SegmentOptions = DEFAULTS
    replace: bool = False
    uncertainty: bool = False
    keep_probabilities: bool = False
    unchecked: tuple[tuple[str, Any, str], ...] = ()

    def layer_name(self, output: str) -> str:
        """Result layer name, e.g. ``"cells nuclei classes"``."""
        return f"{self.snapshot.name} {self.choice.short_name} {output}"


def _engine() -> Any:
    """The inference engine's generator function (imported lazily)."""
    from ..inference import segment_iter

    return segment_iter


def effective_outputs(outputs: tuple[str, ...], meta: ModelMeta) -> tuple[str, ...]:
    """Requested outputs the model can give (instances need an instance-boundary model)."""
    kept = tuple(o for o in outputs if o != "instances" or makes_instances(meta))
    return kept or ("classes",)


def segment_task(
    plan: RunPlan, model: nn.Module | None = None
) -> Generator[Progress, None, tuple[nn.Module, Any, dict[str, PreparedLabels]]]:
    """Load the model (unless given) and segment ``plan.snapshot.data``.

    Yields the engine's :class:`Progress` events (``model`` while loading); returns
    ``(model, SegmentationResult, prepared label maps)`` (see :func:`prepare_labels`).
    """
    if model is None:
        yield Progress("model", 0, 1, f"loading {plan.choice.label}")
        model = plan.choice.load()
        yield Progress("model", 1, 1, f"loaded {plan.choice.label}")
    outputs = effective_outputs(plan.outputs, model_meta(model))
    wants_uncertainty = plan.uncertainty and makes_instances(model)
    if wants_uncertainty:
        outputs = tuple(dict.fromkeys((*outputs, "instances", "probabilities")))
    if plan.keep_probabilities and "instances" in outputs:
        outputs = tuple(dict.fromkeys((*outputs, "probabilities")))
    result = yield from _engine()(
        plan.snapshot.data, model, axes=plan.snapshot.axes, options=plan.options.replace(outputs=outputs)
    )
    yield Progress("prepare", 0, 1, "preparing the layers")
    prepared: dict[str, Any] = dict(prepare_labels(result, plan.outputs))
    prepared["edited"] = {out for out, data, digest in plan.unchecked if data_digest(data) != digest}
    if wants_uncertainty:
        prepared["uncertainty"] = uncertainty_of(result)
    return model, result, prepared


def estimate_task(
    plan: RunPlan, model: nn.Module | None = None
) -> Generator[Progress, None, tuple[nn.Module, float | None, float | None]]:
    """Load the model (unless given) and estimate the object diameter of ``plan.snapshot``.

    Returns ``(model, estimate in pixels or None, the model's training diameter or None)``.
    """
    from ..inference import object_size

    if model is None:
        yield Progress("model", 0, 1, f"loading {plan.choice.label}")
        model = plan.choice.load()
    trained = model_meta(model).object_diameter
    yield Progress("estimate", 0, 1, "estimating the object diameter")
    if trained is None:
        return model, None, None
    options = plan.options.replace(object_diameter=None)
    decision = object_size(plan.snapshot.data, model, axes=plan.snapshot.axes, options=options)
    estimate = decision["object_diameter"] if decision else None
    yield Progress("estimate", 1, 1, "estimated")
    return model, estimate, trained


def sizing_text(sizing: dict[str, Any] | None) -> str:
    """One line on the object size a run used ("" when the model has no training size)."""
    if not sizing:
        return ""
    trained = f"model trained at {sizing['model_diameter']:g} px"
    if not sizing.get("object_diameter"):
        return f"no objects found to measure; ran at the image's own scale ({trained})"
    scale = "" if sizing["scale"] == 1 else f", image scaled x{sizing['scale']:.2f}"
    return f"object diameter {sizing['object_diameter']:.1f} px ({sizing['source']}{scale}; {trained})"


class ResultPlacer:
    """Puts a run's planes and result into the viewer (GUI thread only).

    Result layers existing at launch are captured then, so renaming or adding layers during the
    run cannot redirect the result; a deleted source layer does not matter (the snapshot holds
    its data and transform).
    """

    def __init__(self, viewer: Any, plan: RunPlan) -> None:
        self.viewer = viewer
        self.plan = plan
        self.targets = {out: self._reusable(plan.layer_name(out)) for out in LABEL_OUTPUTS}
        self.live: dict[str, Labels | None] = {}
        self.early: set[str] = set()  # live layers still showing placeholder zeros
        self.closed = False  # the result is being placed, or the run was discarded

    def _reusable(self, name: str) -> Labels | None:
        """The earlier result layer ``name`` unless painted (edits by code: :meth:`unchecked`)."""
        layer = next((lyr for lyr in self.viewer.layers if lyr.name == name), None)
        if result_layer_record(layer) is None:
            return None
        return layer if self.plan.replace or not is_painted(layer) else None

    def unchecked(self) -> tuple[tuple[str, Any, str], ...]:
        """``(output, data, recorded digest)`` of the targets to hash for edits (the worker's
        :attr:`RunPlan.unchecked`): all of them, unless the run replaces edited layers."""
        if self.plan.replace:
            return ()
        return tuple(
            (out, layer.data, result_layer_record(layer)["digest"])
            for out, layer in self.targets.items()
            if layer is not None
        )

    def on_plane(self, event: Progress) -> None:
        """Show a finished plane of a stack, or a plane's finished block (``event.info``)."""
        if event.stage == "blocks":
            self._on_block(event)
            return
        if event.stage != "planes" or len(self.plan.snapshot.spatial_shape) <= 2:
            return
        index = tuple(event.info.get("index", ()))
        for out in LABEL_OUTPUTS:
            plane = event.info.get(out)
            if plane is None or out not in self.plan.outputs:
                continue
            layer = self._live_layer(out, np.asarray(plane).dtype)
            if layer is not None:
                layer.data[index] = plane
                layer.refresh()

    def _on_block(self, event: Progress) -> None:
        """Show a block of a plane run block by block (info: index, y, x, the plane's outputs).

        A 2D result layer shows the engine's own output array (no copy: a 16k x 16k plane is
        not held twice) and is refreshed as blocks land; a stack's layer gets the block copied.
        """
        index, y, x = tuple(event.info.get("index", ())), event.info["y"], event.info["x"]
        flat = len(self.plan.snapshot.spatial_shape) <= 2
        made = False
        for out in LABEL_OUTPUTS:
            plane = event.info.get(out)
            if plane is None or out not in self.plan.outputs:
                continue
            shared = flat and plane.shape == tuple(self.plan.snapshot.spatial_shape)
            if shared and made and out not in self.live:
                continue  # one new layer per GUI turn; it views the run's array, so it shows all later
            made = made or out not in self.live
            layer = self._live_layer(out, plane.dtype, plane if shared else None)
            if layer is None:
                continue
            if out in self.early:  # made before the run's arrays existed: show them now
                self.early.discard(out)
                layer.data = live_levels(plane if shared else np.zeros(layer.data.shape, layer.data.dtype))
            data = layer.data[0] if layer.multiscale else layer.data  # levels: views of the first
            target = data[index] if index else data
            if not np.shares_memory(target, plane):
                target[y, x] = plane[y, x]
            layer.refresh()

    def _live_layer(
        self, out: str, dtype: np.dtype, data: np.ndarray | None = None, visible: bool = True
    ) -> Labels | None:
        """The "(running)" layer of ``out``, made at the first call (on ``data`` if given)."""
        if out in self.live:
            layer = self.live[out]
            if layer is not None and layer not in self.viewer.layers:
                self.live[out] = layer = None  # the user deleted it: stop showing planes
            return layer
        dtype = np.uint32 if out == "instances" else np.result_type(dtype, np.uint8)
        if data is None:
            data = np.zeros(self.plan.snapshot.spatial_shape, dtype)
        name = f"{self.plan.layer_name(out)} (running)"
        layer = self.live[out] = running_layer(self.viewer, self.plan.snapshot, name, out, data, visible)
        return layer

    def show_early(self) -> None:
        """A large 2D plane's running layers, made now (one per GUI turn) while the run loads;
        the first block then points them at the run's own arrays."""
        shape = tuple(self.plan.snapshot.spatial_shape)
        zeros = {o: early_data(shape, o) for o in LABEL_OUTPUTS if o in self.plan.outputs}
        steps = []
        for o, data in zeros.items():  # each made hidden, then shown in a turn of its own (drawn then)
            if data is not None:
                steps += [lambda o=o, d=data: self._make_early(o, d), lambda o=o: self._show_early(o)]
        if steps:
            GuiSteps(steps).start()

    def _make_early(self, out: str, data: np.ndarray) -> None:
        if out not in self.live and not self.closed:  # not once a block or the result came
            self._live_layer(out, data.dtype, data, visible=False)
            self.early.add(out)

    def _show_early(self, out: str) -> None:
        layer = self.live.get(out)
        if layer is not None and not self.closed and layer in self.viewer.layers:
            layer.visible = True

    def finish(
        self,
        result: Any,
        meta: ModelMeta,
        prepared: dict[str, PreparedLabels] | None = None,
        done: Any = None,
    ) -> None:
        """Place the label maps and probabilities in short event-loop turns, then call ``done()``.

        Each layer takes a few short GUI steps (:mod:`.gui_steps`: the layer, its overlays, its
        data are built in turns of their own); between steps Qt handles input and repaints, so
        placing a large result never freezes the window for the sum of them. ``self.placed``
        lists the layers written.
        """
        self.closed = True
        prepared = dict(prepare_labels(result, self.plan.outputs) if prepared is None else prepared)
        for out in [o for o in self.live if o not in prepared]:  # made at launch, never filled
            self._drop_live(out)
        edited = prepared.pop("edited", None)  # hashed by the worker; else here
        for out, layer in self.targets.items():
            if layer is not None and (out in edited if edited is not None else is_edited(layer)):
                self.targets[out] = None
        uncertainty = prepared.pop("uncertainty", None)
        steps = [lambda out=out: self._place_labels(out, prepared[out], meta) for out in prepared]
        steps.append(self._activate)
        probs = getattr(result, "probabilities", None)
        if probs is not None and "probabilities" in self.plan.outputs:
            steps += [lambda k=k: self._place_probability(probs, k, meta) for k in range(1, probs.shape[0])]
        if uncertainty is not None:
            steps.append(lambda: self._place_uncertainty(uncertainty.map))
        steps.append(self.viewer.update_status_from_cursor)  # no stale "(running)" under the mouse
        self._steps = GuiSteps(steps, done)
        self.placed: list[Any] = self._steps.results
        self._steps.start()

    def _activate(self) -> None:
        """The newest label result becomes the active layer: the Correct widget follows it."""
        labels = [layer for layer in self.placed if isinstance(layer, Labels) and layer in self.viewer.layers]
        if labels:
            self.viewer.layers.selection.active = labels[-1]

    def _place_labels(self, out: str, prepared: PreparedLabels, meta: ModelMeta) -> Labels:
        data = prepared.data
        name = self.plan.layer_name(out)
        kwargs = labels_kwargs(self.plan.snapshot, name, meta if out == "classes" else None)
        live = self.live.pop(out, None)
        live_ok = live is not None and live in self.viewer.layers and not is_painted(live)
        if live_ok and live.multiscale:  # a large plane's display-only levels: the result is a new layer
            self.viewer.layers.remove(live)
            live_ok = False
        target = self.targets[out]
        if target is not None and not self.plan.replace and is_painted(target):
            target = None  # painted while the run worked: kept, the result goes to a new layer
        reused = target if target is not None and target in self.viewer.layers else live if live_ok else None
        if reused is not None:
            if live_ok and reused is target:
                self.viewer.layers.remove(live)
            shown = reused.visible
            layer = refill_result_layer(reused, data, kwargs)
            self._steps.insert(lambda: setattr(layer, "visible", shown))
        else:
            # made now, added and shown over the next steps (each alone stays short)
            # made hidden: napari converts the labels for display once, when the last step shows it
            layer = Labels(data, **{**kwargs, "visible": False})
            self._steps.insert(*add_layer_steps(self.viewer, layer, kwargs.get("visible", True)))
        mark_result(
            layer, prepared.digest, output=out, model=self.plan.choice.label, source=self.plan.snapshot.name
        )
        keep_original(layer)  # what the user corrects later is what differs from it
        return layer

    def _place_probability(self, probabilities: Any, k: int, meta: ModelMeta) -> Image:
        """Class ``k``'s probability (or the distance map after the classes) as a hidden additive
        image (reused when it exists)."""
        name = f"{self.plan.layer_name('probability')} {map_names(meta)[k]}"
        old = next((lyr for lyr in self.viewer.layers if lyr.name == name), None)
        if isinstance(old, Image) and old.metadata.get("deepseg_probability"):
            old.data = probabilities[k]
            return old
        layer = self.viewer.add_image(
            probabilities[k],
            name=name,
            blending="additive",
            contrast_limits=(0, 1),
            visible=False,
            **self.plan.snapshot.transform,
        )
        layer.metadata["deepseg_probability"] = True
        return layer

    def _place_uncertainty(self, data: np.ndarray) -> Image:
        """The uncertainty map as a visible additive image over the result (reused when it exists)."""
        name = self.plan.layer_name("uncertainty")
        old = next((lyr for lyr in self.viewer.layers if lyr.name == name), None)
        if isinstance(old, Image) and old.metadata.get("deepseg_uncertainty"):
            old.data = data
            return old
        layer = self.viewer.add_image(
            data, name=name, colormap="magma", blending="additive", opacity=0.6,
            contrast_limits=(0, 1), **self.plan.snapshot.transform,
        )  # fmt: skip
        layer.metadata["deepseg_uncertainty"] = True
        return layer

    def _drop_live(self, out: str) -> None:
        layer = self.live.pop(out, None)
        if layer is not None and layer in self.viewer.layers and not is_painted(layer):
            self.viewer.layers.remove(layer)

    def discard(self) -> None:
        """After a cancel or error: remove unpainted partial layers, keep painted ones as partial."""
        self.closed = True
        for layer in self.live.values():
            if layer is None or layer not in self.viewer.layers:
                continue
            if is_painted(layer):
                layer.name = layer.name.replace("(running)", "(partial)")
            else:
                self.viewer.layers.remove(layer)
        self.live.clear()
        self.viewer.update_status_from_cursor()
