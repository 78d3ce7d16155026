"""The "Batch" dock widget: segment a folder of images into label files, in the background.

Form fields and short handlers only: the work is :func:`napari_deepseg.batch.predict_iter`
(the same generator as ``deepseg predict``), run by :func:`.workers.start_worker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..batch import predict_iter
from . import workers
from .compact import fit_combos, fit_labels
from .layers import plain_viewer
from .model_choices import ModelChoices

if TYPE_CHECKING:
    import napari

FILE_MODEL = "model file below"


class BatchWidget(QWidget):
    """Dock widget: input folder, output folder, model, output kind, workers, Start / Cancel."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = plain_viewer(napari_viewer)  # not napari's proxy (see plain_viewer)
        self._worker: Any = None
        self.input_dir = FileEdit(label="input folder", mode="d")
        self.output_dir = FileEdit(label="output folder", mode="d")
        self.models = ModelChoices()  # the core's model list; ready COCO models need a file here
        self.model = ComboBox(label="model", choices=self._model_choices)
        self.models.on_change(self.model.reset_choices)
        self.model_file = FileEdit(label="model file", mode="r", filter="*.pt *.zip")
        self.output = ComboBox(label="output", choices=["auto", "instances", "classes", "probabilities"])
        self.workers = SpinBox(label="workers (0 = here)", min=0, max=64, value=0)
        self.start_button = PushButton(text="Start")
        self.cancel_button = PushButton(text="Cancel")
        self.files_bar = ProgressBar(label="files", min=0, max=1, value=0)
        self.status = Label(value="ready")
        fit_labels(self.status)
        fit_combos(self.model)
        self.form = Container(
            widgets=[self.input_dir, self.output_dir, self.model, self.model_file, self.output, self.workers]
        )
        buttons = Container(
            layout="horizontal", labels=False, widgets=[self.start_button, self.cancel_button]
        )
        layout = QVBoxLayout(self)
        for w in (self.form, buttons, Container(widgets=[self.files_bar, self.status])):
            layout.addWidget(w.native)
        layout.addStretch(1)
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.summary: Any = None
        self._set_running(False)

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        """Bundled models and model files of the model list (``nuclei`` first), then the file entry."""
        files = [(c.label, c.ref) for c in self.models.entries() if c.kind != "pretrained"]
        return [*files, (FILE_MODEL, FILE_MODEL)]

    def _model_ref(self) -> str:
        if self.model.value == FILE_MODEL:
            path = Path(self.model_file.value)
            if not path.is_file():
                raise ValueError("choose a model file (or a bundled model)")
            return str(path)
        return str(self.model.value)

    def start(self) -> None:
        """Start the batch in a worker thread (same core generator as ``deepseg predict``)."""
        src, out = Path(self.input_dir.value), Path(self.output_dir.value)
        try:
            if not src.is_dir() or src == Path("."):
                raise ValueError("choose an input folder")
            if out == Path(".") or out == src:
                raise ValueError("choose an output folder (not the input folder)")
            model = self._model_ref()
        except ValueError as err:
            self.status.value = str(err)
            return
        self.summary = None
        self._set_running(True, f"segmenting {src.name}")
        self._worker = workers.start_worker(
            predict_iter,
            [src],
            out,
            model=model,
            output=self.output.value,
            workers=self.workers.value or None,
            title="Batch",
            on_progress=self._on_progress,
            on_done=self._on_done,
            on_error=self._on_error,
            on_finished=self._on_finished,
        )

    def cancel(self) -> None:
        """Stop after the current unit of work; finished files stay, the rest resume next time."""
        if self._worker is not None:
            self.status.value = "cancelling..."
            self._worker.quit()

    def _on_progress(self, event: Any) -> None:
        if event.stage == "files":
            self.files_bar.max = max(1, event.total or 1)
            self.files_bar.value = event.done
            self.status.value = f"{event.done}/{event.total} files ({event.message})"

    def _on_done(self, summary: Any) -> None:
        self.summary = summary
        self.status.value = summary.text().splitlines()[0]

    def _on_error(self, err: BaseException) -> None:
        text = str(err).strip().splitlines()
        self.status.value = f"error: {text[0] if text else type(err).__name__}"

    def _on_finished(self) -> None:
        self._worker = None
        message = (
            self.status.value if self.summary is not None or "error" in self.status.value else "cancelled"
        )
        self._set_running(False, message)

    def _set_running(self, running: bool, message: str = "ready") -> None:
        self.start_button.enabled = not running
        self.cancel_button.enabled = running
        self.form.enabled = not running
        self.status.value = message

    @property
    def running(self) -> bool:
        return self._worker is not None
