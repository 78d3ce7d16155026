"""Batches made by worker processes (the GPU path): the same batches whatever the workers, and
a resumed run makes the batches of its steps again."""

from __future__ import annotations

import itertools

import numpy as np

from napari_deepseg.training.data import PatchSampler, pad_region
from napari_deepseg.training.feeder import _StepBatches, step_batches
from napari_deepseg.training.labels import boundary_targets, distance_target
from tests._shapes import touching_discs


def _sampler() -> PatchSampler:
    labels = touching_discs()
    image = np.random.default_rng(0).random((1, *labels.shape)).astype(np.float32)
    target = boundary_targets(labels).astype(np.int16)
    return PatchSampler([pad_region(image, target, "a", 0, 32, distance=distance_target(labels))], 32, 32)


def _take(workers: int, first: int, n: int) -> list:
    kw = dict(seed=3, batch_size=2, augment=True, elastic=False, first_step=first, workers=workers)
    gen = step_batches(_sampler(), **kw)
    try:
        return list(itertools.islice(gen, n))
    finally:
        gen.close()


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_workers_make_each_step_its_own_batch_and_resume_where_asked():
    direct = _StepBatches(_sampler(), 3, 2, True, False)
    made = _take(2, 0, 4)
    assert all(_same(batch, direct[i]) for i, batch in enumerate(made))
    assert not _same(made[0], made[1])
    resumed = _take(1, 2, 2)  # a run resumed at step 2
    assert _same(resumed[0], made[2])
    assert _same(resumed[1], made[3])
