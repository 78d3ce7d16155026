"""Image input and label output: TIFF/OME-TIFF, PNG/JPEG, .npy, Zarr/OME-Zarr."""

from .images import (
    IMAGE_SUFFIXES,
    expand_inputs,
    files_by_key,
    guess_axes,
    image_stem,
    is_zarr_path,
    pairing_key,
    read_image,
    write_labels_tiff,
)
from .ngff import NgffInfo, read_ngff
from .zarr import OmeZarrLabelsWriter, is_complete, labels_beside, open_labels

__all__ = [
    "IMAGE_SUFFIXES",
    "NgffInfo",
    "OmeZarrLabelsWriter",
    "expand_inputs",
    "files_by_key",
    "guess_axes",
    "image_stem",
    "is_complete",
    "is_zarr_path",
    "labels_beside",
    "open_labels",
    "pairing_key",
    "read_image",
    "read_ngff",
    "write_labels_tiff",
]
