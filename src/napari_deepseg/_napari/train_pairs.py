"""The Fine-tune widget's training pairs: pick an image and its labels, add, list, remove.

Pairs whose layers leave the viewer drop out of the list; ``add`` checks the shapes first
(:func:`.train_run.check_pair`) and says why a pair is refused. With "replay" ticked, Add pair
adds a *replay* pair instead: an image of the kind the model already knows, with dense labels,
mixed into training so the model does not forget it (the core's ``replay_pairs``).
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, PushButton
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QListWidget

from ..errors import DeepsegError
from ..training import TrainingPair
from .train_run import check_pair, snapshot_pair


class PairList:
    """Image and labels pickers, Add pair / Remove selected buttons and the list of pairs."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.pairs: list[tuple[Image, Labels]] = []
        self.replay: list[tuple[Image, Labels]] = []
        self.replay_box = CheckBox(text="replay pair (a kind the model knows)", value=False)
        self.replay_box.tooltip = (
            "Add pair adds a replay pair: an image the model already segments well, with complete "
            "labels, mixed into training so the model does not forget it"
        )
        self.image = ComboBox(label="image", choices=self._layers(Image))
        self.labels = ComboBox(label="labels", choices=self._layers(Labels))
        self.add_button = PushButton(text="Add pair")
        self.remove_button = PushButton(text="Remove selected")
        self.list = QListWidget()
        self.list.setMaximumHeight(80)
        self.pickers = Container(widgets=[self.image, self.labels, self.replay_box])
        self.buttons = Container(
            layout="horizontal", labels=False, widgets=[self.add_button, self.remove_button]
        )
        self.add_button.changed.connect(self.add)
        self.remove_button.changed.connect(self.remove_selected)
        events = viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.connect(self._on_layers_changed)
        for layer in viewer.layers:
            layer.events.name.connect(self._on_layers_changed)
        events.inserted.connect(lambda e: e.value.events.name.connect(self._on_layers_changed))

    def _layers(self, kind: type) -> Any:
        return lambda _w=None: [(lyr.name, lyr) for lyr in self.viewer.layers if isinstance(lyr, kind)]

    def _on_layers_changed(self, _event: Any = None) -> None:
        self.image.reset_choices()
        self.labels.reset_choices()
        present = set(map(id, self.viewer.layers))
        changed = False
        for pairs in (self.pairs, self.replay):
            kept = [p for p in pairs if id(p[0]) in present and id(p[1]) in present]
            changed |= len(kept) != len(pairs)
            pairs[:] = kept
        if changed:
            self._show()

    def add(self, _value: Any = None) -> bool:
        """Add the chosen (image, labels) pair after checking shapes; False (and a message) if refused."""
        image, labels = self.image.value, self.labels.value
        if image is None or labels is None:
            show_error("Pick an image layer and a labels layer to add a training pair")
            return False
        if any(p[0] is image and p[1] is labels for p in self.pairs + self.replay):
            show_info(f"{image.name} / {labels.name} is already in the list")
            return False
        try:
            check_pair(image.data, labels.data, f"{image.name} / {labels.name}")
        except DeepsegError as err:
            show_error(str(err))
            return False
        (self.replay if self.replay_box.value else self.pairs).append((image, labels))
        self._show()
        return True

    def replay_pairs(self) -> tuple[TrainingPair, ...]:
        """The replay pairs as the core takes them (checked again, labels copied)."""
        out = []
        for image, labels in self.replay:
            name = f"{image.name} / {labels.name}"
            check_pair(image.data, labels.data, name)  # the layers may have changed since 'Add pair'
            out.append(snapshot_pair(image.data, labels.data, name))
        return tuple(out)

    def remove_selected(self, _value: Any = None) -> None:
        """Remove the selected rows of the pair list."""
        for row in sorted((i.row() for i in self.list.selectedIndexes()), reverse=True):
            if row < len(self.pairs):
                del self.pairs[row]
            else:
                del self.replay[row - len(self.pairs)]
        self._show()

    def _show(self) -> None:
        self.list.clear()
        rows = [(p, "") for p in self.pairs] + [(p, "  (replay)") for p in self.replay]
        self.list.addItems([f"{img.name}  \u2194  {lab.name}{tag}" for (img, lab), tag in rows])
