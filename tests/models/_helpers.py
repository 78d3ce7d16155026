"""Helpers for the model tests: random-tensor weights files of the right shapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


def random_checkpoint(make: Callable[[], nn.Module], path: Path) -> dict[str, torch.Tensor]:
    """Build ``make()`` on the meta device (shapes only), write a state dict of those shapes with
    small positive random values (valid batch-norm variances) to ``path`` and return it."""
    with torch.device("meta"):
        model = make()
    gen = torch.Generator().manual_seed(1)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            state[key] = torch.rand(value.shape, generator=gen) * 0.1 + 0.01
        else:
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state
