"""Split by seeds on real merged clumps of histology nuclei (DSB2018 val, with ground truth).

Touching ground-truth nuclei (2 or 3 per clump) are merged into one object, a seed is placed at
each nucleus's centre (its innermost pixel), and the split must give back the nuclei: every piece
at least 10 % of the clump and close to its nucleus. Skipped when the data set is absent (set
DEEPSEG_DSB2018 to its folder; default ``../shared/data/dsb2018`` beside the repository).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from napari_deepseg.correction import split_label

DATA = Path(os.environ.get("DEEPSEG_DSB2018", Path(__file__).parents[3] / "shared" / "data" / "dsb2018"))
N_IMAGES = 4

pytestmark = pytest.mark.skipif(not (DATA / "index.json").is_file(), reason=f"DSB2018 not found at {DATA}")


def _clumps(mask: np.ndarray) -> list[np.ndarray]:
    """Ids of each group of 2-3 ground-truth nuclei that touch."""
    groups, _ = ndi.label(mask > 0)
    out = []
    for i, box in enumerate(ndi.find_objects(groups), 1):
        ids = np.unique(mask[box][groups[box] == i])
        if 2 <= len(ids[ids > 0]) <= 3:
            out.append(ids[ids > 0])
    return out


def _centre(mask: np.ndarray, label_id: int) -> tuple[int, int]:
    dist = ndi.distance_transform_edt(mask == label_id)
    return tuple(int(c) for c in np.unravel_index(np.argmax(dist), mask.shape))


def _cases():
    records = json.loads((DATA / "index.json").read_text())
    chosen = [r for r in records if r["kind"] == "histology" and r["split"] == "val"][:N_IMAGES]
    for record in chosen:
        image = tifffile.imread(DATA / "val" / "images" / f"{record['id']}.tif")
        truth = tifffile.imread(DATA / "val" / "masks" / f"{record['id']}.tif")
        for ids in _clumps(truth):
            merged = truth.copy()
            merged[np.isin(truth, ids)] = ids[0]
            yield image, truth, merged, ids, np.array([_centre(truth, i) for i in ids])


def _scores(truth, pieces, ids, seeds) -> tuple[list[float], list[float]]:
    """IoU of each seed's piece with its nucleus, and each piece's share of the clump."""
    area = np.isin(truth, ids).sum()
    ious, shares = [], []
    for seed, label_id in zip(seeds, ids):
        piece = pieces == pieces[tuple(seed)]
        nucleus = truth == label_id
        ious.append((piece & nucleus).sum() / (piece | nucleus).sum())
        shares.append(piece.sum() / area)
    return ious, shares


def _distance_only(merged, label_id, seeds):
    """The former split: watershed on the object's distance transform alone."""
    obj = merged == label_id
    markers = np.zeros(obj.shape, np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    return watershed(-ndi.distance_transform_edt(obj), markers, mask=obj)


def test_split_gives_back_merged_histology_nuclei():
    new_ious, old_ious, threes = [], [], 0
    for image, truth, merged, ids, seeds in _cases():
        pieces = merged.copy()
        edit = split_label(pieces, int(ids[0]), seeds, image=image)
        assert len(edit.new_ids) == len(ids)
        ious, shares = _scores(truth, pieces, ids, seeds)
        assert min(shares) >= 0.1  # every piece at least the set fraction of the clump
        assert len({int(pieces[tuple(s)]) for s in seeds}) == len(ids)  # one piece per seed
        new_ious += ious
        old_ious += _scores(truth, _distance_only(merged, int(ids[0]), seeds), ids, seeds)[0]
        threes += len(ids) == 3
    assert len(new_ious) >= 20
    assert threes >= 1  # clumps of three nuclei are among them
    assert np.mean(new_ious) >= 0.85
    assert np.mean(new_ious) > np.mean(old_ious) + 0.03  # better than the distance transform alone


def test_pieces_follow_the_boundary_probability_and_the_fraction_is_enforced():
    """A 10x30 bar with seeds at both ends: the cut goes where the model saw a boundary."""
    labels = np.zeros((12, 32), np.uint16)
    labels[1:11, 1:31] = 5
    boundary = np.zeros(labels.shape, np.float32)
    boundary[:, 9] = 1.0  # the model's boundary, off the bar's middle (x = 16)
    seeds = np.array([[5, 3], [5, 28]])
    edit = split_label(labels, 5, seeds, boundary=boundary, min_fraction=0.1)
    left = labels == labels[5, 3]
    assert 7 <= left[5].sum() <= 10  # the cut sits at the boundary line
    assert edit.new_ids == (5, int(labels[5, 28]))
    stuck = np.zeros((12, 32), np.uint16)
    stuck[1:11, 1:31] = 5
    with pytest.raises(ValueError, match="would get only"):
        split_label(stuck, 5, np.array([[5, 1], [5, 2]]), min_fraction=0.45)
    with pytest.raises(ValueError, match="not the labels'"):
        split_label(stuck, 5, seeds, image=np.zeros((4, 4)))
