"""A plane larger than a chunk: ``deepseg predict`` writes it block by block (OME-Zarr) with the
objects of one whole-plane ``segment()`` run (the same tile grid, resampling and normalization)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_deepseg.cli import main
from napari_deepseg.evaluation import match_instances
from napari_deepseg.inference import segment
from napari_deepseg.io import open_labels
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei


@pytest.mark.parametrize("diameter", ["off", "24"])  # the image's own grid; resampled by 16/24
def test_chunked_plane_has_the_whole_plane_objects(tmp_path, diameter):
    image, _ = synthetic_nuclei((1400, 1300), radius=(5, 9), seed=7)
    image = (image * 0.6).astype(np.uint16) + 40  # percentiles differ from chunk to chunk
    image[:, :400] //= 3  # a dim side: a chunk's own percentiles would differ from the plane's
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "big.tif", image)
    out = tmp_path / "out"
    code = main([
        "predict", str(folder), "-o", str(out), "--quiet", "--diameter", diameter,
        "--zarr-threshold", "1K", "--chunk-size", "1M",
    ])  # fmt: skip
    assert code == 0
    labels, _axes = open_labels(out / "big_labels.zarr")
    assert labels.chunks == (1024, 1024)  # 2 x 2 blocks of the plane, each run with a halo
    chunked = np.asarray(labels[:])
    whole = segment(image, load_model("nuclei"), outputs=("instances",), object_diameter=float(diameter)
                    if diameter != "off" else "off").instances  # fmt: skip
    scores = match_instances(chunked, whole, thresholds=[0.9])
    assert scores.n_true > 300
    assert int(scores.tp[0]) >= 0.99 * scores.n_true
    assert abs(scores.n_pred - scores.n_true) <= 0.01 * scores.n_true
    if diameter == "off":  # the same tiles, blends and normalizer: the very same class map
        code = main([
            "predict", str(folder), "-o", str(tmp_path / "classes"), "--quiet", "--diameter", "off",
            "--zarr-threshold", "1K", "--chunk-size", "1M", "--output", "classes",
        ])  # fmt: skip
        classes, _ = open_labels(tmp_path / "classes" / "big_labels.zarr")
        expected = segment(image, load_model("nuclei"), object_diameter="off").classes
        np.testing.assert_array_equal(np.asarray(classes[:]), expected)


def test_a_stack_cut_into_yx_blocks_keeps_each_planes_normalization(tmp_path, model_file):
    """Y/X chunks of the planes of a ZYX stack: each plane's blocks take that plane's own
    percentiles (computed once for the image), so the class map is the whole-stack run's."""
    planes = [synthetic_nuclei((1100, 1090), seed=s)[0] for s in (1, 2, 3)]
    stack = np.stack(planes).astype(np.uint16)
    stack[1, :, :150] = 60000  # a saturated strip: plane 1's 99.8th percentile is far above the others'
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    out = tmp_path / "out"
    code = main([
        "predict", str(tmp_path / "stack.tif"), "-o", str(out), "--quiet", "--model", str(model_file),
        "--axes", "ZYX", "--zarr-threshold", "1K", "--chunk-size", "1M", "--output", "classes",
    ])  # fmt: skip
    assert code == 0
    classes, axes = open_labels(out / "stack_labels.zarr")
    assert axes == "ZYX"
    expected = segment(stack, load_model(model_file), axes="ZYX").classes
    np.testing.assert_array_equal(np.asarray(classes[:]), expected)
