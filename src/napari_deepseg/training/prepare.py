"""Checked, converted training data: targets, validation split, padded regions, class counts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from torch import nn

from ..errors import DeepsegError
from ..inference.inputs import normalize_plane, to_model_input
from ..inference.scale import median_diameter, rescale_pair, resize_labels, scale_factor
from ..models import contract_of, model_meta
from ..models.modelfile import INSTANCE_BOUNDARY
from .data import Region, TrainingPair, as_pairs, draw_shares, pad_region, split_validation
from .labels import (
    CONTACT,
    EMPHASIS,
    IGNORE,
    INSTANCE_CLASSES,
    check_annotations,
    check_labels,
    class_counts,
    contact_mask,
    distance_target,
    make_target,
)


@dataclass
class Targets:
    """Pairs (2D) with their int16 targets; ``val`` the same for validation pairs (may be empty).

    ``scales``: the factor each pair (train, then val) was resampled by (see :func:`rescale_pairs`).
    """

    pairs: list[TrainingPair]
    targets: list[np.ndarray]
    val_pairs: list[TrainingPair] = field(default_factory=list)
    val_targets: list[np.ndarray] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)


@dataclass
class TrainingData:
    """Everything the loop samples from: regions (train/val), window sizes and bookkeeping."""

    train: list[Region]
    val: list[Region]
    in_size: int
    out_size: int
    counts: np.ndarray
    sources: list[str]
    val_sources: list[str] | str
    scales: list[float] = field(default_factory=list)
    replayed: int = 0
    replay_share: float = 0.0


def make_targets(
    pairs: Iterable[Any],
    val_pairs: Iterable[Any] | None,
    *,
    task: str,
    sparse: bool,
    background_label: int,
    axes: str | None = None,
    diameter: float | None = None,
    estimate: Callable[[np.ndarray], float | None] | None = None,
    boundary_width: int = 1,
    prefix: str = "pair",
) -> Targets:
    """Check pairs and turn their labels into targets (one-line DeepsegError on bad input).

    With ``diameter`` (the model's training object diameter) each pair is first resampled so
    its objects have that size, as inference will resample the user's images
    (:func:`rescale_pairs`). ``boundary_width``: the instance rim's width (the model's);
    ``prefix``: how error messages name a pair (``"pair"`` -> "pair 3").
    """
    train = as_pairs(pairs, prefix, axes)
    val = as_pairs(val_pairs, "val pair", axes) if val_pairs is not None else []
    for pair in [*train, *val]:  # label-ness first: before any resampling measures objects
        check_pair_labels(pair)
    scales: list[float] = []
    if diameter is not None:
        dense = task == INSTANCE_BOUNDARY and not sparse
        train, s1 = rescale_pairs(train, diameter, dense, estimate)
        val, s2 = rescale_pairs(val, diameter, dense, estimate)
        scales = s1 + s2
    kw = dict(task=task, sparse=sparse, background_label=background_label, width=boundary_width)
    out = Targets(train, [_target(p, **kw) for p in train], scales=scales)
    out.val_pairs = val
    out.val_targets = [_target(p, **kw) for p in val]
    return out


def check_pair_labels(pair: TrainingPair) -> None:
    """One-line DeepsegError when a pair's labels are not labels: float, negative, intensity-like,
    or the image itself (the same file given as image and labels)."""
    image, labels = np.asarray(pair.image), np.asarray(pair.labels)
    if image.size == 0 or labels.size == 0:
        raise DeepsegError(
            f"{pair.name} is empty (image {image.shape}, labels {labels.shape}); give images with pixels"
        )
    check_labels(pair.labels, f"labels of {pair.name}", pair.reviewed)
    varied = labels.size > 0 and labels.min() != labels.max()  # blank pairs fail later, with their reason
    if varied and image.shape == labels.shape and np.array_equal(image, labels):
        raise DeepsegError(
            f"{pair.name}: the labels equal the image; give the label image (0 = background) as labels"
        )


def rescale_pairs(
    pairs: list[TrainingPair],
    diameter: float,
    dense_instances: bool,
    estimate: Callable[[np.ndarray], float | None] | None,
) -> tuple[list[TrainingPair], list[float]]:
    """Pairs resampled so that their objects' median diameter is ``diameter`` (the policy of
    :mod:`napari_deepseg.inference.scale`: clamped, dead band); returns them and the factors.

    An image's object diameter comes from its labels when they are dense instances, else from
    ``estimate(image)`` (the starting model's estimate, as inference makes it); without either
    the pair keeps its size.
    """
    out, scales = [], []
    for pair in pairs:
        d = median_diameter(pair.labels) if dense_instances else None
        if d is None and estimate is not None:
            d = estimate(pair.image)
        s = scale_factor(diameter, d) if d else 1.0
        scales.append(s)
        if s == 1.0:
            out.append(pair)
            continue
        colour = pair.image.ndim == pair.labels.ndim + 1
        image, labels = rescale_pair(pair.image, pair.labels, s, colour)
        reviewed = None if pair.reviewed is None else resize_labels(pair.reviewed, labels.shape)
        emphasis = None if pair.emphasis is None else resize_labels(pair.emphasis, labels.shape)
        out.append(TrainingPair(image, labels, reviewed, pair.name, pair.weight, emphasis))
    return out, scales


def _target(pair: TrainingPair, *, task: str, sparse: bool, background_label: int, width: int) -> np.ndarray:
    return make_target(
        pair.labels,
        task=task,
        sparse=sparse,
        background_label=background_label,
        reviewed=pair.reviewed,
        name=f"labels of {pair.name}",
        boundary_width=width,
    )


def mix_replay(data: TrainingData, replay: list[Region], share: float) -> TrainingData:
    """Append ``replay`` regions to ``data.train`` so that they give ``share`` of the patches.

    Within each group regions keep their relative shares (:func:`~.data.draw_shares`, the rule
    :class:`~.data.PatchSampler` draws by).
    """
    replay = [r for r in replay if len(r.centers)]
    if not replay or share <= 0:
        return data
    user = [r for r in data.train if len(r.centers)]
    mixed = [
        replace(r, weight=float(w * total))
        for group, total in ((user, 1.0 - share), (replay, share))
        for r, w in zip(group, draw_shares(group))
    ]
    data.train, data.replayed, data.replay_share = mixed, len(replay), share
    return data


def _emphasized(target: np.ndarray, emphasis: np.ndarray | None) -> np.ndarray:
    """``target`` with ``EMPHASIS`` added on corrected pixels (dilated by one pixel, so the rim of
    a corrected object counts too); unannotated pixels stay ``IGNORE``."""
    if emphasis is None or not emphasis.any():
        return target
    return _marked(target, ndi.binary_dilation(emphasis, iterations=1), EMPHASIS)


def _with_contacts(target: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``target`` with ``CONTACT`` added on annotated pixels between two objects of ``labels``."""
    return _marked(target, contact_mask(np.asarray(labels)), CONTACT)


def _marked(target: np.ndarray, mask: np.ndarray, mark: int) -> np.ndarray:
    """``target`` (int16) with ``mark`` added where ``mask`` is set on annotated pixels."""
    mask = mask & (target >= 0)
    if not mask.any():
        return target
    out = target.astype(np.int16, copy=True)
    out[mask] += mark
    return out


def _distance(labels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distance targets of the objects the (unmarked) ``target`` annotates (interior or boundary
    pixels of ``labels``; in sparse mode the painted background is not an object)."""
    return distance_target(np.where(target >= 1, np.asarray(labels), 0))


def _val_labels(labels: np.ndarray, target: np.ndarray, instance_labels: bool) -> np.ndarray | None:
    """The region's instance labels when AP@0.5 can be scored on it (dense instances, every pixel
    annotated and reviewed), else None."""
    if not instance_labels or (target < 0).any():
        return None
    return np.asarray(labels).copy()


def needed_classes(task: str, targets: Targets, class_names: Sequence[str] | None) -> int:
    """Number of classes the labels (and ``class_names``) need."""
    if task == INSTANCE_BOUNDARY:
        return len(INSTANCE_CLASSES)
    top = max(int(t.max()) for t in [*targets.targets, *targets.val_targets])
    return max(top + 1, len(class_names or ()), 2)


def check_targets(targets: Targets, class_names: list[str]) -> np.ndarray:
    """Annotated pixels per class over the training pairs; raises when unusable."""
    counts = class_counts(targets.targets, len(class_names))
    check_annotations(counts, class_names)
    return counts


def window_sizes(model: nn.Module, patch_size: int) -> tuple[int, int]:
    """(input, output) window sizes for ``patch_size`` (the model contract's ``window_sizes``)."""
    return contract_of(model).window_sizes(patch_size)


def build_regions(
    model: nn.Module,
    targets: Targets,
    *,
    patch_size: int,
    val_fraction: float,
    channels: Sequence[int] | None = None,
    instance_labels: bool = False,
    contacts: bool = False,
    distance: bool = False,
) -> TrainingData:
    """Normalized model inputs and targets, padded for sampling; validation strips held out.

    ``instance_labels``: the labels are dense instances, so validation regions keep them (to
    score AP@0.5, see :mod:`.validation`) wherever every pixel of the region is annotated.
    ``contacts``: mark the training pixels between two objects (``CONTACT``, for
    ``contact_weight``; dense instance labels). ``distance``: give every region its distance
    targets (:func:`~.labels.distance_target` of the annotated objects), for a model with a
    distance output.
    """
    meta = model_meta(model)
    in_size, out_size = window_sizes(model, patch_size)
    margin = (in_size - out_size) // 2
    in_ch = model.deepseg_arch.in_channels
    train, val = [], []
    hold_out = not targets.val_pairs and val_fraction > 0
    for pair, target in zip(targets.pairs, targets.targets):
        x = normalize_plane(
            to_model_input(pair.image, in_ch, meta.channel_mode, channels),
            meta.normalization,
            f"training image {pair.name}",
        )
        target = target.copy()
        dist = _distance(pair.labels, target) if distance else None
        strip = split_validation(target, val_fraction) if hold_out else None
        if strip is not None:
            labels = _val_labels(pair.labels[strip], target[strip], instance_labels)
            region = pad_region(
                x[:, strip[0], strip[1]], target[strip].copy(), pair.name, margin, out_size, out_size,
                labels=labels, distance=None if dist is None else dist[strip],
            )  # fmt: skip
            val.append(region)
            target[strip] = IGNORE
        target = _emphasized(target, pair.emphasis)
        if contacts:
            target = _with_contacts(target, pair.labels)
        train.append(pad_region(x, target, pair.name, margin, out_size, weight=pair.weight, distance=dist))
    for pair, target in zip(targets.val_pairs, targets.val_targets):
        x = normalize_plane(
            to_model_input(pair.image, in_ch, meta.channel_mode, channels),
            meta.normalization,
            f"training image {pair.name}",
        )
        labels = _val_labels(pair.labels, target, instance_labels)
        dist = _distance(pair.labels, target) if distance else None
        val.append(pad_region(x, target, pair.name, margin, out_size, out_size, labels=labels, distance=dist))
    if not any(len(r.centers) for r in train):
        raise DeepsegError(
            "no annotated pixels left for training after holding out validation; lower val_fraction"
        )
    val = [r for r in val if len(r.centers)]
    val_sources: list[str] | str = [p.name for p in targets.val_pairs]
    if hold_out:
        val_sources = f"held-out strip: last {val_fraction:.0%} of the longer axis of each training image"
    return TrainingData(
        train, val, in_size, out_size, np.zeros(0), [p.name for p in targets.pairs], val_sources
    )
