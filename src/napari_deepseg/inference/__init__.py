"""Inference engine: tiled, memory-bounded, device-aware segmentation (public API).

>>> from napari_deepseg.inference import segment, segment_iter, SegmentationResult
>>> result = segment(image, model, axes="ZYX", tile=512, overlap=64, outputs=("classes", "instances"))
"""

from .device import Precision, available_devices, cpu_has_native_bf16, resolve_device, resolve_precision
from .engine import SegmentationResult, object_size, region_normalizers, segment, segment_iter
from .inputs import Normalizer, percentile_normalizer
from .options import SegmentOptions
from .postprocess import class_map, instances_from_probabilities, stitch_to_previous

__all__ = [
    "Normalizer",
    "Precision",
    "SegmentOptions",
    "SegmentationResult",
    "available_devices",
    "class_map",
    "cpu_has_native_bf16",
    "instances_from_probabilities",
    "object_size",
    "percentile_normalizer",
    "region_normalizers",
    "resolve_device",
    "resolve_precision",
    "segment",
    "segment_iter",
    "stitch_to_previous",
]
