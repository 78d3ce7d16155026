"""The "Fine-tune" dock widget: train a model on (image, labels) layer pairs, then re-segment.

Form fields and short handlers only: the run is :mod:`.train_run` (plan, background task),
the live plot is :mod:`.curves`, training is :func:`napari_deepseg.training.finetune_iter`, and
the worker is started by :func:`.workers.start_worker`. A finished model joins the model list
of every docked Segment widget (found through ``viewer.window.dock_widgets``), and the
"Re-segment" button runs that widget with it.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    Label,
    PushButton,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog, QMessageBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..errors import DeepsegError
from ..sharing import export_bioimageio_iter
from ..training.config import FinetuneConfig
from . import guard_triton, workers
from .close_guard import CloseGuard, guard_window_of
from .compact import fit_combos, fit_labels
from .corrected import corrected_mask_for
from .curves import CurvesWidget
from .layers import plain_viewer
from .model_choices import FILE_ENTRY, ModelChoice, ModelChoices
from .segment_run import available_devices
from .segment_widget import MODEL_FILE_FILTER, SegmentWidget
from .train_form import recipe_fields
from .train_pairs import PairList
from .train_run import (
    SCRATCH,
    TASKS,
    TrainOutcome,
    TrainPlan,
    check_pair,
    confirm_output,
    default_output,
    reviewed_for,
    snapshot_pair,
    train_task,
)

if TYPE_CHECKING:
    import napari


def segment_widgets(viewer: Any) -> list[SegmentWidget]:
    """The Segment widgets docked in ``viewer``'s window, alone or in the tools dock (none headless)."""
    window = getattr(viewer, "window", None)
    docked = getattr(window, "dock_widgets", {}) if window is not None else {}
    found = []
    for widget in docked.values():
        found += [widget] if isinstance(widget, SegmentWidget) else [getattr(widget, "segment", None)]
    return [w for w in found if isinstance(w, SegmentWidget)]


DEFAULTS = FinetuneConfig()  # the widget's fields start from the one set of defaults


