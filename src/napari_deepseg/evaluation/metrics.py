"""Segmentation metrics: foreground and per-class IoU/Dice, instance matching and DSB average precision.

Conventions (all arrays are label images of identical shape, any dimensionality, integer dtype):

- Instance labels: 0 = background, every other value is one object (ids need not be sequential).
- Semantic maps: 0 = background, 1..K-1 = classes.
- Instance AP at an IoU threshold ``t`` is the Data Science Bowl 2018 definition
  ``AP = TP / (TP + FP + FN)``, where predicted and true objects are matched one to one by an
  optimal assignment (``scipy.optimize.linear_sum_assignment``) and a matched pair counts as a true
  positive only when its IoU is ``>= t``. The DSB "mean AP" is the mean of AP over the thresholds
  0.5, 0.55, ..., 0.95.
- Pooling over images sums TP, FP and FN (or pixel counts) over the images and then takes the ratio;
  it differs from the mean of per-image values, which weights every image equally.
- Empty denominators: when both pred and truth are empty, IoU, Dice, AP, precision and recall are
  1.0 (nothing to find, nothing wrongly found). When only one side is empty they are 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._checks import looks_like_intensity
from ..errors import DeepsegError

#: IoU thresholds of the DSB 2018 score: 0.5, 0.55, ..., 0.95.
DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _ratio(num: float, den: float, empty: float = 1.0) -> float:
    """``num / den``, or ``empty`` when ``den`` is zero."""
    return float(num) / float(den) if den else float(empty)


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two label images (same shape, integer or bool, non-negative) and return them."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise DeepsegError(
            f"prediction shape {pred.shape} differs from ground-truth shape {truth.shape}; "
            "compare label images of the same size"
        )
    for name, arr in (("prediction", pred), ("ground truth", truth)):
        if arr.dtype.kind not in "biu":
            raise DeepsegError(f"{name} has dtype {arr.dtype}; pass an integer label image (0 = background)")
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise DeepsegError(f"{name} has negative labels; labels must be 0 (background) or positive")
        if looks_like_intensity(arr):
            raise DeepsegError(
                f"{name} looks like an intensity image, not labels (its values form thousands of tiny "
                "regions); pass the label image (0 = background, one id per object)"
            )
    return pred, truth


# --------------------------------------------------------------------------- instance matching


@dataclass(frozen=True)
class OverlapTable:
    """Sparse overlaps between the objects of a prediction and a ground truth.

    ``true_ids``/``pred_ids``: the object ids (sorted, background excluded); ``true_area``/``pred_area``:
    their pixel counts; ``rows``/``cols``/``intersection``: one entry per overlapping pair, indexing
    ``true_ids`` and ``pred_ids``; ``iou``: the IoU of each such pair.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    intersection: np.ndarray
    iou: np.ndarray

    def dense_iou(self) -> np.ndarray:
        """The full IoU matrix, shape ``(len(true_ids), len(pred_ids))`` (float64)."""
        out = np.zeros((len(self.true_ids), len(self.pred_ids)))
        out[self.rows, self.cols] = self.iou
        return out


def _ids_and_areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object ids (no 0), their areas, and each pixel's index into ids (-1 for background)."""
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    if ids.size and ids[0] == 0:
        return ids[1:], counts[1:], inverse - 1
    return ids, counts, inverse


def overlap_table(pred: np.ndarray, truth: np.ndarray) -> OverlapTable:
    """Contingency table of two label images, computed in one pass (no per-object loops).

    Args:
        pred, truth: label images of identical shape (any dimensionality), 0 = background.
    """
    pred, truth = _check_pair(pred, truth)
    t_ids, t_area, t_idx = _ids_and_areas(truth)
    p_ids, p_area, p_idx = _ids_and_areas(pred)
    both = (t_idx >= 0) & (p_idx >= 0)
    key = t_idx[both].astype(np.int64) * max(len(p_ids), 1) + p_idx[both]
    pairs, inter = np.unique(key, return_counts=True)
    rows, cols = np.divmod(pairs, max(len(p_ids), 1))
    union = t_area[rows] + p_area[cols] - inter
    return OverlapTable(t_ids, p_ids, t_area, p_area, rows, cols, inter, inter / union)


def _count_matches(table: OverlapTable, threshold: float) -> int:
    """Number of one-to-one pairs with IoU >= threshold in an optimal assignment.

    The assignment maximises the number of such pairs first and their summed IoU second.
    """
    keep = table.iou >= threshold
    if not keep.any():
        return 0
    rows, r = np.unique(table.rows[keep], return_inverse=True)
    cols, c = np.unique(table.cols[keep], return_inverse=True)
    if len(rows) == keep.sum() and len(cols) == keep.sum():
        return int(keep.sum())  # no object has two candidates: the matching is trivial
    weight = np.zeros((len(rows), len(cols)))
    # 1 per match dominates; the IoU term (< 1 in total) breaks ties towards higher IoU
    weight[r, c] = 1.0 + table.iou[keep] / (min(weight.shape) + 1)
    ri, ci = linear_sum_assignment(weight, maximize=True)
    return int((weight[ri, ci] > 0).sum())


