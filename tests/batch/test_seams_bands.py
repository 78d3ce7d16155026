"""The seam relabelling of chunked OME-Zarr outputs works in row bands on the store's chunk rows."""

from __future__ import annotations

import itertools

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