class FineTuneWidget(QWidget):
    """Dock widget: layer pairs, starting model, epochs, lr, mode, output; Start / Stop; curves."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        guard_triton()
        self.viewer = plain_viewer(napari_viewer)  # not napari's proxy (see plain_viewer)
        self._files: list[ModelChoice] = []  # model files opened here or trained here
        self.models = ModelChoices()  # the core's model list (bundled, ready, user models folder)
        self._worker: Any = None
        self._export_worker: Any = None
        self._stop = threading.Event()
        self._last: tuple[Path, Image] | None = None
        self._image_layer: Image | None = None
        self._last_model: Any = None
        self._output: Path | None = None
        self._build_form()
        self._connect()
        self._set_running(False)
        self.close_guard: CloseGuard | None = None  # made at the first Start (docked by then)

    def _guard_window(self) -> None:
        """Ask before napari's window closes during training (guard made at the first Start)."""
        if self.close_guard is None:
            me = weakref.ref(self)  # the guard lives as long as napari's window: hold the widget weakly
            self.close_guard = guard_window_of(
                self,
                lambda: bool(me() and me().running),
                lambda: me()._close_question() if me() else "",
                lambda: me() and me().stop(),
            )

    def _close_question(self) -> str:
        return (
            f"Fine-tuning is running. Stop it and save the best model so far to {self._output}, "
            "then close napari? (No: keep training, napari stays open.)"
        )

    # ----- form -----
    def _build_form(self) -> None:
        self.pair_picker = PairList(self.viewer)
        self.pairs = self.pair_picker.pairs  # the same list object: edited in place
        self.image, self.labels = self.pair_picker.image, self.pair_picker.labels
        self.add_button, self.remove_button = self.pair_picker.add_button, self.pair_picker.remove_button
        self.pair_list = self.pair_picker.list
        self.model = ComboBox(label="start from", choices=self._model_choices)
        self.models.on_change(self.model.reset_choices)
        self.task = ComboBox(label="new model", choices=list(TASKS.items()))
        for name, field in recipe_fields(DEFAULTS).items():
            setattr(self, name, field)
        self.device = ComboBox(label="device", choices=[d for d, ok in available_devices().items() if ok])
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop")
        self.status = Label(value="ready")
        self.verdict = Label(value="")  # did the last run beat its starting model (held-out data)
        fit_labels(self.status, self.verdict)
        fit_combos(self.image, self.labels, self.model)
        self.curves = CurvesWidget(self)
        self.resegment_button = PushButton(text="Re-segment")
        self.resegment_button.visible = False
        self.export_button = PushButton(text="Export to bioimage.io…")
        self.export_button.visible = False
        self._layout()

    def _layout(self) -> None:
        pick, pair_buttons = self.pair_picker.pickers, self.pair_picker.buttons
        self.form = Container(widgets=[self.model, self.task, self.epochs, self.minutes, self.lr, self.mode])
        self.form.append(self.background_label)
        self.form.extend([self.corrections, self.reviewed, self.output])
        self.advanced_form = Container(
            widgets=[self.batch_size, self.patch_size, self.val_fraction, self.seed, self.device]
        )
        self.advanced = QCollapsible("Advanced", self)
        self.advanced.addWidget(self.advanced_form.native)
        buttons = Container(layout="horizontal", labels=False, widgets=[self.start_button, self.stop_button])
        layout = QVBoxLayout(self)
        for w in (pick.native, pair_buttons.native, self.pair_list, self.form.native, self.advanced):
            layout.addWidget(w)
        after = (self.resegment_button.native, self.export_button.native)
        for w in (buttons.native, self.status.native, self.verdict.native, self.curves, *after):
            layout.addWidget(w)
        layout.addStretch(1)
        self._editable = [pick, pair_buttons, self.form, self.advanced_form]
        self._on_model_changed(self.model.value)
        self._on_mode_changed(self.mode.value)

    def _connect(self) -> None:
        self.model.changed.connect(self._on_model_changed)
        self.mode.changed.connect(self._on_mode_changed)
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.resegment_button.changed.connect(self.resegment)
        self.export_button.changed.connect(self.export)

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """The model list's bundled models (nuclei first), from scratch, its ready and user-folder
        models, then model files known here or to Segment."""
        listed = self.models.entries()
        entries = [c for c in listed if c.kind == "bundled"]
        files = [c for c in listed if c.kind != "bundled"] + [c for c in self._files if c not in listed]
        for seg in segment_widgets(self.viewer):
            files += [c for c in seg.models.entries() if c.kind == "file" and c not in files]
        out = [(c.label, c) for c in entries] + [(SCRATCH, SCRATCH)]
        return out + [(c.label, c) for c in files] + [(FILE_ENTRY, FILE_ENTRY)]

    def _on_model_changed(self, value: Any) -> None:
        self.task.visible = value == SCRATCH
        if value != FILE_ENTRY:
            self._last_model = value
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", "", MODEL_FILE_FILTER)
        self.model.value = self.add_model_file(path) if path else self._last_model

    def add_model_file(self, path: str | Path) -> ModelChoice:
        """Add a model file to the starting-model list (if new) and return its entry."""
        choice = ModelChoice("file", str(Path(path).resolve()))
        if choice not in self._files:
            self._files.append(choice)
            self.model.reset_choices()
        return choice

    def _on_mode_changed(self, value: str) -> None:
        self.background_label.visible = value == "sparse"

    def add_pair(self, _value: Any = None) -> bool:
        """Add the chosen (image, labels) pair (the Add pair button); False if refused."""
        return self.pair_picker.add()

    # ----- run -----
    def plan(self) -> TrainPlan:
        """The run the form describes (raises DeepsegError on a form it cannot run)."""
        if not self.pairs:
            raise DeepsegError("no training pairs; pick an image and its labels and press 'Add pair'")
        choice = self.model.value
        if not isinstance(choice, ModelChoice) and choice != SCRATCH:
            raise DeepsegError("no starting model chosen; pick one, a model file or 'from scratch'")
        pairs = []
        for image, labels in self.pairs:
            name = f"{image.name} / {labels.name}"
            check_pair(image.data, labels.data, name)  # the layers may have changed since 'Add pair'
            emphasis = corrected_mask_for(labels) if self.corrections.value > 1 else None
            pairs.append(
                snapshot_pair(
                    image.data, labels.data, name, reviewed_for(labels, self.reviewed.value), emphasis
                )
            )
        output = Path(self.output.value) if str(self.output.value) not in ("", ".") else None
        return TrainPlan(
            pairs=tuple(pairs),
            replay_pairs=self.pair_picker.replay_pairs(),
            start=choice if isinstance(choice, ModelChoice) else None,
            output=output or default_output(self.pairs[0][0].name),
            options=self._options(choice == SCRATCH),
        )

    def _options(self, scratch: bool) -> dict[str, Any]:
        config = FinetuneConfig(
            epochs=self.epochs.value,
            minutes=self.minutes.value or None,
            correction_weight=self.corrections.value,
            lr=self.lr.value,
            sparse=self.mode.value == "sparse",
            background_label=self.background_label.value,
            batch_size=self.batch_size.value,
            patch_size=self.patch_size.value,
            val_fraction=self.val_fraction.value,
            seed=self.seed.value,
            task=self.task.value if scratch else None,
        )
        return {"config": config, "device": self.device.value}

    def start(self, _value: Any = None) -> None:
        """Start fine-tuning in the background (the Start button)."""
        if self._worker is not None:
            return
        try:
            plan = confirm_output(self.plan(), self._ask_replace)  # None: the user keeps the file
        except DeepsegError as err:
            show_error(str(err))
            return
        if plan is None:
            return
        self._stop = threading.Event()
        self._output = plan.output
        self._last = None
        self.resegment_button.visible = self.export_button.visible = False
        self.curves.clear()
        self._set_running(True, f"preparing {len(plan.pairs)} pair(s)...")
        self._guard_window()
        self._image_layer = self.pairs[0][0]
        self._worker = workers.start_worker(
            train_task,
            plan,
            self._stop,
            title="Fine-tune",
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_error=self._on_error,
            on_finished=self._on_finished,
            on_cancel=self.stop,  # the activity panel's Cancel keeps the best model, like Stop
        )

    def _ask_replace(self, path: Path) -> bool:
        answer = QMessageBox.question(self, "Replace model file?", f"{path} exists. Replace it?")
        return answer == QMessageBox.StandardButton.Yes

    def stop(self, _value: Any = None) -> None:
        """Stop after the current step and keep the best model so far (the Stop button)."""
        if self._worker is not None:
            self._stop.set()
            self.stop_button.enabled = False
            self.status.value = "stopping after this step..."

    def _on_progress(self, event: Any) -> None:
        self.curves.add(event)
        if self._stop.is_set():
            return
        if event.stage == "step":
            loss = event.info.get("loss")
            self.status.value = f"step {event.done}/{event.total}" + (
                "" if loss is None else f", loss {loss:.4f}"
            )
        elif event.message:
            self.status.value = event.message

    def _on_done(self, outcome: TrainOutcome) -> None:
        path = outcome.path
        self._last = (path, self._image_layer)
        self.add_model_file(path)
        for seg in segment_widgets(self.viewer):
            seg.models.add(path)
        verb = "Stopped; best model so far" if outcome.stopped else "Fine-tuned model"
        show_info(f"{verb} saved to {path}" + (f": {outcome.verdict}" if outcome.verdict else ""))
        self.verdict.value = outcome.verdict or ""
        self.export_button.visible = True
        if self._image_layer in self.viewer.layers:
            self.resegment_button.text = f"Re-segment {self._image_layer.name} with the new model"
            self.resegment_button.visible = True

    def _on_error(self, err: BaseException) -> None:
        lines = str(err).strip().splitlines()
        show_error(f"Fine-tuning failed: {lines[0] if lines else type(err).__name__}")

    def _on_finished(self) -> None:
        self._worker = None
        self._set_running(False, "ready" if self._last is None else f"saved {self._last[0].name}")
        if self.close_guard is not None:
            self.close_guard.run_ended()  # napari's window was asked to close during the run

    def _set_running(self, running: bool, message: str = "ready") -> None:
        self.start_button.enabled = not running
        self.stop_button.enabled = running
        for part in self._editable:
            part.enabled = not running
        self.status.value = message

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._worker is not None

    # ----- after training -----
    def resegment(self, _value: Any = None) -> SegmentWidget | None:
        """Run the Segment widget (docking one if needed) on the trained image with the new model."""
        if self._last is None:
            return None
        path, image = self._last
        if image not in self.viewer.layers:
            show_error(f"the layer {image.name} is gone; choose an image in the Segment widget")
            return None
        found = segment_widgets(self.viewer)
        seg = found[0] if found else self.viewer.window.add_plugin_dock_widget("napari-deepseg", "Segment")[1]
        if seg.running:
            show_info("The Segment widget is busy; try again when it has finished")
            return seg
        choice = seg.models.add(path)
        seg.image.reset_choices()
        seg.image.value = image
        seg.model.value = choice
        seg.run()
        return seg

    def export(self, _value: Any = None) -> None:
        """Write the trained model as a bioimage.io package (asks where; runs in the background)."""
        if self._last is None or self._export_worker is not None:
            return
        path, image = self._last
        target, _ = QFileDialog.getSaveFileName(
            self, "Export to bioimage.io", str(path.with_suffix(".zip")), "bioimage.io package (*.zip)"
        )
        if not target:
            return
        plane = (
            image.data if image in self.viewer.layers and image.ndim == 2 and not image.multiscale else None
        )
        self.export_button.enabled = False
        self._export_worker = workers.start_worker(
            export_bioimageio_iter,
            path,
            target,
            test_image=None if plane is None else np.asarray(plane),
            overwrite=True,  # the save dialog asked before replacing a file
            title="Export",
            on_done=lambda written: show_info(f"bioimage.io package written to {written}"),
            on_error=lambda err: show_error(f"Export failed: {str(err).strip().splitlines()[0]}"),
            on_finished=self._on_export_finished,
        )

    def _on_export_finished(self) -> None:
        self._export_worker = None
        self.export_button.enabled = True

    def closeEvent(self, event: Any) -> None:
        """Stop a run when the widget closes (the model so far is saved)."""
        self._stop.set()
        super().closeEvent(event)
