"""What to correct next: per-pixel uncertainty and a ranking of the least certain places.

From the class probabilities a model already computes (no extra network passes):

- the **uncertainty map** (H, W) in [0, 1]: for instance-boundary models the larger of how close
  the foreground probability ``P(interior) + P(boundary)`` is to 0.5 (``1 - |2 P(fg) - 1|``) and
  how much of the foreground is not interior (``P(boundary)``: a nucleus whose interior never
  becomes confident is where seeds split or merge); for other models the margin between the
  two most likely classes (``1 - (p1 - p2)``);
- the **ranking**: every object (instance id), least certain first, then *possible misses*:
  connected regions outside all objects where the foreground probability is between 0.25 and
  0.75 (something the model half sees), least certain first. An instance model's object is
  scored by how weak its core is, ``1 - max P(interior)`` over its pixels (a nucleus the model
  never becomes sure of is where seeds merge or split, and where spurious objects come from);
  other models' objects by their mean uncertainty. Chosen on the DSB2018 selection split (carved
  from train) against the mean uncertainty, the interior boundary probability and the size
  deviation: it put 35% of the false positives in each image's top 10% of objects (random: 10%).
  Each entry has an id (objects) or 0 (misses), a kind, a score, the pixel count, the centroid
  and the bounding box, so a viewer can zoom to it and a CSV can list it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

#: foreground probabilities in this range, outside every object, are possible misses
MISS_RANGE = (0.25, 0.75)
CSV_FIELDS = ("rank", "kind", "id", "score", "pixels", "y", "x", "y0", "x0", "y1", "x1")


@dataclass
class Uncertain:
    """One place to check: an object (``id`` > 0) or a possible miss (``id`` 0)."""

    rank: int
    kind: str  # "object" or "possible miss"
    id: int
    score: float
    pixels: int
    y: float
    x: float
    y0: int
    x0: int
    y1: int
    x1: int


def uncertainty_map(prob: np.ndarray, instance_boundary: bool = True) -> np.ndarray:
    """(K, H, W) probabilities -> (H, W) float32 uncertainty in [0, 1] (see the module docstring)."""
    prob = np.asarray(prob, dtype=np.float32)
    if instance_boundary and prob.shape[0] >= 3:
        fg = prob[1] + prob[2]
        fg_unc = 1.0 - np.abs(2.0 * fg - 1.0)
        return np.clip(np.maximum(fg_unc, prob[2]), 0.0, 1.0).astype(np.float32)
    top2 = np.sort(prob, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def rank_uncertain(
    instances: np.ndarray, prob: np.ndarray, min_miss_pixels: int = 16, instance_boundary: bool = True
) -> list[Uncertain]:
    """Objects and possible misses of one (H, W) plane, least certain first (see the module
    docstring). ``instances``: (H, W) labels; ``prob``: (K, H, W) probabilities."""
    unc = uncertainty_map(prob, instance_boundary)
    boundary_model = instance_boundary and prob.shape[0] >= 3
    objects = _objects(instances, 1.0 - prob[1] if boundary_model else unc, weakest=boundary_model)
    fg = prob[1] + prob[2] if boundary_model else 1.0 - prob[0]
    misses = _misses(instances, fg, unc, min_miss_pixels)
    entries = sorted(objects, key=lambda e: -e.score) + sorted(misses, key=lambda e: -e.score)
    for rank, entry in enumerate(entries, start=1):
        entry.rank = rank
    return entries


def _objects(instances: np.ndarray, value: np.ndarray, weakest: bool) -> list[Uncertain]:
    """Objects scored by the minimum (``weakest``) or the mean of ``value`` over their pixels."""
    ids = np.unique(instances)
    ids = ids[ids > 0]
    if not len(ids):
        return []
    index = instances.astype(np.int64, copy=False)
    unc = value
    pixels = ndi.sum_labels(np.ones_like(unc), index, ids)
    scores = ndi.minimum(unc, index, ids) if weakest else ndi.mean(unc, index, ids)
    centres = ndi.center_of_mass(np.ones_like(unc), index, ids)
    boxes = ndi.find_objects(index)
    out = []
    for i, label in enumerate(ids.tolist()):
        box = boxes[label - 1]
        cy, cx = centres[i]
        out.append(
            Uncertain(
                0,
                "object",
                int(label),
                round(float(scores[i]), 4),
                int(pixels[i]),
                round(cy, 1),
                round(cx, 1),
                box[0].start,
                box[1].start,
                box[0].stop,
                box[1].stop,
            )
        )
    return out


def _misses(instances: np.ndarray, fg: np.ndarray, unc: np.ndarray, min_pixels: int) -> list[Uncertain]:
    lo, hi = MISS_RANGE
    mask = (fg > lo) & (fg < hi) & (instances == 0)
    regions, _n = ndi.label(mask)
    out = []
    for i, box in enumerate(ndi.find_objects(regions), start=1):
        inside = regions[box] == i
        count = int(inside.sum())
        if count < min_pixels:
            continue
        ys, xs = np.nonzero(inside)
        score = float(unc[box][inside].mean())
        out.append(
            Uncertain(
                0,
                "possible miss",
                0,
                round(score, 4),
                count,
                round(box[0].start + ys.mean(), 1),
                round(box[1].start + xs.mean(), 1),
                box[0].start,
                box[1].start,
                box[0].stop,
                box[1].stop,
            )
        )
    return out


def write_csv(
    path: str | os.PathLike, entries: list[Uncertain], plane: str = "", planes: list[str] | None = None
) -> Path:
    """Write the ranking as CSV (``CSV_FIELDS``, plus a ``plane`` column when ``plane`` or
    ``planes``, one per entry, is given), atomically."""
    from .._files import atomic_path

    path = Path(path)
    labels = planes if planes is not None else [plane] * len(entries) if plane else None
    fields = (*CSV_FIELDS, "plane") if labels is not None else CSV_FIELDS
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for i, entry in enumerate(entries):
            row = asdict(entry)
            if labels is not None:
                row["plane"] = labels[i]
            writer.writerow(row)
    return path


__all__ = ["Uncertain", "rank_uncertain", "uncertainty_map", "write_csv"]
