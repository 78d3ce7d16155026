"""Batch segmentation of files, folders and huge stacks, in-process or on dask.distributed.

>>> from napari_deepseg.batch import predict, predict_iter
>>> summary = predict(["images/"], "out/", model="nuclei")   # doctest: +SKIP
"""

from __future__ import annotations

from ..io import expand_inputs
from ..progress import drain
from .files import MANIFEST_NAME, Manifest, output_path
from .run import BatchSummary, predict_iter


def predict(*args, **kwargs) -> BatchSummary:
    """:func:`predict_iter` run to the end (same arguments)."""
    return drain(predict_iter(*args, **kwargs))


__all__ = [
    "MANIFEST_NAME",
    "BatchSummary",
    "Manifest",
    "expand_inputs",
    "output_path",
    "predict",
    "predict_iter",
]
