"""Label images -> training targets (class index per pixel, ``IGNORE`` where the loss must not look).

Conventions (see docs/training.md):

- **Dense** labels: every pixel counts; 0 = background.
  * instance-boundary task: labels are instances (0 = background, 1..N = objects) and become
    classes 0 = background, 1 = interior, 2 = boundary. The boundary is
    ``skimage.segmentation.find_boundaries(objects, mode="inner")`` restricted to object pixels:
    the one-pixel rim *inside* each object that touches another object or background, exactly
    as the bundled default model was trained (scripts/train_default_model.py).
  * semantic task: labels are the class map itself (0 = background, 1..K-1 = classes).
- **Sparse** labels (scribbles): 0 = not annotated, ignored by the loss; the user paints
  background as its own label, ``background_label`` (default 1).
  * instance-boundary task: ``background_label`` marks background, every other positive value
    is one object (boundaries from the painted objects, as above).
  * semantic task: label ``v >= 1`` means class ``v - 1`` (1 = background, 2 = class 1, ...);
    ``background_label`` must be 1.
- **Reviewed** mask (optional, bool, same shape): pixels where it is False are ignored in both
  modes, so only pixels a person has checked teach the model. Boundaries are computed from the
  full label image first, so an object's rim next to unreviewed pixels is still its rim.

Targets are ``int16`` arrays of the labels' shape with values ``IGNORE`` (-1) or 0..K-1.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from .._checks import looks_like_intensity
from ..errors import DeepsegError
from ..models.modelfile import INSTANCE_BOUNDARY

#: target value of pixels that the loss ignores (cross-entropy ``ignore_index``).
IGNORE = -1
#: added to the target class of emphasized (corrected) training pixels; the trainer takes it
#: off again and weighs those pixels ``correction_weight`` times (it survives every augmentation,
#: which moves targets by nearest neighbour)
EMPHASIS = 1000
#: added (on top of any ``EMPHASIS``) to the target class of pixels between two objects (where
#: they touch or nearly do); the trainer weighs them ``contact_weight`` times
CONTACT = 2 * EMPHASIS
#: pixels within this many pixels of two different objects are "between objects"
CONTACT_REACH = 2

INSTANCE_CLASSES = ["background", "interior", "boundary"]


def check_labels(labels: np.ndarray, name: str = "labels", reviewed: np.ndarray | None = None) -> np.ndarray:
    """Return ``labels`` as a non-negative integer array, or raise a one-line DeepsegError
    (float, negative, or intensity-like within the ``reviewed`` pixels when given)."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        raise DeepsegError(
            f"{name} are floating point ({labels.dtype}); pass integer labels "
            "(a Labels layer, or labels.astype(int) if the values are whole numbers)"
        )
    if labels.dtype.kind not in "iu":
        raise DeepsegError(f"{name} have dtype {labels.dtype}; pass an integer label image")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise DeepsegError(f"{name} contain negative values; labels must be 0 or positive integers")
    if reviewed is not None:  # only reviewed pixels count (a mask of another shape is refused later)
        labels_seen = np.where(reviewed, labels, 0) if np.shape(reviewed) == labels.shape else labels[:0]
    if looks_like_intensity(labels if reviewed is None else labels_seen):
        raise DeepsegError(
            f"{name} look like an intensity image, not labels (their values form thousands of tiny regions); "
            "give the label image (0 = background, one id per object or class)"
        )
    return labels


def boundary_targets(objects: np.ndarray, width: int = 1) -> np.ndarray:
    """Instance labels (H, W) -> uint8 classes 0 background, 1 interior, 2 boundary (the inner
    rim, ``width`` pixels; narrower on objects that would otherwise lose all interior)."""
    target = (objects > 0).astype(np.uint8)
    inner = objects  # the objects left inside the rings so far (each ring makes a new array)
    for ring in range(width):
        rim = find_boundaries(inner, mode="inner") & (inner > 0)
        if ring:  # keep this ring off objects it would leave without interior
            left = np.bincount(inner[~rim].ravel(), minlength=int(inner.max()) + 1)
            rim &= left[inner] > 0
        target[rim] = 2
        inner = np.where(rim, 0, inner)
    return target


def distance_target(objects: np.ndarray) -> np.ndarray:
    """(H, W) instance labels -> float32 (H, W) distance targets: each object pixel's Euclidean
    distance to the nearest pixel outside its object (another object, background or the image's
    edge), divided by the object's largest, so 1 at its centre and near 0 at its rim, whatever
    its size; 0 on background. Touching objects meet in a valley of low values.
    """
    from scipy import ndimage as ndi

    out = np.zeros(objects.shape, np.float32)
    for i, box in enumerate(ndi.find_objects(objects), start=1):
        if box is None:
            continue
        inside = objects[box] == i
        d = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        top = float(d.max())
        if top > 0:
            out[box][inside] = d[inside] / top
    return out


