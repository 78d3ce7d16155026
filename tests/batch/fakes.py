"""A stand-in for ``inference.segment_iter`` (same call signature) used by batch tests.

Pointwise, so results of chunks and blocks must equal the whole-image result exactly:
classes = 1 where the pixel is above 100, instances = connected components of each plane.
It records the shape of every block it is given or reads (``CALLS``) so tests can check laziness.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import ndimage as ndi

from napari_deepseg.progress import Progress

CALLS: list[tuple[int, ...]] = []


def fake_segment_iter(image, model, *, axes, outputs=("classes",), region=None, **options):
    if region is not None:  # a Y/X block of a plane: only it is read (``segment_iter(region=)``)
        rows, cols = region
        image = image[tuple(rows if a == "Y" else cols if a == "X" else slice(None) for a in axes)]
    image = np.asarray(image)
    CALLS.append(image.shape)
    if "C" in axes:
        image = image.max(axis=axes.index("C"))
    spatial = axes.replace("C", "")
    classes = (image > 100).astype(np.uint8)
    planes = classes.reshape(-1, *classes.shape[-2:])
    instances = np.zeros(planes.shape, np.uint32)
    next_id = 0
    for i, plane in enumerate(planes):
        lab, n = ndi.label(plane)
        instances[i] = np.where(lab > 0, lab + next_id, 0)
        next_id += n
        yield Progress("planes", i + 1, len(planes), info={"index": (i,)})
    probs = np.stack([1.0 - classes, classes, np.zeros_like(classes)]).astype(np.float16)  # K = 3
    return SimpleNamespace(
        classes=classes,
        instances=instances.reshape(classes.shape),
        probabilities=probs,
        axes=spatial,
        meta={},
    )


def failing_segment_iter(image, model, *, axes, **options):
    raise RuntimeError("boom")
    yield  # pragma: no cover


def predict_iter(*args, segment_fn=None, **kwargs):
    """``napari_deepseg.batch.predict_iter`` with the engine replaced by ``segment_fn`` while it runs
    (monkeypatching batch.work's engine; the public batch API has no test hook)."""
    from unittest import mock

    from napari_deepseg.batch import predict_iter as real
    from napari_deepseg.batch import work

    with mock.patch.object(work, "segment_iter", segment_fn or work.segment_iter):
        return (yield from real(*args, **kwargs))


def predict(*args, segment_fn=None, **kwargs):
    """``napari_deepseg.batch.predict`` with the engine replaced by ``segment_fn`` (see above)."""
    from napari_deepseg.progress import drain

    return drain(predict_iter(*args, segment_fn=segment_fn, **kwargs))
