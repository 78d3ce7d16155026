"""Training pairs from files: list images and labels (folder, glob or file) and pair them by name.

Pairing key: :func:`napari_deepseg.io.pairing_key` (the stem without image suffixes and role
tags such as ``_labels`` or ``_mask``, lower-cased), as ``deepseg evaluate`` pairs files.
So ``cell01.tif`` pairs with ``cell01_labels.tif`` or ``cell01_mask.png`` in another folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import DeepsegError
from ..inference.inputs import to_channels_last
from ..io import expand_inputs, files_by_key, image_stem, read_image
from .data import TrainingPair


def list_images(spec: str | os.PathLike) -> list[Path]:
    """Image files named by a folder, a glob pattern or a single file (see ``io.expand_inputs``)."""
    found, problems = expand_inputs([spec])
    if found and problems:  # a dangling or looping link among the images: never skipped silently
        path, reason = problems[0]
        raise DeepsegError(f"{path}: {reason}")
    if not found:
        raise DeepsegError(f"no image files found for {str(spec)!r}; give a folder, a glob pattern or a file")
    return found


def pair_files(
    images: str | os.PathLike, labels: str | os.PathLike
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pair image and label files by :func:`pairing_key`.

    Returns:
        ``(pairs, unpaired)``: (image, labels) paths sorted by image name, and the files of
        either side that have no partner.

    Raises:
        DeepsegError: no pair at all, or two files of one side share a key.
    """
    image_files, label_files = list_images(images), list_images(labels)
    shared = set(image_files) & set(label_files)
    if any(_labels_name(f) for f in shared):  # one folder holding a.tif and a_labels.tif: tagged = labels
        image_files = [f for f in image_files if not (f in shared and _labels_name(f))]
        label_files = [f for f in label_files if not (f in shared and not _labels_name(f))]
    by_key = {
        side: files_by_key(files, side + " files {first} and {second} both pair as {key!r}; rename one")
        for side, files in (("image", image_files), ("label", label_files))
    }
    common = sorted(set(by_key["image"]) & set(by_key["label"]))
    unpaired = [p for side in by_key.values() for k, p in side.items() if k not in common]
    if not common:
        raise DeepsegError(
            f"no image in {images} has a label file of the same name in {labels} "
            "(names may differ by a suffix like _labels or _mask)"
        )
    return [(by_key["image"][k], by_key["label"][k]) for k in common], unpaired


_LABEL_TAG = re.compile(
    r"[_\-.](labels?|masks?|gt|truth|ground_truth|groundtruth|annotations?|seg|segmentation|instances?|classes)$",
    re.IGNORECASE,
)


def _labels_name(path: Path) -> bool:
    """Whether a file's name marks it as labels (``a_labels.tif``, ``a_mask.png``, ``a_gt.tif``)."""
    return bool(_LABEL_TAG.search(image_stem(path)))


def read_pair(image_path: Path, labels_path: Path) -> TrainingPair:
    """Read one pair into memory: image as (..., H, W) or (..., H, W, C), labels (..., H, W)."""
    image, axes = read_image(image_path)
    image = to_channels_last(np.asarray(image), axes)
    labels, laxes = read_image(labels_path)
    labels = np.asarray(labels)
    if "C" in laxes and labels.shape[laxes.index("C")] == 1:
        labels = np.squeeze(labels, axis=laxes.index("C"))
    spatial = image.shape[:-1] if image.ndim == labels.ndim + 1 else image.shape
    if spatial != labels.shape:
        raise DeepsegError(
            f"{labels_path} has shape {labels.shape} but its image {image_path} has {spatial}; "
            "give labels that cover the image pixel for pixel"
        )
    return TrainingPair(image, labels, None, str(image_path))