def contact_mask(objects: np.ndarray, reach: int = CONTACT_REACH) -> np.ndarray:
    """(H, W) instance labels -> bool mask of the pixels (object or background) that have two
    different objects within ``reach`` pixels (a square window): where objects touch or nearly
    do, the pixels that decide whether two nuclei come out as one (U-Net's border weights,
    Ronneberger et al. 2015)."""
    from scipy import ndimage as ndi

    size = 2 * reach + 1
    top = ndi.maximum_filter(objects, size=size)
    none = np.iinfo(objects.dtype).max if objects.dtype.kind in "iu" else np.inf
    low = ndi.minimum_filter(np.where(objects > 0, objects, none), size=size)
    return (top > 0) & (low != none) & (top != low)


def make_target(
    labels: np.ndarray,
    *,
    task: str,
    sparse: bool = False,
    background_label: int = 1,
    reviewed: np.ndarray | None = None,
    num_classes: int | None = None,
    name: str = "labels",
    boundary_width: int = 1,
) -> np.ndarray:
    """Convert a 2D label image (H, W) to an int16 target (H, W) with ``IGNORE`` = -1.

    Args:
        labels: integer labels (see the module docstring for their meaning).
        task: ``"instance-boundary"`` or ``"semantic"``.
        sparse: 0 means "not annotated" (ignored) instead of background.
        background_label: in sparse mode, the value painted on background.
        reviewed: optional bool mask (H, W); False pixels are ignored.
        num_classes: for semantic targets, the model's K (classes >= K are an error).
        name: how error messages call this label image.
        boundary_width: instance-boundary task: the rim's width in pixels (the model's).
    """
    labels = check_labels(labels, name, reviewed)
    if task == INSTANCE_BOUNDARY:
        target = _instance_target(labels, sparse, background_label, boundary_width)
    elif task == "semantic":
        target = _semantic_target(labels, sparse, background_label, num_classes, name)
    else:
        raise DeepsegError(f"unknown task {task!r}; use 'instance-boundary' or 'semantic'")
    if reviewed is not None:
        reviewed = np.asarray(reviewed)
        if reviewed.shape != labels.shape:
            raise DeepsegError(
                f"reviewed mask of {name} has shape {reviewed.shape}, labels {labels.shape}; "
                "pass a mask of the labels' shape"
            )
        target[~reviewed.astype(bool)] = IGNORE
    return target


def _instance_target(labels: np.ndarray, sparse: bool, background_label: int, width: int) -> np.ndarray:
    if not sparse:
        return boundary_targets(labels, width).astype(np.int16)
    objects = np.where(labels == background_label, 0, labels)
    target = boundary_targets(objects, width).astype(np.int16)
    target[labels == 0] = IGNORE
    return target


def _semantic_target(
    labels: np.ndarray, sparse: bool, background_label: int, num_classes: int | None, name: str
) -> np.ndarray:
    if sparse and background_label != 1:
        raise DeepsegError(
            "background_label applies to instance labels only; sparse semantic labels use "
            "1 = background, 2 = class 1, ... (0 = not annotated)"
        )
    top = int(labels.max()) if labels.size else 0
    target = labels.astype(np.int16) - 1 if sparse else labels.astype(np.int16)
    classes = top - 1 if sparse else top
    if num_classes is not None and classes >= num_classes:
        raise DeepsegError(
            f"{name} contain class {classes} but the model has {num_classes} classes; "
            "pass class_names for every class to grow the model's head"
        )
    return target


def class_counts(targets: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Annotated pixels per class over all targets (int64, shape (K,))."""
    counts = np.zeros(num_classes, np.int64)
    for t in targets:
        valid = t[t >= 0]
        counts += np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
    return counts


def check_annotations(counts: np.ndarray, class_names: list[str]) -> None:
    """Raise a one-line DeepsegError when nothing, or only one class, is annotated."""
    if counts.sum() == 0:
        raise DeepsegError(
            "the labels have no annotated pixels; paint some objects and (in sparse mode) background"
        )
    present = np.flatnonzero(counts)
    if len(present) < 2:
        only = class_names[present[0]] if present[0] < len(class_names) else str(present[0])
        raise DeepsegError(
            f"only one class ({only!r}) is annotated; paint at least one other class "
            "(in sparse mode background is its own label)"
        )
