"""The model picker's list: the core's one model list plus model files opened in this session.

The entries come from :func:`napari_deepseg.models.model_catalog` (bundled models, ready pretrained
zoo models, the user models folder), read afresh each time. A :class:`ModelChoices` object is
owned by each widget (no module-level state). Model files chosen with "model file..." or
registered at runtime (e.g. by the Fine-tune widget, through :meth:`ModelChoices.add`) join the list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qtpy.QtCore import QFileSystemWatcher
from torch import nn

from .. import models

FILE_ENTRY = "model file..."


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker.

    Attributes:
        kind: ``"bundled"`` (a model file shipped in the package), ``"pretrained"`` (a zoo
            architecture with ready pretrained weights, e.g. ``deeplabv3_resnet50_coco``) or
            ``"file"`` (a model file on disk).
        ref: the bundled or pretrained model's name, or the file path.
    """

    kind: Literal["bundled", "file", "pretrained"]
    ref: str

    @property
    def label(self) -> str:
        """Text shown in the picker."""
        if self.kind == "bundled":
            fits = _short(models.bundled_description(self.ref))
            return f"{self.ref} ({fits})" if fits else f"{self.ref} (bundled)"
        if self.kind == "pretrained":
            return f"{self.ref} (pretrained)"
        return Path(self.ref).name

    @property
    def short_name(self) -> str:
        """Short name used in result layer names."""
        if self.kind == "file":
            return Path(self.ref).stem
        return self.ref

    def cache_key(self) -> tuple[Any, ...]:
        """Key for the widget's model cache; a re-saved model file gets a new key."""
        if self.kind == "file":
            try:
                stat = os.stat(self.ref)
            except OSError:
                return (self.kind, self.ref, None)
            return (self.kind, self.ref, stat.st_mtime_ns, stat.st_size)
        return (self.kind, self.ref)

    def load(self) -> nn.Module:
        """Load the model (CPU, eval mode); raises ``ModelFileError``/``DeepsegError`` on problems.

        Pretrained weights are read from torch's hub cache (downloaded once where there is a
        network; offline the error names the file to place there).
        """
        return models.load_model(self.ref)


class ModelChoices:
    """The model picker's entries, in display order: :func:`napari_deepseg.models.model_catalog`
    (bundled models with ``nuclei`` first, ready pretrained models whose weights are here, the
    user models folder's files), then model files added at runtime."""

    def __init__(self) -> None:
        self._files: list[ModelChoice] = []
        self._listeners: list[Callable[[], None]] = []
        self._watcher: QFileSystemWatcher | None = None

    def entries(self) -> list[ModelChoice]:
        """All model entries (without the "model file..." action)."""
        out = [_choice(entry) for entry in models.model_catalog()]
        return out + [c for c in self._files if c not in out]

    def choices(self, _widget: Any = None) -> list[tuple[str, ModelChoice | str]]:
        """``(label, value)`` pairs for a magicgui ComboBox (its choices callback), then the file action."""
        return [(c.label, c) for c in self.entries()] + [(FILE_ENTRY, FILE_ENTRY)]

    def add(self, path: str | os.PathLike) -> ModelChoice:
        """Add a model file (if new) and return its entry; listeners are told of the change."""
        choice = ModelChoice("file", str(Path(path).resolve()))
        if choice not in self._files:
            self._files.append(choice)
            for listener in list(self._listeners):
                listener()
        return choice

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever an entry is added here or a model file appears in (or
        leaves) the user models folder, whoever saved it (another widget, ``deepseg train``)."""
        self._listeners.append(callback)
        if self._watcher is None:
            folder = models.user_models_dir()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                return  # an unwritable folder holds no new models; the list still reads it
            self._watcher = QFileSystemWatcher([str(folder)])
            self._watcher.directoryChanged.connect(self._folder_changed)

    def _folder_changed(self, _path: str = "") -> None:
        for listener in list(self._listeners):
            listener()


def _short(description: str, limit: int = 60) -> str:
    """A model description short enough for a picker entry (its first clause)."""
    text = description.split(" (")[0].split(";")[0].strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _choice(entry: models.CatalogEntry) -> ModelChoice:
    """The picker entry of a catalog entry (user-folder models are model files)."""
    if entry.kind in ("bundled", "pretrained"):
        return ModelChoice(entry.kind, entry.ref)
    return ModelChoice("file", str(Path(entry.ref).resolve()))
