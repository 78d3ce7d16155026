"""SegmentOptions: one object, one check per option, the same limits for the API, batch and CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from napari_deepseg.cli._segment_options import add_arguments, from_arguments
from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import SegmentOptions, object_size, segment
from napari_deepseg.inference.options import (
    DIAMETER_RANGE,
    FIELDS,
    SPECS,
    halo_for,
    make_options,
)
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import FinetuneConfig

CPU = {"device": "cpu"}


def test_every_option_has_a_spec_and_the_defaults_are_checked_values():
    assert set(SPECS) == set(FIELDS)
    opts = SegmentOptions()
    assert opts.outputs == ("classes",)
    assert opts.stitch_3d is False
    assert opts.object_diameter is None
    assert opts.tile_overlap == 64
    assert opts.halo == 64


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"tile": 100.5}, "tile must be a whole number"),
        ({"tile": 4}, "tile=4 is too small"),
        ({"tile": 64, "overlap": 64}, "overlap=64 must be less than tile=64"),
        ({"overlap": -1}, "overlap=-1 is too small"),
        ({"batch_size": 0}, "batch_size=0 is too small"),
        ({"outputs": ("masks",)}, "unknown 'masks'"),
        ({"outputs": ()}, "outputs is empty"),
        ({"precision": "fp8"}, "precision='fp8' is unknown"),
        ({"object_diameter": 0}, "from 2 to 1000"),
        ({"object_diameter": float("nan")}, "from 2 to 1000"),
        ({"object_diameter": 1e6}, "from 2 to 1000"),
        ({"max_memory": 1}, "max_memory=1 is too small"),
        ({"max_memory": "lots"}, "not understood"),
        ({"stitch_3d": 1.5}, "stitch_3d=1.5 is out of range"),
        ({"min_size": -3}, "min_size=-3 is too small"),
        ({"block": 16}, "block=16 is too small"),
        ({"channels": "0"}, "channels must be a list"),
        ({"channels": [-1]}, "channels=-1 is too small"),
        ({"postprocess": {"seed": 1}}, "unknown post-processing setting(s) seed"),
        ({"postprocess": {"foreground_threshold": 1.5}}, "between 0 and 1"),
        ({"postprocess": {"seed_method": "magic"}}, "seed_method='magic' is unknown"),
        ({"tta": "yes"}, "tta must be True or False"),
    ],
)
def test_bad_values_are_refused_with_the_valid_range(changes, words):
    with pytest.raises(DeepsegError) as err:
        SegmentOptions(**changes)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_values_are_normalized_once():
    opts = SegmentOptions(
        channels=[2, 0],
        tile=256.0,
        outputs="instances",
        stitch_3d=True,
        max_memory="512M",
        object_diameter="24",
    )
    assert opts.channels == (2, 0)
    assert opts.tile == 256
    assert opts.outputs == ("instances",)
    assert opts.stitch_3d == 0.5
    assert opts.max_memory == 512 * 2**20
    assert opts.object_diameter == 24.0
    assert SegmentOptions(object_diameter="AUTO").object_diameter is None
    assert SegmentOptions(object_diameter="off").object_diameter == "off"


def test_replace_and_make_options_refuse_unknown_names():
    with pytest.raises(TypeError, match=r"unknown segmentation option.*tiles"):
        make_options(tiles=256)
    with pytest.raises(TypeError, match="options must be a SegmentOptions"):
        make_options({"tile": 256})
    base = SegmentOptions(tile=256)
    assert make_options(base, overlap=16) == SegmentOptions(tile=256, overlap=16)


def test_the_halo_rule_is_shared_by_blocks_and_chunks():
    assert SegmentOptions(tile=1024).tile_overlap == 128
    assert SegmentOptions(tile=1024).halo == 128  # was 64 for chunks, 128 for blocks
    assert SegmentOptions(overlap=16).halo == 64
    assert halo_for(200) == 200


def test_sizes_a_person_gives_are_converted_to_the_run_grid():
    opts = SegmentOptions(min_size=300, postprocess={"min_size": 100, "seed_h": 0.1})
    half = opts.at_scale(0.5)
    assert half.min_size == 75
    assert half.postprocess == {"min_size": 25, "seed_h": 0.1}
    assert opts.at_scale(1.0) is opts
    lengths = SegmentOptions(tile=512, overlap=96, block=1024)  # image pixels too
    assert (lengths.at_scale(0.5).tile, lengths.at_scale(0.5).overlap, lengths.at_scale(0.5).block) == (
        256,
        48,
        512,
    )
    assert lengths.at_scale(2.0).tile == 1024
    tiny = SegmentOptions(tile=32, overlap=31, block=200).at_scale(0.1)  # kept within their ranges
    assert (tiny.tile, tiny.overlap, tiny.block) == (8, 3, 128)
    assert SegmentOptions().at_scale(0.5).tile is None  # defaults are chosen on the run's grid


def test_finetune_config_has_the_same_diameter_range():
    low, high = DIAMETER_RANGE
    FinetuneConfig(object_diameter=low).check()
    FinetuneConfig(object_diameter=high).check()
    with pytest.raises(DeepsegError, match="object_diameter must be 2 to 1000"):
        FinetuneConfig(object_diameter=high + 1).check()
    with pytest.raises(DeepsegError):
        SegmentOptions(object_diameter=high + 1)


def test_cli_flags_come_from_the_specs_with_their_true_defaults():
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    names = ("tile", "overlap", "object_diameter", "max_memory", "tta", "channels")
    add_arguments(parser, names)
    help_text = " ".join(parser.format_help().split())
    assert "default: 512-768, fitted to the image" in help_text
    assert "default: tile // 8 (64)" in help_text
    args = parser.parse_args(
        ["--tile", "256", "--diameter", "off", "--max-memory", "1G", "--channels", "1,0"]
    )
    opts = from_arguments(args, names)
    assert opts == SegmentOptions(tile=256, object_diameter="off", max_memory=2**30, channels=(1, 0))
    with pytest.raises(argparse.ArgumentError, match="--tile 0 is too small"):
        parser.parse_args(["--tile", "0"])


def test_segment_takes_options_or_keywords_alike():
    image = synthetic_nuclei((128, 128), seed=1)[0]
    opts = SegmentOptions(tile=64, overlap=8, outputs=("classes", "instances"), object_diameter="off", **CPU)
    a = segment(image, "nuclei", options=opts)
    b = segment(
        image, "nuclei", tile=64, overlap=8, outputs=("classes", "instances"), object_diameter="off", **CPU
    )
    c = segment(image, "nuclei", options=opts.replace(tile=128), tile=64)  # keywords win
    np.testing.assert_array_equal(a.instances, b.instances)
    np.testing.assert_array_equal(a.instances, c.instances)
    with pytest.raises(TypeError, match=r"unknown segmentation option.*tiles"):
        segment(image, "nuclei", tiles=64)


def test_min_size_is_in_image_pixels_when_the_image_is_rescaled():
    """A run at about x1.6 keeps the objects of at least ``min_size`` pixels of the image (the
    grid the model ran on would count about 2.6 times as many pixels per object)."""
    image = synthetic_nuclei((256, 256), radius=(4.0, 7.0), seed=3)[0]
    kw = {"outputs": ("instances",), "object_diameter": 10.0, **CPU}
    everything = segment(image, "nuclei", min_size=0, **kw)
    assert everything.meta["object_diameter"]["scale"] > 1.4
    areas = np.bincount(everything.instances.ravel())[1:]
    cut = int(np.median(areas))
    kept = np.bincount(segment(image, "nuclei", min_size=cut, **kw).instances.ravel())[1:]
    # objects near the cut may fall either side (run-grid pixels are not image pixels)
    assert (areas >= 1.2 * cut).sum() <= len(kept) <= (areas >= 0.8 * cut).sum()
    assert len(kept) < 0.7 * len(areas)


def test_object_size_is_the_decision_a_run_reuses():
    image = synthetic_nuclei((256, 256), radius=(4.0, 6.0), seed=3)[0]
    decision = object_size(image, "nuclei", **CPU)
    assert decision["source"] == "estimated"
    assert decision["scale"] > 1
    result = segment(image, "nuclei", object_diameter=decision["object_diameter"], **CPU)
    assert result.meta["object_diameter"]["scale"] == decision["scale"]
    assert result.meta["object_diameter"]["source"] == "given"
