"""bioimage.io export: package contents, bioimageio.core's own test, exact round trip, CLI."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import tifffile
import torch
import yaml

from napari_deepseg.cli import main
from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import segment
from napari_deepseg.models import ModelMeta, build_model, load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.sharing import export_bioimageio

# bioimage.io packages need bioimageio.core (a base dependency; an older environment may lack it)
pytest.importorskip("bioimageio.core", reason="bioimageio.core not installed: pip install -e '.[testing]'")

from .conftest import tiny_model


def _rdf(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def test_package_holds_everything_a_reader_needs(exported):
    model, path = exported
    meta = model.deepseg_meta
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.md").decode()
        test_in = np.load(archive.open("test_input.npy"))
        test_out = np.load(archive.open("test_output.npy"))
    assert {"weights.pt", "weights.torchscript", "cover.png", "test_input.npy", "test_output.npy"} <= names
    rdf = _rdf(path)
    assert rdf["format_version"].startswith("0.5.")
    assert rdf["license"] == "BSD-3-Clause"
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "y", "x"]
    pre = next(p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range")["kwargs"]
    assert (pre["min_percentile"], pre["max_percentile"]) == (
        meta.normalization["low"],
        meta.normalization["high"],
    )
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "interior", "boundary"]
    assert rdf["outputs"][0]["postprocessing"][0]["id"] == "softmax"
    own = rdf["config"]["napari_deepseg"]
    assert own["instance_postprocessing"]["parameters"] == meta.postprocess
    assert own["architecture"] == {
        "name": "unet",
        "in_channels": 1,
        "num_classes": 3,
        "options": {"base": 4, "depth": 2},
    }
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript"}
    assert "deepseg train --images a --labels b -o tiny.pt" in readme
    assert "| all | 2 | 0.610 |" in readme  # measured accuracy table
    assert "synthetic nuclei, 4 images" in readme  # training data
    assert test_in.shape == (1, 1, 128, 128)
    assert test_out.shape == (1, 3, 128, 128)
    np.testing.assert_allclose(test_out.sum(axis=1), 1.0, atol=1e-5)


def test_cover_is_image_beside_segmentation(exported):
    import imageio.v3 as iio

    _, path = exported
    with zipfile.ZipFile(path) as archive:
        cover = iio.imread(archive.read("cover.png"))
    assert cover.shape == (128, 256, 3)
    left, right = cover[:, :128], cover[:, 128:]
    assert np.array_equal(left[..., 0], left[..., 1])  # the gray test image
    assert not np.array_equal(left, right)  # the segmentation drawn over it


@pytest.mark.slow
def test_bioimageio_core_test_passes_offline(exported):
    from bioimageio.core import test_model

    _, path = exported
    summary = test_model(path)
    assert summary.status == "passed", summary.format()
    tested = {d.name for d in summary.details}
    assert any("torchscript" in n for n in tested)
    assert any("pytorch_state_dict" in n for n in tested)


def test_round_trip_is_exact(exported):
    model, path = exported
    back = load_model(path)
    assert back.deepseg_arch == model.deepseg_arch
    assert back.deepseg_meta == model.deepseg_meta
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    image = synthetic_nuclei((96, 96), seed=2)[0]
    ours = segment(image, model, tile=64, outputs=("classes", "instances"))
    theirs = segment(image, back, tile=64, outputs=("classes", "instances"))
    assert np.array_equal(ours.classes, theirs.classes)
    assert np.array_equal(ours.instances, theirs.instances)


def test_torchscript_weights_match_the_network(exported):
    model, path = exported
    with zipfile.ZipFile(path) as archive:
        import io

        scripted = torch.jit.load(io.BytesIO(archive.read("weights.torchscript")))
    x = torch.rand(1, 1, 72, 88)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.slow
def test_a_distance_model_exports_its_raw_maps_and_says_how_to_rebuild_instances(tmp_path):
    from bioimageio.core import test_model

    model = tiny_model(distance=True)
    path = export_bioimageio(model, tmp_path / "dist.zip")
    assert test_model(path).status == "passed"
    with zipfile.ZipFile(path) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
        expected = np.load(io.BytesIO(archive.read("test_output.npy")))
    output = rdf["outputs"][0]
    assert output["axes"][1]["channel_names"] == ["background", "interior", "boundary", "distance"]
    assert not output.get("postprocessing")  # no softmax over classes and distance alike
    assert expected.shape[1] == 4
    assert expected.min() < 0  # logits, as the description says
    assert "sigmoid of channel 3" in readme
    back = load_model(path)
    assert back.deepseg_meta.outputs == ["classes", "distance"]
    image = synthetic_nuclei((96, 96), seed=2)[0]
    ours = segment(image, model, tile=64, outputs=("instances", "probabilities"))
    theirs = segment(image, back, tile=64, outputs=("instances", "probabilities"))
    assert np.array_equal(ours.instances, theirs.instances)
    assert np.array_equal(ours.probabilities, theirs.probabilities)


def test_meanstd_rgb_model_maps_to_fixed_mean_std(tmp_path):
    model = build_model("unet", in_channels=3, num_classes=2, base=4, depth=2).eval()
    norm = {"method": "meanstd", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.25], "scale": 255.0}
    model.deepseg_meta = ModelMeta(name="rgb cells", channel_mode="rgb", normalization=norm).complete(2)
    rgb = np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)
    path = export_bioimageio(model, tmp_path / "rgb.zip", test_image=rgb, torchscript=False)
    rdf = _rdf(path)
    step = next(p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "fixed_zero_mean_unit_variance")
    assert step["kwargs"]["mean"] == pytest.approx([127.5, 102.0, 76.5])
    assert step["kwargs"]["std"] == pytest.approx([51.0, 51.0, 63.75])
    assert rdf["inputs"][0]["axes"][1]["channel_names"] == ["red", "green", "blue"]
    assert rdf["weights"].get("torchscript") is None
    back = load_model(path)
    assert back.deepseg_meta.normalization == model.deepseg_meta.normalization


def test_export_errors_are_one_line(tmp_path):
    with pytest.raises(DeepsegError, match=r"\.zip"):
        export_bioimageio(tiny_model(), tmp_path / "model.pt")
    with pytest.raises(DeepsegError, match="2D image"):
        export_bioimageio(tiny_model(), tmp_path / "m.zip", test_image=np.zeros((2, 3, 64, 64)))
    plain = torch.nn.Conv2d(1, 2, 1)
    with pytest.raises(DeepsegError, match="made by napari-deepseg"):
        export_bioimageio(plain, tmp_path / "m.zip")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export_then_predict_with_the_package(exported, tmp_path, capsys):
    model_file = exported[1].with_suffix(".pt")
    image = synthetic_nuclei((64, 64), seed=4)[0]
    tifffile.imwrite(tmp_path / "cells.tif", image)
    package = tmp_path / "cli.zip"
    code = main(
        [
            "export",
            str(model_file),
            "-o",
            str(package),
            "--test-image",
            str(tmp_path / "cells.tif"),
            "--author",
            "A. Researcher",
            "--no-torchscript",
        ]
    )
    assert code == 0, capsys.readouterr().err
    rdf = _rdf(package)
    assert rdf["authors"] == [{"name": "A. Researcher"}]
    assert "bioimageio test" in capsys.readouterr().err
    for model_arg, out in ((model_file, "from_pt"), (package, "from_zip")):
        args = ["predict", str(tmp_path / "cells.tif"), "-o", str(tmp_path / out), "--model", str(model_arg)]
        assert main([*args, "--tile", "64", "--quiet"]) == 0
    a = tifffile.imread(tmp_path / "from_pt" / "cells_labels.tif")
    b = tifffile.imread(tmp_path / "from_zip" / "cells_labels.tif")
    assert np.array_equal(a, b)
    manifest = json.loads((tmp_path / "from_zip" / "deepseg_manifest.json").read_text())
    assert manifest["model"]["path"].endswith("cli.zip")


def test_cli_export_bad_output_name_is_one_line(exported, tmp_path, capsys):
    code = main(["export", str(exported[1].with_suffix(".pt")), "-o", str(tmp_path / "x.pt")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepseg: error:")
    assert ".zip" in err
    assert "\n" not in err
