"""Small label images shared by tests."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk


def touching_discs() -> np.ndarray:
    """(40, 60) int32 labels: two discs of radius 10 whose outlines touch along a short chord."""
    labels = np.zeros((40, 60), np.int32)
    for i, cx in enumerate((18, 37), start=1):
        rr, cc = disk((20, cx), 10, shape=labels.shape)
        labels[rr, cc] = np.where(labels[rr, cc] == 0, i, labels[rr, cc])
    return labels
