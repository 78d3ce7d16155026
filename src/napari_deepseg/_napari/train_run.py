"""One fine-tuning run of the Fine-tune widget, without Qt widgets.

:class:`TrainPlan` is frozen at Start: the (image, labels[, reviewed]) arrays taken from the
layers (labels copied, so painting during training cannot change what it learns), the starting
model, the output file and :func:`~napari_deepseg.training.finetune_iter`'s options.
:func:`train_task` is the background part: it drives ``finetune_iter`` and, when the stop
event is set, closes it after the current step (the core then writes the best model so far)
and returns normally, so the widget gets the saved file either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepsegError
from ..inference.inputs import to_channels_last
from ..io.axes import paired_axes
from ..models import user_models_dir
from ..models.modelfile import INSTANCE_BOUNDARY
from ..progress import Cancelled, Progress, relay
from ..training import TrainingPair, finetune_iter
from ..training.data import as_pairs
from ..training.validation import verdict
from .model_choices import ModelChoice
from .reviewed import reviewed_mask_for

SCRATCH = "from scratch (U-Net)"
TASKS = {"instances (objects)": INSTANCE_BOUNDARY, "classes (semantic)": "semantic"}


def layer_array(data: Any) -> Any:
    """A layer's data as one array: level 0 of a multiscale list, else the data itself."""
    return data[0] if isinstance(data, (list, tuple)) else data


def check_pair(image: Any, labels: Any, name: str) -> None:
    """Raise the core's one-line DeepsegError when ``labels`` cannot annotate ``image``.

    ``image`` (..., H, W) or (..., H, W, C) for RGB; ``labels`` (..., H, W) integer.
    """
    labels = layer_array(labels)
    if np.dtype(labels.dtype).kind == "f":
        raise DeepsegError(f"{name}: the labels are floating point; use a Labels layer with integer values")
    image = layer_array(image)
    axes = paired_axes(image.shape, labels.shape)
    as_pairs([TrainingPair(image, labels, name=name)], axes=axes)  # shape checks only (views)


@dataclass(frozen=True)
class TrainPlan:
    """Everything a run needs, fixed at Start.

    Attributes:
        pairs: training pairs (arrays as the core takes them; names ``"image / labels"``).
        start: the starting model (bundled name or file, see ModelChoice) or None = from scratch.
        output: the model file to write.
        options: keyword arguments for ``finetune_iter`` (epochs, lr, sparse, device, ...).
        replay_pairs: pairs of the kind the starting model knows, mixed in against forgetting.
    """

    pairs: tuple[TrainingPair, ...]
    start: ModelChoice | None
    output: Path
    options: dict[str, Any] = field(default_factory=dict)
    replay_pairs: tuple[TrainingPair, ...] = ()


def snapshot_pair(
    image: Any, labels: Any, name: str, reviewed: Any = None, emphasis: Any = None
) -> TrainingPair:
    """A pair taken from layer data: the image as is, labels (and reviewed and corrected masks) copied."""
    rev = None if reviewed is None else np.array(reviewed, dtype=bool)
    emph = None if emphasis is None else np.array(emphasis, dtype=bool)
    image, labels = np.asarray(layer_array(image)), np.array(layer_array(labels))
    axes = paired_axes(image.shape, labels.shape)  # a multichannel layer (C first) -> channels last
    image = image if axes is None else to_channels_last(image, axes)
    return TrainingPair(image, labels, rev, name, emphasis=emph)


@dataclass
class TrainOutcome:
    """What :func:`train_task` returns: the model file, whether it was stopped, epoch history."""

    path: Path
    stopped: bool
    history: list[dict[str, Any]]
    best_epoch: int | None
    verdict: str | None = None


def train_task(plan: TrainPlan, stop: threading.Event) -> Generator[Progress, None, TrainOutcome]:
    """Fine-tune per ``plan``, yielding the core's events; stop within one step when ``stop`` is set."""
    start = None if plan.start is None else plan.start.ref
    replay = list(plan.replay_pairs) or None
    gen = finetune_iter(list(plan.pairs), start, output=plan.output, replay_pairs=replay, **plan.options)
    history: list[dict[str, Any]] = []

    def note(event: Progress) -> Progress:
        if event.stage == "epoch":
            history.append(dict(event.info))
        return event

    try:
        result = yield from relay(gen, note, should_stop=stop.is_set)
    except Cancelled:  # the core, closed, saved the best model so far to plan.output
        best = [h["epoch"] for h in history if h.get("best")]
        best_epoch = best[-1] if best else None
        return TrainOutcome(plan.output, True, history, best_epoch, verdict(history, best_epoch))
    return TrainOutcome(
        Path(result.path or plan.output), False, result.history, result.best_epoch, result.verdict
    )


def reviewed_for(labels: Any, only_reviewed: bool) -> Any:
    """The labels layer's reviewed mask when "use reviewed regions only" is ticked, else None."""
    if not only_reviewed:
        return None
    mask = reviewed_mask_for(labels)
    if mask is None:
        raise DeepsegError(
            f"{labels.name!r} has no reviewed regions; mark some with the Correct widget "
            "or untick 'use reviewed regions only'"
        )
    return mask


def confirm_output(plan: TrainPlan, ask: Callable[[Path], bool]) -> TrainPlan | None:
    """The output guard's question in the GUI: a plan whose model file exists runs only when
    ``ask(path)`` says yes (then it may replace it); None when the user keeps the file."""
    if not plan.output.exists():
        return plan
    if not ask(plan.output):
        return None
    return replace(plan, options={**plan.options, "overwrite": True})


def default_output(name: str, folder: Path | None = None) -> Path:
    """``<folder>/<name>-finetuned.pt`` (default folder: the user models folder, where every model
    picker lists it), not yet existing."""
    folder = user_models_dir() if folder is None else Path(folder)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "model"
    path, n = folder / f"{stem}-finetuned.pt", 2
    while path.exists():
        path, n = folder / f"{stem}-finetuned-{n}.pt", n + 1
    return path
