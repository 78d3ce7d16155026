"""error_counts: what became of each true object."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_deepseg.evaluation.errors import error_counts, pooled
from tests._shapes import touching_discs


def test_each_lost_object_is_counted_once_by_its_cause():
    truth = touching_discs()
    assert error_counts(truth, truth) == {
        "true": 2,
        "matched": 2,
        "merged": 0,
        "split": 0,
        "missed": 0,
        "poor": 0,
    }
    merged = ndi.binary_dilation(truth > 0).astype(np.int32)  # one object over both (IoU < 0.5)
    assert error_counts(merged, truth)["merged"] == 2
    halves = truth.copy()
    cols = np.arange(truth.shape[1])[None, :]
    halves[(truth == 1) & (cols >= 14)] = 3  # disc 1 cut in three pieces, none half of it
    halves[(truth == 1) & (cols >= 22)] = 4
    counts = error_counts(halves, truth)
    assert counts["split"] == 1
    assert counts["matched"] == 1
    missed = np.where(truth == 2, 0, truth)
    assert error_counts(missed, truth)["missed"] == 1
    grown = np.where(truth == 1, 0, truth)
    yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
    grown[((yy - 20) ** 2 + (xx - 12) ** 2 <= 15**2) & (grown == 0)] = 1  # all of disc 1 and more
    counts = error_counts(grown, truth)
    assert counts["poor"] == 1
    assert counts["matched"] == 1
    assert pooled([error_counts(truth, truth)] * 3)["true"] == 6
