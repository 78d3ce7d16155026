"""The seam relabelling of chunked OME-Zarr outputs works in row bands on the store's chunk rows."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from napari_deepseg.batch.seams import _row_bands


@pytest.mark.parametrize(
    ("y", "rows"), [(slice(0, 5461), 1024), (slice(5461, 10923), 1024), (slice(3, 10), 64)]
)
def test_row_bands_cover_the_rows_once_on_chunk_rows(y, rows):
    bands = _row_bands(y, rows)
    assert bands[0].start == y.start
    assert bands[-1].stop == y.stop
    assert all(a.stop == b.start for a, b in itertools.pairwise(bands))
    assert all(b.stop % rows == 0 for b in bands[:-1])  # inner edges on the store's chunk rows
    assert all(b.stop - b.start <= 1024 for b in bands)
    assert len(bands) >= (y.stop - y.start) // 1024


def test_chunks_taller_than_a_band_are_joined_and_relabelled_band_by_band(
    tmp_path, model_file, fake, monkeypatch
):
    """2048-row chunks over a store of 1024-row chunks: each is relabelled in two bands. An object
    cut by the chunk border is one object, and an object across the band edge (row 1024, inside
    one chunk) keeps one id."""
    from skimage.draw import disk

    from napari_deepseg.batch import seams
    from napari_deepseg.io import open_labels

    from .fakes import predict

    bands = []
    cut = seams._row_bands
    monkeypatch.setattr(seams, "_row_bands", lambda y, rows: bands.append(cut(y, rows)) or bands[-1])
    image = np.zeros((2400, 2200), np.uint8)
    across_chunks, across_bands = (2048, 300), (1024, 300)
    for c in (across_chunks, across_bands, (500, 300), (1500, 300)):
        image[disk(c, 25, shape=image.shape)] = 200
    np.save(tmp_path / "plane.npy", image)
    out = tmp_path / "out"
    summary = predict(
        [tmp_path / "plane.npy"], out, model=model_file, segment_fn=fake,
        zarr_threshold=1000, chunk_bytes=4 * 1024 * 1024, overlap=16,
    )  # fmt: skip
    assert summary.exit_code == 0
    labels = np.asarray(open_labels(out / "plane_labels.zarr")[0][:])
    for c in (across_chunks, across_bands):
        ids = np.unique(labels[disk(c, 25, shape=image.shape)])
        assert len(ids) == 1, (c, ids)
        assert ids[0] > 0
    assert len(np.unique(labels[labels > 0])) == 4
    marker = json.loads((out / "plane_labels.zarr" / "deepseg_complete.json").read_text())
    assert marker["joined_at_block_borders"] >= 1
    assert [len(b) for b in bands] == [2, 2, 1, 1]  # the 2048-row chunks went in two bands
