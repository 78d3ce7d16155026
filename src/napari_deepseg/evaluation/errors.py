"""Where instance errors come from: the true objects lost to merges, splits, misses and poor outlines.

A true object that no predicted object matches at IoU 0.5 is counted once, as the first of:

- **merged**: the predicted object covering most of it covers at least half of it and at least
  half of another true object too (two nuclei came out as one);
- **split**: two or more predicted objects lie mostly (at least half of each) inside it (one
  nucleus came out in pieces);
- **missed**: no predicted object covers half of it (not found);
- **poor**: found, but outlined with IoU under 0.5.

``pooled`` counts add up over images; ``matched`` and ``true`` give the rates.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .metrics import overlap_table

KINDS = ("merged", "split", "missed", "poor")


def error_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Counts of true objects (of label images ``pred`` and ``truth``, same shape, 0 =
    background) by what became of them: ``true``, ``matched`` (IoU >= 0.5) and the kinds of
    :data:`KINDS` (see the module docstring)."""
    t = overlap_table(pred, truth)
    n_true = len(t.true_ids)
    matched = np.zeros(n_true, bool)
    matched[t.rows[t.iou >= 0.5]] = True
    share_of_true = t.intersection / t.true_area[t.rows]  # of each pair: the part of the true object
    share_of_pred = t.intersection / t.pred_area[t.cols]
    halves = np.bincount(t.cols[share_of_true >= 0.5], minlength=len(t.pred_ids))  # true objects half-covered
    pieces = np.bincount(t.rows[share_of_pred >= 0.5], minlength=n_true)
    best = np.full(n_true, -1)
    best_share = np.zeros(n_true)
    for r, c, s in zip(t.rows, t.cols, share_of_true):
        if s > best_share[r]:
            best[r], best_share[r] = c, s
    counts = dict.fromkeys(KINDS, 0)
    for r in np.flatnonzero(~matched):
        if best[r] >= 0 and best_share[r] >= 0.5 and halves[best[r]] >= 2:
            counts["merged"] += 1
        elif pieces[r] >= 2:
            counts["split"] += 1
        elif best_share[r] < 0.5:
            counts["missed"] += 1
        else:
            counts["poor"] += 1
    return {"true": n_true, "matched": int(matched.sum()), **counts}


def pooled(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """The sum of several images' :func:`error_counts`."""
    total: dict[str, int] = {}
    for c in counts:
        for key, value in c.items():
            total[key] = total.get(key, 0) + int(value)
    return total
