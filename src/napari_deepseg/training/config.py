"""Settings and result of a fine-tuning run.

:class:`FinetuneConfig` is the one fine-tuning options object: its field defaults are the only
defaults (``finetune``/``finetune_iter`` keywords, ``deepseg train`` options and the Fine-tune
widget's fields all start from them), and it is stored in checkpoints and provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from .. import _checks
from ..errors import DeepsegError
from ..inference.options import DIAMETER_RANGE
from ..models.modelfile import CHANNEL_MODES


@dataclass
class FinetuneConfig:
    """Hyperparameters of a fine-tuning run (stored in checkpoints and provenance).

    See :func:`napari_deepseg.training.finetune_iter` for what each setting does.
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 8
    patch_size: int = 256
    sparse: bool = False
    background_label: int = 1
    val_fraction: float = 0.1
    steps_per_epoch: int | None = None
    schedule: str = "cosine"
    warmup: float = 0.0
    freeze_norm: bool = False
    weight_decay: float = 1e-4
    class_weights: list[float] | None = None
    dice_weight: float = 1.0
    augment: bool = True
    elastic: bool = False
    fg_fraction: float = 0.8
    zoom: float = 1.0
    correction_weight: float = 1.0
    contact_weight: float = 1.0
    anchor: float = 0.0
    replay: float = 0.25
    minutes: float | None = None
    snapshots: bool = False
    object_diameter: float | None = None
    boundary_width: int | None = None
    distance: bool | None = None
    distance_weight: float = 1.0
    loader_workers: int | None = None
    channel_mode: str | None = None
    seed: int = 0
    task: str | None = None
    class_names: list[str] | None = None
    channels: list[int] | None = None
    axes: str | None = None
    arch_options: dict[str, Any] | None = None
    name: str = ""

    @classmethod
    def from_options(cls, base: FinetuneConfig | None = None, **options: Any) -> FinetuneConfig:
        """``base`` (default: the defaults) with ``options`` (field names) replaced; sequences
        become lists. An unknown name is a one-line TypeError naming the known ones."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(
                f"unknown fine-tuning option(s) {', '.join(unknown)}; options: {', '.join(names)}"
            )
        values = {**(vars(base) if base is not None else {}), **options}
        for key, kind in (("class_weights", float), ("class_names", str), ("channels", int)):
            value = values.get(key)
            if value is not None and not isinstance(value, str | Mapping):
                values[key] = [v if kind is str else kind(v) for v in value]
        return cls(**values)

    def check(self) -> None:
        """Raise a one-line TypeError (wrong type) or DeepsegError (out of range) for bad settings."""
        for name in ("epochs", "batch_size", "patch_size", "background_label", "seed"):
            _checks.integer(getattr(self, name), name)
        _checks.integer(self.steps_per_epoch, "steps_per_epoch", optional=True)
        for name in (
            "lr", "val_fraction", "weight_decay", "dice_weight", "fg_fraction", "zoom", "correction_weight",
            "contact_weight", "anchor", "warmup", "replay", "distance_weight",
        ):  # fmt: skip
            _checks.number(getattr(self, name), name)
        _checks.integer(self.boundary_width, "boundary_width", optional=True)
        _checks.integer(self.loader_workers, "loader_workers", minimum=0, optional=True)
        for name in ("minutes", "object_diameter"):
            if getattr(self, name) is not None:
                _checks.number(getattr(self, name), name)
        problems = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.patch_size >= 16, "patch_size must be >= 16"),
            (0 <= self.val_fraction < 0.9, "val_fraction must be in [0, 0.9)"),
            (self.schedule in ("cosine", "onecycle"), "schedule must be 'cosine' or 'onecycle'"),
            (self.steps_per_epoch is None or self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1"),
            (0 <= self.fg_fraction <= 1, "fg_fraction must be in [0, 1]"),
            (1 <= self.zoom <= 4, "zoom must be in [1, 4] (1 = no scale augmentation)"),
            (self.correction_weight >= 1, "correction_weight must be >= 1 (1 = corrections count as others)"),
            (
                self.contact_weight >= 1,
                "contact_weight must be >= 1 (1 = pixels between objects count as others)",
            ),
            (self.anchor >= 0, "anchor must be >= 0 (0 = off)"),
            (self.distance_weight >= 0, "distance_weight must be >= 0 (0 = the distance map is not trained)"),
            (self.distance in (None, True, False), "distance must be True or False"),
            (0 <= self.replay <= 0.9, "replay must be in [0, 0.9] (the share of patches from replay pairs)"),
            (0 <= self.warmup <= 0.5, "warmup must be in [0, 0.5] (a fraction of the steps)"),
            (self.minutes is None or self.minutes > 0, "minutes must be > 0"),
            (
                self.object_diameter is None
                or DIAMETER_RANGE[0] <= self.object_diameter <= DIAMETER_RANGE[1],
                f"object_diameter must be {DIAMETER_RANGE[0]:g} to {DIAMETER_RANGE[1]:g} pixels",
            ),
            (
                self.boundary_width is None or 1 <= self.boundary_width <= 8,
                "boundary_width must be 1 to 8 pixels",
            ),
            (
                self.channel_mode in (None, *CHANNEL_MODES),
                f"channel_mode must be one of {', '.join(CHANNEL_MODES)}",
            ),
        ]
        for ok, message in problems:
            if not ok:
                raise DeepsegError(message)


@dataclass
class FinetuneResult:
    """What a finished run returns.

    Attributes:
        model: the best model (CPU, eval mode, ``deepseg_meta`` with provenance).
        path: the model file written (``output``), or None.
        history: one dict per epoch (epoch 0 = the starting model when validated).
        best_epoch: the epoch whose weights ``model`` holds (0: the starting model was kept: no
            epoch beat it by ``validation.BETTER_MARGIN``, 0.005).
        checkpoint: the checkpoint file, or None.
        verdict: one line saying whether the result beats the starting model on the held-out
            data (AP@0.5 for instance models with dense labels, else mean IoU) by at least 0.005
            ("better"; a tie or a smaller gain is "not better"), with the likely fix when it does
            not; None without a starting-model score.
    """

    model: nn.Module
    path: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    checkpoint: Path | None = None
    verdict: str | None = None
