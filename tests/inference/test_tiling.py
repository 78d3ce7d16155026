"""Tile layout and blending: every pixel is covered and written exactly once, for any shape."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from napari_deepseg.inference import job, segment
from napari_deepseg.inference.tiling import StripAccumulator, TileGrid, ramp_weights, tile_starts


def _intensity_model() -> nn.Module:
    """A 1x1 conv whose 2 logits are (-x, x): class 1 wherever the normalized input is > 0."""
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1)
        conv.bias.zero_()
    return conv.eval()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    tile=st.integers(8, 48),
    overlap_frac=st.floats(0, 0.9),
    batch=st.integers(1, 5),
)
def test_every_pixel_written_once(monkeypatch, h, w, tile, overlap_frac, batch):
    overlap = int(overlap_frac * tile)
    writes = np.zeros((h, w), np.int32)
    original = job.Job._finalize_rows

    def counting(self, popped, index, keep_prob):
        first, sums, wsum = popped
        assert (wsum > 0).all()
        writes[first : first + sums.shape[1]] += 1
        original(self, popped, index, keep_prob)

    monkeypatch.setattr(job.Job, "_finalize_rows", counting)
    image = np.random.default_rng(h * w).normal(size=(h, w)).astype(np.float32)
    norm = {"method": "none"}
    model = _intensity_model()
    res = _segment_raw(image, model, norm, tile=tile, overlap=overlap, batch_size=batch)
    assert res.classes.shape == (h, w)
    assert (writes == 1).all()
    np.testing.assert_array_equal(res.classes, (image > 0).astype(np.uint8))


def _segment_raw(image, model, norm, **kw):
    """segment() with a fixed normalization for a plain module (no model file metadata)."""
    orig = job.check_normalization
    job.check_normalization = lambda spec, c: orig(norm, c)
    try:
        return segment(image, model, device="cpu", precision="fp32", **kw)
    finally:
        job.check_normalization = orig


@given(n=st.integers(1, 500), tile=st.integers(1, 200), overlap=st.integers(0, 199))
def test_tile_starts_cover_with_overlap(n, tile, overlap):
    starts = tile_starts(n, tile, overlap)
    t = min(tile, n)
    assert starts[0] == 0
    assert starts[-1] + t == n
    gaps = np.diff(starts)
    assert (gaps >= 1).all()
    assert (t - gaps >= min(overlap, t - 1)).all()


def test_weights_sum_to_one_in_overlaps():
    starts = tile_starts(300, 100, 30)
    weights = ramp_weights(starts, 100, 300)
    total = np.zeros(300)
    for s, w in zip(starts, weights):
        total[s : s + 100] += w
    np.testing.assert_allclose(total, 1.0, atol=2e-3)  # ramps floor at MIN_WEIGHT


def test_single_tile_weight_is_one():
    (w,) = ramp_weights([0], 64, 64)
    assert (w == 1).all()


def test_accumulator_memory_is_a_strip():
    grid = TileGrid.plan(2000, 300, 100, 20)
    acc = StripAccumulator(3, 300)
    wy, wx = grid.weights()
    rows = 0
    peak = 0
    tiles = grid.tiles()
    for i, (y, x) in enumerate(tiles):
        acc.add(np.ones((3, 100, 100), np.float32), y, x, wy[y], wx[x])
        peak = max(peak, acc.wsum.shape[0])
        until = tiles[i + 1][0] if i + 1 < len(tiles) else 2000
        if until > acc.top:
            first, sums, _ = acc.pop_final(until)
            assert first == rows
            rows += sums.shape[1]
    assert rows == 2000
    assert peak == 100


def test_valid_padding_model_uses_margin():
    from napari_deepseg.models import build_model

    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2, padding="valid").eval()
    grid = TileGrid.plan(50, 70, 32, 8, model)
    assert grid.margin == model.output_margin > 0
    assert grid.in_h == model.valid_input_size(grid.in_h)
    image = np.random.default_rng(0).random((50, 70)).astype(np.float32)
    res = segment(image, model, tile=32, overlap=8, device="cpu", precision="fp32")
    assert res.classes.shape == (50, 70)
    # one big tile: identical to the untiled valid pass over the reflect-padded image
    m = model.output_margin
    lo, hi = np.percentile(image, [1, 99.8])
    x = ((image - lo) / (hi - lo)).astype(np.float32)
    n = model.valid_input_size(max(image.shape) + 2 * m)
    padded = np.pad(x, ((m, n - 50 - m), (m, n - 70 - m)), mode="reflect")
    with torch.inference_mode():
        full = model(torch.from_numpy(padded)[None, None])[0].argmax(0).numpy()[:50, :70]
    one = segment(image, model, tile=128, device="cpu", precision="fp32").classes
    assert (one == full).mean() > 0.999


def test_default_tiles_are_sized_to_the_plane():
    from napari_deepseg.inference.tiling import fit_tile, tile_starts

    assert fit_tile(2048, 2048, 512, 64) == 736  # 3 x 3 tiles instead of 5 x 5
    assert fit_tile(200, 300, 512, 64) == 512  # one tile covers it: nothing to gain
    for n in (300, 700, 1000, 1500, 2048, 3000, 5000):
        t = fit_tile(n, n, 512, 64)
        assert 512 <= t <= 768
        assert t % 32 == 0
        work = len(tile_starts(n, t, 64)) ** 2 * min(t, n) ** 2
        assert work <= len(tile_starts(n, 512, 64)) ** 2 * min(512, n) ** 2


def test_an_explicit_tile_is_kept(tiny_unet):
    image = np.zeros((2048, 600), np.uint8)
    assert segment(image[:700], tiny_unet, tile=256, device="cpu").meta["tile"] == 256
    assert segment(image[:700], tiny_unet, device="cpu").meta["tile"] == 704
