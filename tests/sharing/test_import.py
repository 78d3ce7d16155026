"""Running another tool's bioimage.io package, and one-line refusals of packages that cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_deepseg.errors import ModelFileError
from napari_deepseg.inference import segment
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei

# bioimage.io packages need bioimageio.core (a base dependency; an older environment may lack it)
pytest.importorskip("bioimageio.core", reason="bioimageio.core not installed: pip install -e '.[testing]'")

from .conftest import TwoClassNet, build_foreign_package


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    return build_foreign_package(tmp_path_factory.mktemp("foreign"))


def test_built_package_is_valid_for_bioimageio_core(foreign):
    from bioimageio.core import test_model

    summary = test_model(foreign)
    assert summary.status == "passed", summary.format()


def test_foreign_package_segments_like_its_network(foreign):
    model = load_model(foreign)
    meta = model.deepseg_meta
    assert meta.class_names == ["bg", "cell"]
    assert meta.normalization == {"method": "percentile", "low": 1.0, "high": 99.8, "scope": "plane"}
    assert model.size_multiple == 8
    image = synthetic_nuclei((96, 96), seed=6)[0]
    result = segment(image, model, tile=96, outputs=("classes", "probabilities"))
    raw = image.astype(np.float32)
    lo, hi = np.percentile(raw, (1.0, 99.8))
    with torch.no_grad():
        norm = ((raw - lo) / (hi - lo)).astype(np.float32)
        expected = TwoClassNet()(torch.from_numpy(norm)[None, None]).argmax(1)[0].numpy()
    assert result.classes.shape == (96, 96)
    agreement = (result.classes == expected).mean()
    assert agreement > 0.999, agreement
    assert 0.05 < (result.classes == 1).mean() < 0.7  # the network finds nuclei, not nothing/all


def test_package_with_python_architecture_is_refused(tmp_path):
    path = build_foreign_package(tmp_path, weights="state_dict")
    with pytest.raises(ModelFileError, match="no TorchScript weights") as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_package_with_unmatched_preprocessing_is_refused(tmp_path):
    path = build_foreign_package(tmp_path, preprocessing="zero_mean_unit_variance")
    with pytest.raises(ModelFileError, match=r"zero_mean_unit_variance.*no napari-deepseg equivalent"):
        load_model(path)


def test_broken_package_is_one_line(tmp_path, foreign):
    import zipfile

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(foreign) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "rdf.yaml":
                data = data.replace(b"type: model", b"type: modle")
            dst.writestr(item, data)
    with pytest.raises(ModelFileError) as err:
        load_model(bad)
    assert "bad.zip" in str(err.value)
    assert "\n" not in str(err.value)