@dataclass
class InstanceScores:
    """Instance-matching counts and scores at several IoU thresholds.

    ``tp``, ``fp``, ``fn`` are integer arrays aligned with ``thresholds``. ``n_true``/``n_pred``
    are object counts. Scores are derived properties, so pooled scores stay exact.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_true: int
    n_pred: int
    name: str = field(default="", compare=False)

    @property
    def ap(self) -> np.ndarray:
        """DSB average precision ``TP / (TP + FP + FN)`` per threshold."""
        return np.array([_ratio(t, t + p + n) for t, p, n in zip(self.tp, self.fp, self.fn)])

    @property
    def mean_ap(self) -> float:
        """Mean of ``ap`` over the thresholds (the DSB 2018 score with the default thresholds)."""
        return float(np.mean(self.ap))

    @property
    def precision(self) -> np.ndarray:
        """``TP / (TP + FP)`` per threshold (1.0 when both sides are empty, else 0.0 if no preds)."""
        empty = 1.0 if self.n_true == 0 else 0.0
        return np.array([_ratio(t, t + p, empty) for t, p in zip(self.tp, self.fp)])

    @property
    def recall(self) -> np.ndarray:
        """``TP / (TP + FN)`` per threshold (1.0 when both sides are empty, else 0.0 if no truth)."""
        empty = 1.0 if self.n_pred == 0 else 0.0
        return np.array([_ratio(t, t + n, empty) for t, n in zip(self.tp, self.fn)])

    @property
    def f1(self) -> np.ndarray:
        """``2 TP / (2 TP + FP + FN)`` per threshold."""
        return np.array([_ratio(2 * t, 2 * t + p + n) for t, p, n in zip(self.tp, self.fp, self.fn)])

    def at(self, threshold: float, score: str = "ap") -> float:
        """One score (``ap``, ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn``) at a threshold."""
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold))
        if not hits.size:
            raise DeepsegError(
                f"threshold {threshold} was not evaluated; choose one of {list(self.thresholds)}"
            )
        return float(getattr(self, score)[hits[0]])

    @classmethod
    def pooled(cls, scores: Iterable[InstanceScores], name: str = "pooled") -> InstanceScores:
        """Sum TP, FP, FN and object counts over images (all scored at the same thresholds)."""
        return pool_scores(scores, name=name)

    def to_dict(self) -> dict:
        """JSON-ready summary: counts and scores per threshold plus the mean AP."""
        return {
            "n_true": int(self.n_true),
            "n_pred": int(self.n_pred),
            "thresholds": [float(t) for t in self.thresholds],
            "tp": [int(v) for v in self.tp],
            "fp": [int(v) for v in self.fp],
            "fn": [int(v) for v in self.fn],
            "ap": [float(v) for v in self.ap],
            "precision": [float(v) for v in self.precision],
            "recall": [float(v) for v in self.recall],
            "f1": [float(v) for v in self.f1],
            "mean_ap": self.mean_ap,
        }


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    thr = np.asarray(thresholds, dtype=float).ravel()
    if not thr.size or np.any((thr <= 0) | (thr > 1)):
        raise DeepsegError(f"IoU thresholds must be in (0, 1], got {list(thr)}")
    return thr


def match_instances(
    pred: np.ndarray,
    truth: np.ndarray,
    thresholds: Sequence[float] = DSB_THRESHOLDS,
    *,
    name: str = "",
) -> InstanceScores:
    """Match predicted to true objects one to one and count TP/FP/FN at each IoU threshold.

    Args:
        pred, truth: instance label images of identical shape (2D ``(Y, X)``, 3D ``(Z, Y, X)`` or
            more; objects are compared voxel-wise), 0 = background.
        thresholds: IoU thresholds in (0, 1]; default the DSB 0.5..0.95 in steps of 0.05.
        name: optional label stored on the result (e.g. the image name).

    Returns:
        ``InstanceScores``; ``.ap``, ``.mean_ap``, ``.precision``, ``.recall`` give the scores.
    """
    thr = _check_thresholds(thresholds)
    table = overlap_table(pred, truth)
    n_true, n_pred = len(table.true_ids), len(table.pred_ids)
    tp = np.array([_count_matches(table, t) for t in thr], dtype=np.int64)
    return InstanceScores(thr, tp, n_pred - tp, n_true - tp, n_true, n_pred, name=name)


def pool_scores(scores: Iterable[InstanceScores], name: str = "pooled") -> InstanceScores:
    """Pool instance scores over images: sum TP, FP, FN, then the ratios of the sums."""
    scores = list(scores)
    if not scores:
        raise DeepsegError("no scores to pool; evaluate at least one image first")
    thr = scores[0].thresholds
    if any(len(s.thresholds) != len(thr) or not np.allclose(s.thresholds, thr) for s in scores):
        raise DeepsegError("cannot pool scores computed at different IoU thresholds")
    return InstanceScores(
        thr.copy(),
        np.sum([s.tp for s in scores], axis=0),
        np.sum([s.fp for s in scores], axis=0),
        np.sum([s.fn for s in scores], axis=0),
        sum(s.n_true for s in scores),
        sum(s.n_pred for s in scores),
        name=name,
    )


# --------------------------------------------------------------------------- pixel scores


def _pixel_scores(tp: int, fp: int, fn: int) -> dict:
    """IoU and Dice from pixel counts (1.0 when pred and truth are both empty)."""
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
    }


def foreground_scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Foreground (label > 0) IoU and Dice plus the pixel counts ``tp``, ``fp``, ``fn``.

    Works on semantic maps and instance labels alike (any shape, identical for both).
    """
    pred, truth = _check_pair(pred, truth)
    p, t = pred > 0, truth > 0
    tp = int(np.count_nonzero(p & t))
    return _pixel_scores(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(t)) - tp)


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 pixel counts, rows = true class, columns = predicted."""
    pred, truth = _check_pair(pred, truth)
    top = max(int(pred.max(initial=0)), int(truth.max(initial=0)))
    if top >= num_classes:
        raise DeepsegError(f"label {top} found but num_classes={num_classes}; pass num_classes > {top}")
    flat = truth.ravel().astype(np.int64) * num_classes + pred.ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict:
    """Per-class and foreground scores from a confusion matrix (see ``semantic_scores``)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    per_class = {}
    for k in range(cm.shape[0]):
        present = tp[k] + fp[k] + fn[k] > 0
        per_class[k] = _pixel_scores(tp[k], fp[k], fn[k]) if present else None
    fg_tp = int(cm[1:, 1:].sum())  # foreground vs background, whatever the class
    fg = _pixel_scores(fg_tp, int(cm[0, 1:].sum()), int(cm[1:, 0].sum()))
    fg_classes = [per_class[k]["iou"] for k in range(1, cm.shape[0]) if per_class[k] is not None]
    return {
        "foreground_iou": fg["iou"],
        "foreground_dice": fg["dice"],
        "pixel_accuracy": _ratio(int(tp.sum()), int(cm.sum())),
        "mean_iou": float(np.mean(fg_classes)) if fg_classes else None,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def semantic_scores(pred: np.ndarray, truth: np.ndarray, num_classes: int | None = None) -> dict:
    """Pixel scores of a semantic map against its ground truth.

    Args:
        pred, truth: class maps of identical shape, 0 = background, 1..K-1 = classes.
        num_classes: K; default ``max(pred.max(), truth.max()) + 1`` (at least 2).

    Returns:
        dict with ``foreground_iou``, ``foreground_dice`` (label > 0 vs 0), ``pixel_accuracy``,
        ``mean_iou`` (mean IoU over foreground classes present in pred or truth, ``None`` if none),
        ``per_class`` ``{k: {"iou", "dice", "tp", "fp", "fn"} or None}`` (``None``: class absent
        from both) and ``confusion`` (K x K nested list, rows = truth). Pool several images with
        ``pool_semantic``.
    """
    pred, truth = _check_pair(pred, truth)
    if num_classes is None:
        num_classes = max(int(pred.max(initial=0)), int(truth.max(initial=0)), 1) + 1
    return scores_from_confusion(confusion_matrix(pred, truth, num_classes))


def pool_semantic(results: Iterable[dict]) -> dict:
    """Pool ``semantic_scores`` results over images by summing their confusion matrices."""
    mats = [np.asarray(r["confusion"], dtype=np.int64) for r in results]
    if not mats:
        raise DeepsegError("no scores to pool; evaluate at least one image first")
    k = max(m.shape[0] for m in mats)
    total = np.zeros((k, k), dtype=np.int64)
    for m in mats:
        total[: m.shape[0], : m.shape[1]] += m
    return scores_from_confusion(total)


def pool_foreground(results: Iterable[dict]) -> dict:
    """Pool ``foreground_scores`` results over images by summing their pixel counts."""
    results = list(results)
    if not results:
        raise DeepsegError("no scores to pool; evaluate at least one image first")
    return _pixel_scores(*(sum(r[k] for r in results) for k in ("tp", "fp", "fn")))
