"""Optimization helpers of the training loop: the default steps per epoch, the learning-rate
schedule, and the per-step rules for corrected pixels, frozen batch-norm statistics and the
L2-SP anchor. Pure functions over numpy arrays, torch modules and the config."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .config import FinetuneConfig
from .labels import EMPHASIS
from .prepare import TrainingData


def default_steps(data: TrainingData, batch_size: int) -> int:
    """Steps per epoch when not given: annotated pixels / (batch x output window²), 10..100.

    Only the user's pairs count; with replay pairs the steps grow so the user's pairs still get
    as many patches (a ``replay_share`` of them come from the replay pairs)."""
    user = data.train[: len(data.train) - data.replayed]
    annotated = sum(len(r.centers) for r in user) / (1.0 - data.replay_share)
    return int(np.clip(math.ceil(annotated / (batch_size * data.out_size**2)), 10, 100))


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: FinetuneConfig, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle, or a cosine decay to 1% of ``lr`` after a linear warm-up over the first
    ``warmup`` fraction of the ``total`` steps (none for ``warmup=0``)."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, pct_start=min(0.5, max(0.1, 3.0 / total))
        )
    warm = round(cfg.warmup * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def split_emphasis(
    y: np.ndarray, weight: float, contact_weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Targets without the ``EMPHASIS`` / ``CONTACT`` marks, and per-pixel weights: ``weight``
    on corrected pixels times ``contact_weight`` on pixels between objects (None when nothing is
    marked or the marks weigh like the rest)."""
    marked = y >= EMPHASIS
    if not marked.any():
        return y, None
    flags = np.where(marked, y // EMPHASIS, 0)
    y = np.where(marked, y % EMPHASIS, y)
    if weight == 1 and contact_weight == 1:
        return y, None
    w = np.where(flags & 1, np.float32(weight), np.float32(1.0))
    return y, w * np.where(flags & 2, np.float32(contact_weight), np.float32(1.0))


def freeze_norm_statistics(model: nn.Module) -> None:
    """Batch-norm layers normalize with their running statistics and stop updating them (their
    scale and shift still train): a few images cannot shift what the model learned from many."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def anchor_distance(model: nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared L2 distance of the weights from the starting model's (L2-SP, Li et al. 2018)."""
    return sum(((p - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
