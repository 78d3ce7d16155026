"""The "Segment" dock widget: any model on the chosen image into an editable Labels layer.

Form fields and short handlers only: the run itself is :mod:`.segment_run` (plan, background
task, result placement), layer handling is :mod:`.layers`, the model list is
:mod:`.model_choices`, and the worker is started by :func:`.workers.start_worker`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget
from superqt import QCollapsible
from torch import nn

from ..errors import DeepsegError
from ..inference.options import SegmentOptions
from ..models import model_meta
from . import guard_triton, workers
from .compact import fit_combos, fit_labels
from .correct_next import CorrectNextList
from .gui_steps import collect_once, warm_labels_once
from .layers import SourceSnapshot, channel_axis_choices, guess_channel_axis, plain_viewer
from .model_choices import FILE_ENTRY, ModelChoice, ModelChoices
from .postprocess_controls import PostprocessControls, Preview, keeps_probabilities
from .segment_form import SegmentFields
from .segment_run import (
    ResultPlacer,
    RunPlan,
    available_devices,
    estimate_task,
    segment_task,
    sizing_text,
)
from .size_memory import REUSED, SizeMemory

if TYPE_CHECKING:
    import napari

MODEL_FILE_FILTER = "napari-deepseg model or bioimage.io package (*.pt *.zip);;All files (*)"
_CACHE_SIZE = 2


class SegmentWidget(QWidget):
    """Dock widget: image, model, device, channels, outputs, advanced settings, Run / Cancel."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        guard_triton()  # before a torchvision architecture is imported (see guard_triton)
        self.viewer = plain_viewer(napari_viewer)  # not napari's proxy (see plain_viewer)
        self.models = ModelChoices()
        self._cache: dict[tuple, nn.Module] = {}
        self._worker: Any = None
        self._placer: ResultPlacer | None = None
        self._placing: ResultPlacer | None = None  # placing the result, one layer per event-loop turn
        self._last_model: ModelChoice | None = None
        self._build_form()
        self._connect()
        self._refresh_channels()
        self._set_running(False)
        warm_labels_once()
        collect_once()

    # ----- form -----
    def _build_form(self) -> None:
        """The fields (:mod:`.segment_form`), the post-processing controls and the layout."""
        fields = SegmentFields.build(self._image_choices, self.models.choices, available_devices())
        for name, field in vars(fields).items():
            setattr(self, name, field)
        self.post = PostprocessControls()
        self.sizes, self._size_reused = SizeMemory(), False
        self.preview = Preview(self.post, workers.start_worker)
        self.advanced = QCollapsible("Advanced", self)
        self.advanced.addWidget(fields.advanced_form.native)
        self.advanced.addWidget(self.post.container.native)  # its own form: not nested in a form row
        layout = QVBoxLayout(self)
        self.correct_next = CorrectNextList(self.viewer, self)
        for widget in (fields.form.native, self.advanced, fields.buttons.native, self.status.native):
            layout.addWidget(widget)
        layout.addWidget(self.correct_next)
        layout.addStretch(1)
        self._disable_absent_devices()
        fit_labels(self.status, self.channel_note, self.diameter_note)
        fit_combos(self.image, self.model)

    def _disable_absent_devices(self) -> None:
        model = self.device.native.model()
        for row, (_name, present) in enumerate(available_devices().items()):
            if not present:
                model.item(row).setEnabled(False)

    def _connect(self) -> None:
        events = self.viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self._on_layers_changed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_layers_changed)
        events.inserted.connect(self._on_layer_inserted)  # methods: napari holds them weakly
        self.image.changed.connect(self._refresh_channels)
        self.channel_axis.changed.connect(self._refresh_channel_list)
        self.model.changed.connect(self._on_model_changed)
        self.models.on_change(self.model.reset_choices)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.estimate_button.changed.connect(self.estimate)
        self.post.on_change(self.preview.update)

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _on_layers_changed(self, _event: Any = None) -> None:
        self.image.reset_choices()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._on_layers_changed)

    def _refresh_channels(self, _value: Any = None) -> None:
        layer = self.image.value
        choices: list[tuple[str, int | None]] = [("none", None)]
        guess, why = (None, "") if layer is None else guess_channel_axis(layer)
        if layer is not None and layer.rgb:
            choices = [("RGB (last axis)", layer.data.ndim - 1)]
        elif layer is not None:
            choices += [(f"axis {i} ({layer.data.shape[i]})", i) for i in channel_axis_choices(layer)]
        self.channel_axis.choices = choices
        self.channel_axis.value = guess
        shown = len(choices) > 1 or bool(layer is not None and layer.rgb)
        self.channel_axis.visible = shown
        self.channel_axis.tooltip = f"guessed: {why}" if why else ""
        note = f"guessed: {why}" if guess is not None else "none guessed: leading axes are planes"
        self.channel_note.value = note
        self.channel_note.visible = shown
        self._refresh_channel_list()

    def _refresh_channel_list(self, _value: Any = None) -> None:
        layer, axis = self.image.value, self.channel_axis.value
        if layer is None or axis is None:
            self.channels.choices = []
            self.channels.visible = False
            return
        names = ["red", "green", "blue", "alpha"] if layer.rgb else []
        n = layer.data.shape[axis]
        self.channels.choices = [(names[i] if i < len(names) else f"channel {i}", i) for i in range(n)]
        self.channels.value = list(range(min(n, 3)))
        rows = min(n, 4)  # as tall as its entries (up to 4, then it scrolls): no empty box
        row_height = self.channels.native.sizeHintForRow(0) if n else 0
        self.channels.native.setMaximumHeight(max(row_height, 16) * rows + 6)
        self.channels.visible = True

    def _on_model_changed(self, value: Any) -> None:
        if value != FILE_ENTRY:
            self._last_model = value
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", "", MODEL_FILE_FILTER)
        if path:
            self.model.value = self.models.add(path)
        elif self._last_model is not None:
            self.model.value = self._last_model

    # ----- run -----
    def plan(self) -> RunPlan:
        """The run the form describes (raises DeepsegError on a form it cannot run)."""
        layer, choice = self.image.value, self.model.value
        if layer is None:
            raise DeepsegError("no image layer to segment; open an image first")
        if not isinstance(choice, ModelChoice):
            raise DeepsegError("no model chosen; pick one or open a model file")
        outputs = [name for name, box in self._output_boxes().items() if box.value]
        if self.out_uncertainty.value and "instances" not in outputs:
            outputs.append("instances")  # the list steps through the objects of the instances layer
        if not outputs:
            raise DeepsegError("no output chosen; tick classes, instances or probabilities")
        has_channels = self.channel_axis.value is not None
        selected = tuple(sorted(self.channels.value)) if has_channels else None
        if selected is not None and not selected:
            raise DeepsegError("no channel selected; select at least one channel")
        all_channels = selected is not None and len(selected) == len(self.channels.choices)
        snapshot = SourceSnapshot.from_layer(layer, self.channel_axis.value)
        options = SegmentOptions(
            channels=None if all_channels else selected,
            device=self.device.value,
            tile=self.tile.value or None,
            overlap=self.overlap.value or None,
            tta=self.tta.value,
            max_memory=self.max_memory.value * 2**20 or None,
            object_diameter=self.diameter.value or None,
            postprocess=self.post.overrides() or None,
        )
        return RunPlan(
            snapshot=snapshot,
            choice=choice,
            outputs=tuple(outputs),
            options=options,
            replace=self.replace.value,
            uncertainty=self.out_uncertainty.value,
            keep_probabilities=keeps_probabilities(tuple(snapshot.spatial_shape)),
        )

    def _output_boxes(self) -> dict[str, CheckBox]:
        return {
            "classes": self.out_classes,
            "instances": self.out_instances,
            "probabilities": self.out_probabilities,
        }

    def run(self, _value: Any = None) -> None:
        """Start segmenting in the background (the Run button)."""
        plan = self._checked_plan()
        if plan is None:
            return
        plan, self._size_reused = self.sizes.applied(plan)  # an auto run of the same image: estimated once
        self._placer = ResultPlacer(self.viewer, plan)
        plan = replace(plan, unchecked=self._placer.unchecked())  # hashed by the worker, not here
        self._set_running(True, f"running {plan.choice.short_name} on {plan.snapshot.name}")
        self._start(segment_task, plan, f"Segment {plan.snapshot.name}", self._on_done, self._on_finished)
        self._placer.show_early()

    def _checked_plan(self) -> RunPlan | None:
        """The form's plan, or None (after a notification) when nothing can run now."""
        if self.running:
            return None
        try:
            return self.plan()
        except DeepsegError as err:
            show_error(str(err))
            return None

    def _start(self, task: Any, plan: RunPlan, title: str, on_done: Any, on_finished: Any) -> None:
        """Start ``task(plan, cached model)`` in a worker; ``on_done(plan, out)`` gets its result."""
        self._worker = workers.start_worker(
            task,
            plan,
            self._cache.get(plan.choice.cache_key()),
            title=title,
            on_progress=self._on_progress,
            on_done=lambda out: on_done(plan, out),
            on_error=self._on_error,
            on_finished=on_finished,
        )

    def estimate(self, _value: Any = None) -> None:
        """Estimate the object diameter of the chosen image in the background (the estimate
        button); the value fills the diameter field and the note says where it came from."""
        plan = self._checked_plan()
        if plan is None:
            return
        self._set_running(True, f"estimating the object diameter of {plan.snapshot.name}")
        title = f"Estimate object diameter of {plan.snapshot.name}"
        self._start(estimate_task, plan, title, self._on_estimated, self._on_finished_estimate)

    def _on_estimated(self, plan: RunPlan, out: tuple[nn.Module, float | None, float | None]) -> None:
        model, estimate, trained = out
        self._remember(plan.choice, model)
        if trained is None:
            self.diameter_note.value = "this model runs images at their own scale (no training size)"
        elif estimate is None:
            self.diameter_note.value = "no objects found to measure; the image runs at its own scale"
        else:
            self.diameter.value = round(estimate, 1)
            self.diameter_note.value = f"estimated {estimate:.1f} px (model trained at {trained:g} px)"

    def _on_finished_estimate(self) -> None:
        self._worker = None
        self._set_running(False)

    def cancel(self, _value: Any = None) -> None:
        """Stop the run at the next tile batch (the Cancel button)."""
        if self._worker is not None:
            self.status.value = "cancelling..."
            self.cancel_button.enabled = False
            self._worker.quit()

    def _on_progress(self, event: Any) -> None:
        total = f"/{event.total}" if event.total else ""
        self.status.value = f"{event.stage} {event.done}{total}"
        if self._placer is not None:
            self._placer.on_plane(event)

    def _on_done(self, plan: RunPlan, out: tuple[nn.Module, Any, Any]) -> None:
        model, result, prepared = out
        self._remember(plan.choice, model)
        uncertainty = prepared.get("uncertainty")
        sizing = result.meta.get("object_diameter")
        if self._size_reused and sizing:
            sizing["source"] = REUSED
        self.sizes.remember(plan, sizing)
        self.diameter_note.value = sizing_text(sizing)
        if self._placer is not None:
            self._placing, self._placer = self._placer, None
            placing = self._placing
            placing.finish(
                result, model_meta(model), prepared,
                done=lambda: self._on_placed(placing, (result, model, uncertainty)),
            )  # fmt: skip

    def _on_placed(self, placing: ResultPlacer | None = None, run: tuple | None = None) -> None:
        """All result layers are in: the run is over once the worker has finished too.

        ``run``: (result, model, uncertainty view or None) for the preview and the ranking.
        """
        self._placing = None
        if placing is not None and run is not None:
            result, model, uncertainty = run
            instances = next((lyr for lyr in placing.placed if lyr.name.endswith(" instances")), None)
            classes = next((lyr for lyr in placing.placed if lyr.name.endswith(" classes")), None)
            self.preview.keep(result, model, instances, classes)
            if uncertainty is not None:
                self.correct_next.set_ranking(uncertainty.ranking, instances)
        if self._worker is None:
            self._set_running(False)

    def _remember(self, choice: ModelChoice, model: nn.Module) -> None:
        self._cache.pop(choice.cache_key(), None)
        self._cache[choice.cache_key()] = model
        while len(self._cache) > _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))

    def _on_error(self, err: BaseException) -> None:
        lines = str(err).strip().splitlines()
        show_error(f"Segmentation failed: {lines[0] if lines else type(err).__name__}")

    def _on_finished(self) -> None:
        cancelled = self._placer is not None  # on_done clears it; error or cancel leave it
        if self._placer is not None:
            self._placer.discard()
            self._placer = None
        if cancelled and self._worker is not None and self._worker.abort_requested:
            show_info("Segmentation cancelled; no result was added")
        self._worker = None
        if self._placing is None:
            self._set_running(False)

    def _set_running(self, running: bool, message: str = "ready") -> None:
        self.run_button.enabled = not running
        self.estimate_button.enabled = not running
        self.cancel_button.enabled = running
        self.form.enabled = not running
        self.status.value = message

    @property
    def running(self) -> bool:
        """Whether a run is in progress (until its last layer is placed)."""
        return self._worker is not None or self._placing is not None
