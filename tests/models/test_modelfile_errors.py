"""Bad model files: each gives a one-line ModelFileError naming the file; none runs code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from napari_deepseg.errors import ModelFileError
from napari_deepseg.models import build_model, load_model, save_model
from napari_deepseg.models.modelfile import SCHEMA_VERSION


@pytest.fixture
def good_file(tmp_path):
    model = build_model("deeplabv3plus", in_channels=1, num_classes=3, backbone="resnet18", width=1 / 16,
                        decoder_channels=8)  # fmt: skip
    return save_model(tmp_path / "good.pt", model)


def _error(path) -> str:
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in _error(path)


def test_truncated_file(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 2])
    assert "damaged or not a model file" in _error(good_file)


def test_corrupt_file(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 40)
    assert "damaged or not a model file" in _error(path)


def test_newer_schema(good_file):
    payload = torch.load(good_file, weights_only=True)
    payload["schema_version"] = SCHEMA_VERSION + 1
    torch.save(payload, good_file)
    assert "upgrade napari-deepseg" in _error(good_file)


def test_weights_that_do_not_fit_the_architecture(good_file):
    payload = torch.load(good_file, weights_only=True)
    payload["architecture"]["options"]["decoder_channels"] = 16
    torch.save(payload, good_file)
    assert "do not fit" in _error(good_file)


def test_unknown_architecture(good_file):
    payload = torch.load(good_file, weights_only=True)
    payload["architecture"]["name"] = "no_such_net"
    torch.save(payload, good_file)
    assert "cannot rebuild" in _error(good_file)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path(__import__('os').environ['PWNED']).write_text('ran')",))


def test_malicious_pickle_does_not_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-deepseg-model", "payload": _Exploit()}, path, pickle_protocol=2)
    assert "run code" in _error(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"  # a plain (non-zip) pickle
    raw.write_bytes(pickle.dumps(_Exploit(), protocol=2))
    _error(raw)
    assert not marker.exists()


def test_random_bytes_are_corrupt_not_code(tmp_path):
    """torch's refusal text always mentions weights_only: random bytes must still read as corrupt."""
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    message = _error(path)
    assert "damaged or not a model file" in message
    assert "run code" not in message
    assert "weights_only" not in message  # never repeat torch's advice to load unsafely


def test_boundary_width_round_trips_and_defaults_to_one(good_file, tmp_path):
    assert load_model(good_file).deepseg_meta.boundary_width == 1  # a file without the field
    model = load_model(good_file)
    model.deepseg_meta.boundary_width = 2
    path = save_model(tmp_path / "wide.pt", model)
    assert load_model(path).deepseg_meta.boundary_width == 2
    payload = torch.load(path, weights_only=True)
    assert payload["schema_version"] == 1  # inference does not depend on it: older code reads it


@pytest.mark.parametrize("width", [0, 2.5, "2", 99])
def test_a_boundary_width_that_is_not_a_rim_width(good_file, width):
    import json

    payload = torch.load(good_file, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["boundary_width"] = width
    payload["meta"] = json.dumps(meta)
    torch.save(payload, good_file)
    assert "boundary_width" in _error(good_file)
