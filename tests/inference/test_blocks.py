"""Blockwise segmentation of planes larger than a block: same objects as whole-plane, bounded memory."""

from __future__ import annotations

import tracemalloc
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.segmentation import find_boundaries
from torch import nn

from napari_deepseg.inference import memory, segment, segment_iter
from napari_deepseg.inference.blocks import BlockLabels, BlockLayout, split_axis
from napari_deepseg.models import ModelMeta
from napari_deepseg.samples import synthetic_nuclei

CPU = {"device": "cpu", "precision": "fp32"}


class _Oracle(nn.Module):
    """Per-pixel 'network': normalized 0 -> background, 0.5 -> boundary, 1 -> interior.

    Its output depends on each pixel alone, so tiles and blocks cannot change the probabilities:
    any difference between blockwise and whole-plane instances comes from the blocks' seams.
    """

    def __init__(self, postprocess: dict | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)  # gives the engine a parameter (device, dtype)
        self.deepseg_arch = SimpleNamespace(name="oracle", in_channels=1, num_classes=3)
        self.deepseg_meta = ModelMeta(name="oracle", task="instance-boundary", postprocess=postprocess or {})
        self.deepseg_meta = self.deepseg_meta.complete(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centers = torch.tensor([0.0, 1.0, 0.5], dtype=x.dtype).view(1, 3, 1, 1)
        return -40.0 * (x - centers) ** 2 + 0.0 * self.conv.weight.sum()


def _plane(shape=(600, 600), seed=1) -> tuple[np.ndarray, np.ndarray]:
    """uint8 image painting interior 255, boundary 128, background 0 of synthetic nuclei labels."""
    _, truth = synthetic_nuclei(shape, n_nuclei=shape[0] * shape[1] // 500, seed=seed)
    rim = find_boundaries(truth, mode="inner") & (truth > 0)
    image = np.where(truth > 0, 255, 0).astype(np.uint8)
    image[rim] = 128
    return image, truth


def _same_objects(a: np.ndarray, b: np.ndarray, min_iou: float = 0.97) -> None:
    """Equal foreground and the same objects: a one-to-one match with IoU >= ``min_iou``.

    (Pixels where two touching objects tie in the watershed's relief may go either way: the
    flooding order of equal values depends on where a region starts.)
    """
    np.testing.assert_array_equal(a > 0, b > 0)
    fg = a > 0
    pairs, inter = np.unique(np.stack([a[fg], b[fg]]), axis=1, return_counts=True)
    area_a, area_b = np.bincount(a.ravel()), np.bincount(b.ravel())
    iou = inter / (area_a[pairs[0]] + area_b[pairs[1]] - inter)
    good = iou >= min_iou
    n_a, n_b = len(np.unique(a[fg])), len(np.unique(b[fg]))
    assert n_a == n_b == good.sum()
    assert len(np.unique(pairs[0][good])) == len(np.unique(pairs[1][good])) == n_a


@pytest.mark.parametrize("postprocess", [{}, {"seed_method": "maxima", "seed_sigma": 1.0, "min_size": 8}])
def test_blockwise_matches_whole_plane(postprocess):
    image, truth = _plane()
    model = _Oracle(postprocess)
    opts = {"outputs": ("classes", "instances"), "tile": 128, **CPU}
    whole = segment(image, model, block=4096, **opts)
    blocks = segment(image, model, block=128, **opts)
    assert whole.meta["block"] is None
    assert blocks.meta["block"] == 128
    layout = BlockLayout.plan(600, 600, 128, 64)
    assert layout.count == 16
    # objects cross the block borders (rows/columns 150, 300, 450)
    crossing = {int(i) for edge in (150, 300, 450) for i in np.unique(truth[edge - 1 : edge + 1]) if i}
    assert len(crossing) > 20
    np.testing.assert_array_equal(blocks.classes, whole.classes)
    _same_objects(blocks.instances, whole.instances)
    ids = np.unique(blocks.instances)
    np.testing.assert_array_equal(ids, np.arange(len(ids)))  # 0, 1..N consecutive
    assert len(ids) - 1 > 100


def test_blocks_run_the_planes_tile_grid_so_probabilities_are_whole_plane_ones():
    """A real convolutional network (context reaches across tiles): each block runs the tiles of
    the whole plane's grid that cover its region, so its probabilities, classes and objects are
    the whole-plane run's, not those of a grid of its own."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 3, 5, padding=2))
    net.deepseg_arch = SimpleNamespace(name="conv", in_channels=1, num_classes=3)
    net.deepseg_meta = ModelMeta(name="conv", task="instance-boundary").complete(3)
    image, _ = _plane((520, 470), seed=3)
    opts = {"outputs": ("classes", "probabilities"), "tile": 96, "overlap": 16, **CPU}
    whole = segment(image, net, block=4096, **opts)
    blocks = segment(image, net, block=128, **opts)
    assert blocks.meta["block"] == 128
    np.testing.assert_array_equal(blocks.probabilities, whole.probabilities)
    np.testing.assert_array_equal(blocks.classes, whole.classes)


def test_block_events_fill_the_plane():
    image, _ = _plane((400, 400), seed=2)
    events, empty_at_first = [], None
    gen = segment_iter(image, _Oracle(), block=128, outputs=("instances",), tile=128, **CPU)
    try:
        while True:
            events.append(next(gen))
            if events[-1].stage == "blocks" and empty_at_first is None:  # the view, before any block
                empty_at_first = not events[-1].info["instances"].any()
    except StopIteration as stop:
        result = stop.value
    first, *blocks = [e for e in events if e.stage == "blocks"]
    assert first.done == 0  # before any block: the outputs exist already (to be shown at once)
    assert first.info["instances"].shape == image.shape
    assert empty_at_first
    assert len(blocks) == blocks[0].total == 9
    seen = np.zeros(image.shape, bool)
    for e in blocks:
        seen[e.info["y"], e.info["x"]] = True
        assert e.info["instances"].shape == image.shape
    assert seen.all()
    assert result.instances.max() > 50


def test_seam_joining_joins_cut_objects_only():
    out = np.zeros((4, 8), np.uint32)
    labels = BlockLabels(out)
    layout = BlockLayout.plan(4, 8, 4, 1)
    left, right = list(layout.blocks())
    assert (left.read_x, right.read_x) == (slice(0, 5), slice(3, 8))
    # object 7 crosses the border at column 4, 3 ends at it; the right region (columns 3-7)
    # sees 7 as 5, and 3 as 8 touching its own 9
    labels.add(left, np.array([[0, 0, 7, 7, 7]] * 2 + [[0, 0, 0, 3, 0]] * 2))
    labels.add(right, np.array([[5, 5, 5, 0, 0]] * 2 + [[8, 9, 9, 9, 9]] * 2))
    assert labels.finish(offset=10) == 3  # 7 and 5 joined; 3 and 9 apart
    assert out[0, 2] == out[0, 4] != out[2, 3] != out[2, 4]
    assert set(np.unique(out)) == {0, 11, 12, 13}


def test_split_axis_has_no_thin_remainder():
    assert split_axis(2176, 2048, 64) == [(0, 2176)]
    assert split_axis(4224, 2048, 64) == [(0, 2112), (2112, 4224)]
    assert [b - a for a, b in split_axis(16384, 2048, 64)] == [2048] * 8


def test_block_size_follows_the_memory_cap():
    bpp = memory.block_bytes_per_pixel(3, True)
    sizes = [memory.block_size(mb * 2**20, bpp) for mb in (1, 40, 60, 100, 4000)]
    assert sizes == sorted(sizes)
    assert sizes[0] == memory.MIN_BLOCK
    assert sizes[-1] == memory.MAX_BLOCK
    for mb, side in zip((40, 60, 100), sizes[1:4]):
        assert (side + 2 * memory.DEFAULT_HALO) ** 2 * bpp <= mb * 2**20
        assert (side + memory.BLOCK_STEP + 2 * memory.DEFAULT_HALO) ** 2 * bpp > mb * 2**20


def test_segment_block_follows_max_memory():
    image, _ = _plane((1200, 1200), seed=3)
    bpp = memory.block_bytes_per_pixel(3, True)
    outputs = image.size * 5
    for side in (512, 768):
        room = memory.in_use() + outputs + (side + 2 * memory.DEFAULT_HALO) ** 2 * bpp + 1000
        res = segment(image, _Oracle(), max_memory=room, outputs=("instances",), tile=256, **CPU)
        assert res.meta["block"] == side


def test_large_plane_never_allocates_a_whole_plane_float_array():
    """Under a memory cap that leaves one block's work (the block in flight in the pipeline
    included), blocks and their tile cache stay under one whole-plane float32 array; the
    whole-plane path needs more than two."""
    image, _ = _plane((1536, 1536), seed=4)
    plane_float32 = image.size * 4
    held = image.size * (1 + 4)  # classes uint8 + instances uint32 (the outputs)
    model = _Oracle()
    segment(image, model, block=128, outputs=("instances",), tile=128, **CPU)  # warm caches

    def peak(block: int) -> int:
        work = (block + 2 * memory.DEFAULT_HALO) ** 2 * memory.block_bytes_per_pixel(3, True)
        cap = memory.in_use() + held + work  # no room beyond one block's work
        tracemalloc.start()
        segment(image, model, block=block, outputs=("instances",), tile=128, max_memory=cap, **CPU)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak - held

    assert peak(128) < plane_float32
    assert peak(4096) > 2 * plane_float32  # the whole-plane path does: the check can fail


@pytest.mark.parametrize(("diameter", "side"), [(8.0, 300), (32.0, 600)])  # run grid 2x, 0.5x
def test_rescaled_blockwise_matches_rescaled_whole_plane_on_the_image_grid(diameter, side, monkeypatch):
    """A rescaled run in blocks stores its instances on the image's grid block by block (never a
    run-grid uint32 plane) and finds the objects of the rescaled whole-plane run."""
    from napari_deepseg.inference.job import Job

    image, _ = _plane((side, side), seed=4)
    model = _Oracle()
    model.deepseg_meta.object_diameter = 16.0
    stored = []
    allocate = Job._allocate

    def spy(self, k, size):
        out = allocate(self, k, size)
        stored.append(self.result["instances"].shape)
        return out

    monkeypatch.setattr(Job, "_allocate", spy)
    opts = {"outputs": ("classes", "instances"), "tile": 128, "object_diameter": diameter, **CPU}
    whole = segment(image, model, block=4096, **opts)
    events = []
    gen = segment_iter(image, model, block=128, **opts)
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        blocks = stop.value
    assert blocks.meta["object_diameter"]["scale"] == pytest.approx(16.0 / diameter)
    assert blocks.meta["block"] == max(128, round(128 * 16.0 / diameter))  # 128 image pixels on the run grid
    assert whole.meta["block"] is None
    assert set(stored) == {image.shape}
    seen = np.zeros(image.shape, int)
    for e in events:
        if e.stage == "blocks" and e.done:
            seen[e.info["y"], e.info["x"]] += 1
            assert e.info["instances"].shape == e.info["classes"].shape == image.shape
    assert (seen == 1).all()  # block cores mapped to the image grid tile it exactly
    np.testing.assert_array_equal(blocks.classes, whole.classes)
    # a watershed tie of one run-grid pixel is 4 image pixels at 0.5x: small objects' IoU >= 0.9
    _same_objects(blocks.instances, whole.instances, min_iou=0.9)
    assert len(np.unique(blocks.instances)) - 1 > 20


@pytest.mark.parametrize("max_memory", [None, "1M"])  # cache room, or none (tiles run again)
def test_blocks_keep_shared_tiles_so_each_runs_once(max_memory, monkeypatch):
    """Tiles straddling block borders are read by several blocks: with room they go through the
    network once (as in a whole-plane run); without, they run again. Same result either way."""
    from napari_deepseg.inference.runner import TileRunner

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 3, 5, padding=2))
    net.deepseg_arch = SimpleNamespace(name="conv", in_channels=1, num_classes=3)
    net.deepseg_meta = ModelMeta(name="conv", task="instance-boundary").complete(3)
    image, _ = _plane((520, 470), seed=3)
    ran = []
    run = TileRunner.run
    monkeypatch.setattr(TileRunner, "run", lambda self, batch: ran.append(len(batch)) or run(self, batch))
    opts = {"outputs": ("classes", "probabilities", "instances"), "tile": 48, "overlap": 16, **CPU}
    whole = segment(image, net, block=4096, **opts)
    whole_tiles, ran[:] = sum(ran), []
    blocks = segment(image, net, block=256, max_memory=max_memory, **opts)
    assert blocks.meta["block"] == 256
    if max_memory is None:
        assert sum(ran) == whole_tiles
    else:
        assert sum(ran) > 1.3 * whole_tiles
    np.testing.assert_array_equal(blocks.probabilities, whole.probabilities)
    np.testing.assert_array_equal(blocks.classes, whole.classes)
    _same_objects(blocks.instances, whole.instances)


def test_outputs_over_the_default_limit_go_to_disk_or_warn_and_keep_useful_blocks(monkeypatch):
    """When the result alone cannot fit the default limit it goes to scratch files
    (:mod:`.outputs`). Without the disk space the run says so (naming the fix) and uses blocks
    sized from the available memory, not the smallest blocks (slow and no help); a limit the
    caller set is kept to as far as blocks can (the smallest ones)."""
    from napari_deepseg.inference import outputs

    image, _ = _plane((700, 700), seed=5)
    monkeypatch.setattr(memory, "DEFAULT_LIMIT", 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spilled = segment(image, _Oracle(), outputs=("instances",), tile=128, **CPU)
    assert spilled.meta["outputs_stored"] == "disk"
    monkeypatch.setattr(outputs, "free_disk", lambda path: 0)
    with pytest.warns(RuntimeWarning, match="over the memory limit.*lacks the disk space.*DEEPSEG_SCRATCH"):
        res = segment(image, _Oracle(), outputs=("instances",), tile=128, **CPU)
    assert res.meta["outputs_stored"] == "memory"
    given = segment(image, _Oracle(), max_memory="1M", outputs=("instances",), tile=128, **CPU)
    assert given.meta["block"] == memory.MIN_BLOCK
    expected = memory.block_size(memory.over_limit_room(), memory.block_bytes_per_pixel(3, True))
    assert expected > memory.MIN_BLOCK
    assert res.meta["block"] == (None if expected + 2 * memory.DEFAULT_HALO >= 700 else expected)
    assert res.instances.max() > 50


def test_a_process_already_over_the_default_limit_runs_quietly_in_large_blocks(monkeypatch):
    """Seen in CI: a long session whose resident memory already exceeds the default limit made
    every small run warn that its result alone was over the limit. The default then bounds what
    the run adds (large blocks, no warning); a limit the user set still gives the smallest."""
    monkeypatch.setattr(memory, "in_use", lambda: 3 * memory.DEFAULT_LIMIT)
    bpp = memory.block_bytes_per_pixel(3, True)
    quiet = memory.plan_blocks(10**6, memory.DEFAULT_LIMIT, False, bpp, memory.DEFAULT_HALO, None)
    assert not quiet.over_limit
    assert quiet.side == memory.MAX_BLOCK
    assert quiet.cache_budget > 0
    given = memory.plan_blocks(10**6, memory.DEFAULT_LIMIT, True, bpp, memory.DEFAULT_HALO, None)
    assert given.side == memory.MIN_BLOCK
    assert not given.over_limit
    image, _ = _plane((300, 300), seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = segment(image, _Oracle(), outputs=("instances",), tile=128, **CPU)
    assert res.meta["block"] is None
    assert res.instances.max() > 5


@pytest.mark.parametrize("stitch", [False, True])
def test_blockwise_stack_ids_are_unique_or_stitched_as_whole_planes_are(stitch):
    """Blockwise planes of a Z stack are numbered past the previous planes' ids while their
    blocks are joined, or stitched to the previous plane: the same objects as whole planes."""
    image, _ = _plane((600, 600), seed=8)
    stack = np.stack([image, image, np.fliplr(image)])
    opts = {"axes": "ZYX", "outputs": ("instances",), "tile": 128, "stitch_3d": stitch, **CPU}
    whole = segment(stack, _Oracle(), block=4096, **opts)
    blocks = segment(stack, _Oracle(), block=256, **opts)
    assert blocks.meta["block"] == 256
    counts = [len(np.unique(p[p > 0])) for p in blocks.instances]
    assert min(counts) > 50
    for b, w in zip(blocks.instances, whole.instances):
        _same_objects(b, w)
    first, second = (set(np.unique(p[p > 0]).tolist()) for p in blocks.instances[:2])
    if stitch:  # the same plane again: every object continues
        np.testing.assert_array_equal(blocks.instances[1], blocks.instances[0])
    else:
        assert not first & second
        assert len(set().union(*(np.unique(p[p > 0]).tolist() for p in blocks.instances))) == sum(counts)
        assert blocks.instances.max() == sum(counts)
