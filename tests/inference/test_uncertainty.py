"""What to correct next: the uncertainty map and the ranking of objects and possible misses."""

from __future__ import annotations

import csv

import numpy as np

from napari_deepseg.inference.uncertainty import rank_uncertain, uncertainty_map, write_csv


def _scene():
    """Three square objects; object 2's core is weak (max P(interior) 0.45); a half-seen blob."""
    instances = np.zeros((64, 96), np.int32)
    prob = np.zeros((3, 64, 96), np.float32)
    prob[0] = 1.0
    for label, (y, x), core in ((1, (8, 8), 0.95), (2, (8, 40), 0.45), (3, (8, 72), 0.9)):
        instances[y : y + 16, x : x + 16] = label
        prob[:, y : y + 16, x : x + 16] = np.array([0.02, core, 0.98 - core])[:, None, None]
    prob[:, 40:52, 40:56] = np.array([0.5, 0.3, 0.2])[:, None, None]  # P(fg) = 0.5, no object
    return instances, prob


def test_the_ambiguous_object_comes_first_then_possible_misses():
    instances, prob = _scene()
    entries = rank_uncertain(instances, prob)
    assert [(e.kind, e.id) for e in entries] == [
        ("object", 2), ("object", 3), ("object", 1), ("possible miss", 0),
    ]  # fmt: skip
    first, miss = entries[0], entries[-1]
    assert first.rank == 1
    assert first.score > 0.5
    assert (first.y0, first.x0, first.y1, first.x1) == (8, 40, 24, 56)
    assert (first.y, first.x) == (15.5, 47.5)
    assert first.pixels == 256
    assert miss.pixels == 12 * 16
    assert (miss.y0, miss.x0) == (40, 40)


def test_uncertainty_map_is_high_where_the_model_hesitates():
    _instances, prob = _scene()
    unc = uncertainty_map(prob)
    assert unc.shape == (64, 96)
    assert unc.dtype == np.float32
    assert unc[45, 45] > 0.9  # foreground at 0.5
    assert unc[60, 5] < 0.05  # sure background
    assert unc[15, 47] > unc[15, 15]  # weak core above a confident one


def test_csv_lists_the_ranking(tmp_path):
    instances, prob = _scene()
    path = write_csv(tmp_path / "img_uncertainty.csv", rank_uncertain(instances, prob), plane="z=0")
    rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == ["2", "3", "1", "0"]
    assert rows[0]["kind"] == "object"
    assert rows[0]["plane"] == "z=0"
    assert float(rows[0]["score"]) > float(rows[1]["score"])
