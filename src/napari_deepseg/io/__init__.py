"""Image input and label output: TIFF/OME-TIFF, PNG/JPEG, .npy, Zarr/OME-Zarr."""

from .images import (
    IMAGE_SUFFIXES,
    expand_inputs,
    guess_axes,
    image_stem,
    is_zarr_path,
    pairing_key,
    read_image,
    write_labels_tiff,
)
from .zarr import OmeZarrLabelsWriter, is_complete, open_labels

__all__ = [
    "IMAGE_SUFFIXES",
    "OmeZarrLabelsWriter",
    "expand_inputs",
    "guess_axes",
    "image_stem",
    "is_complete",
    "is_zarr_path",
    "open_labels",
    "pairing_key",
    "read_image",
    "write_labels_tiff",
]
