"""Training batches made by worker processes, so a GPU never waits for the CPU's sampling.

On a GPU one training step of a small U-Net takes a few milliseconds, less than drawing and
augmenting its patches in numpy. With ``loader_workers`` > 0 (the default off the CPU, see
:func:`napari_deepseg.inference.device.loader_workers`), a ``torch.utils.data.DataLoader``
makes batches ahead of the step that needs them, in that many processes. The workers are
spawned, not forked (a fork of a process with threads, such as napari training in a worker
thread, can deadlock); each receives a copy of the prepared regions once.

Batch ``i`` of a run is drawn with its own generator, seeded by ``(seed, i)``, so the batches do
not depend on how many workers made them, and a resumed run makes the same batches again from
its step on. (Without workers, the trainer draws batches from its one generator in turn, which
the checkpoint keeps; both ways a seed gives one run.)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from .data import Batch, PatchSampler


class _StepBatches(Dataset):
    """Batch ``i`` (a :class:`~.data.Batch`) for step index ``i``."""

    def __init__(self, sampler: PatchSampler, seed: int, size: int, augment: bool, elastic: bool) -> None:
        self.sampler, self.seed, self.size = sampler, int(seed), int(size)
        self.augment, self.elastic = augment, elastic

    def __getitem__(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, int(step)])
        return self.sampler.sample(self.size, rng, self.augment, self.elastic)

    def __len__(self) -> int:  # the steps are not known in advance (a time budget replans them)
        return 2**62


class _StepsFrom(Sampler):
    """Step indices ``first, first + 1, ...`` without end."""

    def __init__(self, first: int) -> None:
        self.first = int(first)

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.first)

    def __len__(self) -> int:
        return 2**62


def _as_is(batch: Batch) -> Batch:
    return batch


def step_batches(
    sampler: PatchSampler,
    *,
    seed: int,
    batch_size: int,
    augment: bool,
    elastic: bool,
    first_step: int,
    workers: int,
) -> Iterator[Batch]:
    """The batches of steps ``first_step, first_step + 1, ...`` made by ``workers`` processes.
    Close the generator (or drop it) to stop them."""
    loader = DataLoader(
        _StepBatches(sampler, seed, batch_size, augment, elastic),
        batch_size=None,
        sampler=_StepsFrom(first_step),
        num_workers=workers,
        collate_fn=_as_is,
        prefetch_factor=4,
        persistent_workers=False,
        multiprocessing_context="spawn",
    )
    yield from loader
