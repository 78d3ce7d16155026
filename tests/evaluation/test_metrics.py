"""Metrics on hand-made label images whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deepseg.errors import DeepsegError
from napari_deepseg.evaluation import (
    DSB_THRESHOLDS,
    foreground_scores,
    match_instances,
    overlap_table,
    pool_foreground,
    pool_scores,
    pool_semantic,
    semantic_scores,
)


def square(shape=(20, 20), y=0, x=0, size=4, value=1, into=None):
    out = np.zeros(shape, np.uint16) if into is None else into
    out[y : y + size, x : x + size] = value
    return out


def test_thresholds_are_dsb():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_identical_labels_score_one_whatever_the_ids():
    truth = square(value=3, x=0)
    square(value=9, x=10, into=truth)
    pred = np.where(truth == 3, 5, np.where(truth == 9, 1, 0)).astype(np.int32)
    s = match_instances(pred, truth)
    assert s.mean_ap == 1.0
    assert list(s.tp) == [2] * 10
    assert not s.fp.any()
    assert not s.fn.any()
    assert foreground_scores(pred, truth)["iou"] == 1.0


def test_shifted_square_iou_known():
    # 4x4 squares shifted by one column: intersection 12, union 20, IoU 0.6
    truth = square()
    pred = square(x=1, value=7)
    table = overlap_table(pred, truth)
    assert table.iou.tolist() == [0.6]
    s = match_instances(pred, truth)
    # matched at 0.5, 0.55, 0.6; unmatched above: then 1 FP + 1 FN -> AP 0
    assert s.ap.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert s.mean_ap == pytest.approx(0.3)
    assert s.at(0.6) == 1.0
    assert s.at(0.65) == 0.0
    assert s.at(0.75, "fp") == 1
    assert s.at(0.75, "fn") == 1
    fg = foreground_scores(pred, truth)
    assert fg["iou"] == pytest.approx(0.6)
    assert fg["dice"] == pytest.approx(24 / 32)


def test_split_object_counts_one_tp_one_fp():
    truth = square(size=4)  # 16 px
    pred = np.zeros_like(truth)
    pred[0:4, 0:3] = 1  # 12 px: IoU 0.75 with truth
    pred[0:4, 3:4] = 2  # 4 px: IoU 0.25
    s = match_instances(pred, truth, thresholds=[0.5, 0.75, 0.8])
    assert s.tp.tolist() == [1, 1, 0]
    assert s.fp.tolist() == [1, 1, 2]
    assert s.fn.tolist() == [0, 0, 1]
    assert s.ap.tolist() == pytest.approx([1 / 2, 1 / 2, 0.0])
    assert s.precision.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert s.recall.tolist() == pytest.approx([1.0, 1.0, 0.0])
    # split objects leave the foreground perfect
    assert foreground_scores(pred, truth)["iou"] == 1.0


def test_extra_false_positive():
    truth = square(value=1)
    pred = square(value=1)
    square(y=10, x=10, value=2, into=pred)
    s = match_instances(pred, truth)
    assert (s.tp == 1).all()
    assert (s.fp == 1).all()
    assert (s.fn == 0).all()
    assert s.mean_ap == 0.5
    assert s.at(0.5, "precision") == 0.5
    assert s.at(0.5, "recall") == 1.0
    assert s.at(0.5, "f1") == pytest.approx(2 / 3)


def test_empty_prediction_and_empty_truth():
    truth = square()
    empty = np.zeros_like(truth)
    s = match_instances(empty, truth)
    assert (s.ap == 0).all()
    assert (s.fn == 1).all()
    assert s.n_pred == 0
    assert (s.precision == 0).all()
    assert (s.recall == 0).all()
    s = match_instances(truth, empty)
    assert (s.ap == 0).all()
    assert (s.fp == 1).all()
    s = match_instances(empty, empty)
    assert (s.ap == 1).all()
    assert s.mean_ap == 1.0
    assert (s.precision == 1).all()
    assert (s.recall == 1).all()
    assert foreground_scores(empty, truth)["iou"] == 0.0
    assert foreground_scores(empty, empty)["iou"] == 1.0


def test_optimal_assignment_beats_greedy():
    # truth A = [0, 10), B = [10, 20); pred X = [3, 13), Y = [0, 3).
    # IoU: X-A 7/13, X-B 3/17, Y-A 3/10. Greedy by best IoU takes X-A and then matches nothing else;
    # the optimal one-to-one assignment at t=0.1 is X-B and Y-A: two true positives.
    truth = np.zeros((1, 20), np.uint8)
    truth[0, 0:10] = 1
    truth[0, 10:20] = 2
    pred = np.zeros_like(truth)
    pred[0, 3:13] = 1
    pred[0, 0:3] = 2
    dense = overlap_table(pred, truth).dense_iou()  # rows: truth ids 1, 2; columns: pred ids 1, 2
    np.testing.assert_allclose(dense, [[7 / 13, 3 / 10], [3 / 17, 0.0]])
    s = match_instances(pred, truth, thresholds=[0.1, 0.5])
    assert s.tp.tolist() == [2, 1]
    assert s.fp.tolist() == [0, 1]
    assert s.fn.tolist() == [0, 1]


def test_ap_by_hand_on_several_objects():
    truth = np.zeros((30, 30), np.uint16)
    pred = np.zeros_like(truth)
    square(truth.shape, 0, 0, 4, 1, truth)
    square(truth.shape, 0, 0, 4, 1, pred)  # perfect: IoU 1
    square(truth.shape, 10, 0, 4, 2, truth)
    square(truth.shape, 10, 1, 4, 2, pred)  # IoU 0.6
    square(truth.shape, 20, 0, 4, 3, truth)  # missed
    square(truth.shape, 20, 20, 4, 3, pred)  # false positive
    s = match_instances(pred, truth)
    # t <= 0.6: TP 2, FP 1, FN 1 -> 0.5; t > 0.6: TP 1, FP 2, FN 2 -> 0.2
    expect = [0.5, 0.5, 0.5] + [0.2] * 7
    assert s.ap.tolist() == pytest.approx(expect)
    assert s.mean_ap == pytest.approx(np.mean(expect))


def test_pooling_sums_counts():
    truth1 = square(value=1)
    pred1 = square(value=1)  # 1 TP
    truth2 = square(value=1)
    square(y=10, x=10, value=2, into=truth2)
    pred2 = np.zeros_like(truth2)  # 2 FN
    s1, s2 = match_instances(pred1, truth1), match_instances(pred2, truth2)
    pooled = pool_scores([s1, s2])
    assert (pooled.tp == 1).all()
    assert (pooled.fn == 2).all()
    assert (pooled.fp == 0).all()
    assert pooled.at(0.5) == pytest.approx(1 / 3)  # not the mean of per-image APs (0.5)
    assert pooled.n_true == 3
    assert pooled.n_pred == 1
    assert pooled.to_dict()["mean_ap"] == pytest.approx(1 / 3)
    assert type(s1).pooled([s1, s2]).tp.tolist() == pooled.tp.tolist()
    fg = pool_foreground([foreground_scores(pred1, truth1), foreground_scores(pred2, truth2)])
    assert fg["iou"] == pytest.approx(16 / 48)


def test_pooling_refuses_mixed_thresholds():
    a = square()
    with pytest.raises(DeepsegError, match="thresholds"):
        pool_scores([match_instances(a, a), match_instances(a, a, thresholds=[0.5])])
    with pytest.raises(DeepsegError, match="no scores"):
        pool_scores([])


def test_semantic_per_class_scores():
    truth = np.array([[0, 1, 1, 2], [0, 1, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 2, 2], [1, 1, 2, 2]], np.uint8)
    r = semantic_scores(pred, truth)
    # class 1: tp 2, fp 1, fn 1 -> IoU 0.5, Dice 4/6; class 2: tp 3, fp 1, fn 0 -> 0.75, 6/7
    assert r["per_class"][1]["iou"] == pytest.approx(0.5)
    assert r["per_class"][1]["dice"] == pytest.approx(4 / 6)
    assert r["per_class"][2]["iou"] == pytest.approx(0.75)
    assert r["per_class"][2]["dice"] == pytest.approx(6 / 7)
    assert r["foreground_iou"] == pytest.approx(6 / 7)  # fg: tp 6, fp 1 (pred 1 on true 0), fn 0
    assert r["pixel_accuracy"] == pytest.approx(6 / 8)
    assert r["mean_iou"] == pytest.approx((0.5 + 0.75) / 2)
    r4 = semantic_scores(pred, truth, num_classes=4)
    assert r4["per_class"][3] is None
    pooled = pool_semantic([r, r4])
    assert pooled["per_class"][1]["tp"] == 4
    assert pooled["per_class"][2]["iou"] == pytest.approx(0.75)


def test_bad_input_is_one_line_error():
    a = square()
    with pytest.raises(DeepsegError, match="shape"):
        match_instances(a, a[:10])
    with pytest.raises(DeepsegError, match="dtype"):
        match_instances(a.astype(float), a)
    with pytest.raises(DeepsegError, match="negative"):
        foreground_scores(-a.astype(np.int16), a)
    with pytest.raises(DeepsegError, match="num_classes"):
        semantic_scores(a * 5, a, num_classes=3)
    with pytest.raises(DeepsegError, match="thresholds"):
        match_instances(a, a, thresholds=[0.0])
    with pytest.raises(DeepsegError, match="not evaluated"):
        match_instances(a, a).at(0.42)


def test_3d_and_large_ids():
    truth = np.zeros((3, 8, 8), np.uint32)
    truth[0:2, 0:4, 0:4] = 4_000_000_000
    pred = np.zeros_like(truth)
    pred[0:2, 0:4, 0:4] = 2
    pred[2, 6:, 6:] = 3_999_999_999
    s = match_instances(pred, truth)
    assert (s.tp == 1).all()
    assert (s.fp == 1).all()
    assert (s.fn == 0).all()


def test_synthetic_nuclei_self_match(nuclei_image):
    _, labels = nuclei_image
    s = match_instances(labels, labels)
    assert s.mean_ap == 1.0
    assert s.n_true == len(np.unique(labels)) - 1
