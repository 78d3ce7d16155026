"""Colours of new split pieces that stand out from the image under them.

napari colours a label by its id; the ids a split gives its new pieces (the next free ones)
can land on a colour close to the image (a pink piece on H&E). :func:`standout_edit` renumbers
the new pieces of an :class:`~napari_deepseg.correction.Edit` to free ids whose colour is far
from the image's colour under the object and from the other pieces' colours.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from napari.layers import Image, Labels

from ..correction import Edit

CANDIDATES = 64  # free ids tried above the largest id


def image_colour(image: Image | None, index: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """The RGB colour (0-1) the image layer shows, on average, at the pixels ``index``."""
    if image is None or not len(index[0]):
        return None
    values = np.asarray(image.data[index], np.float64)
    if image.rgb:
        rgb = values[..., :3].mean(axis=0)
        return rgb / (255.0 if np.issubdtype(image.data.dtype, np.integer) else 1.0)
    lo, hi = image.contrast_limits
    level = float(np.clip((values.mean() - lo) / ((hi - lo) or 1.0), 0.0, 1.0))
    return np.asarray(image.colormap.map(np.array([level]))[0][:3], np.float64)


def _colour(labels: Labels, label_id: int) -> np.ndarray:
    return np.asarray(labels.get_color(int(label_id))[:3], np.float64)


def standout_ids(labels: Labels, background: np.ndarray, keep: int, count: int) -> list[int]:
    """``count`` free ids, each the candidate farthest (in RGB) from ``background`` and from
    the colours already taken (the kept piece ``keep``'s, then each chosen one)."""
    top = int(np.asarray(labels.data).max())
    limit = np.iinfo(labels.data.dtype).max if labels.data.dtype.kind in "ui" else 2**31 - 1
    free = [i for i in range(top + 1, min(top + 1 + CANDIDATES, limit + 1))]
    taken, chosen = [background, _colour(labels, keep)], []
    for _ in range(count):
        free = [i for i in free if i not in chosen]
        if not free:
            break
        best = max(free, key=lambda i: min(np.linalg.norm(_colour(labels, i) - c) for c in taken))
        chosen.append(best)
        taken.append(_colour(labels, best))
    return chosen


def standout_edit(edit: Edit, labels: Labels, image: Image | None) -> Edit:
    """``edit`` with its new pieces (all but the first, kept id) renumbered to standing-out ids."""
    added = [i for i in edit.new_ids if i not in edit.ids]
    if not edit.changed or not added:
        return edit
    background = image_colour(image, edit.indices)
    if background is None:
        return edit
    ids = standout_ids(labels, background, edit.new_ids[0], len(added))
    if len(ids) < len(added):
        return edit
    lut: dict[int, int] = dict(zip(added, ids))
    new = edit.new.copy()
    for old_id, new_id in lut.items():
        new[edit.new == old_id] = new_id
    new_ids = tuple(lut.get(i, i) for i in edit.new_ids)
    return dataclasses.replace(edit, new=new, new_ids=new_ids)


def recolour(layer: Labels, image: Any) -> Any:
    """A post-step for Correct's ``_apply``: the edit with standing-out piece colours."""
    return lambda edit: standout_edit(edit, layer, image)
