"""Device/precision choice, the model cache, out-of-memory fallback and test-time augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_deepseg.errors import DeepsegError
from napari_deepseg.inference import device as devmod
from napari_deepseg.inference import segment
from napari_deepseg.inference.device import prepare_model, resolve_device, resolve_precision

CPU = {"device": "cpu", "precision": "fp32"}


def test_resolve_device_and_precision():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeepsegError, match="unknown device"):
        resolve_device("tpu")
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu).dtype is None
    assert resolve_precision("bf16", cpu).dtype is torch.bfloat16
    expected = torch.bfloat16 if devmod.cpu_has_native_bf16() else None
    assert resolve_precision("auto", cpu, bf16_agreement=0.9999).dtype is expected
    assert resolve_precision("auto", cpu).dtype is None  # no measured agreement: fp32
    with pytest.raises(DeepsegError, match="fp16"):
        resolve_precision("fp16", cpu)
    with pytest.raises(DeepsegError, match="precision"):
        resolve_precision("int8", cpu)


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU does (True) or does not (False) have native bf16."""

    def set_native(native: bool) -> None:
        monkeypatch.setattr(devmod, "cpu_has_native_bf16", lambda: native)

    return set_native


@pytest.mark.parametrize(
    ("native", "mode", "agreement", "dtype"),
    [
        (True, "inference", 0.99976, torch.bfloat16),  # the bundled model's measured figure
        (True, "inference", 0.999, torch.bfloat16),  # the threshold itself is enough
        (True, "inference", 0.9977, None),  # under 99.9%: fp32
        (True, "inference", None, None),  # never measured: fp32
        (False, "inference", 0.99976, None),  # no native bf16: fp32
        (True, "training", None, torch.bfloat16),  # training needs no agreement figure
        (False, "training", None, None),
    ],
)
def test_cpu_auto_precision_follows_capability_and_model_agreement(cpu_bf16, native, mode, agreement, dtype):
    cpu_bf16(native)
    policy = resolve_precision("auto", torch.device("cpu"), mode=mode, bf16_agreement=agreement)
    assert policy.dtype is dtype
    # channels_last with CPU autocast, and for fp32 inference (oneDNN's faster layout), not fp32 training
    assert policy.channels_last is (dtype is not None or mode == "inference")
    assert policy.grad_scaler is False
    assert policy.name == ("bf16" if dtype is not None else "fp32")


def test_forced_precisions_override_auto(cpu_bf16):
    cpu_bf16(True)
    cpu = torch.device("cpu")
    for mode in devmod.MODES:
        assert resolve_precision("fp32", cpu, mode=mode, bf16_agreement=1.0).dtype is None
        assert resolve_precision("bf16", cpu, mode=mode, bf16_agreement=0.5).dtype is torch.bfloat16
        with pytest.raises(DeepsegError, match=r"fp16.*CPU"):
            resolve_precision("fp16", cpu, mode=mode)
    with pytest.raises(ValueError, match="mode"):
        resolve_precision("auto", cpu, mode="serving")


def test_gpu_precision_rules_without_a_gpu(monkeypatch):
    """CUDA auto: bf16 where supported, else fp16 with a gradient scaler when training; MPS: fp32."""
    cuda, mps = torch.device("cuda"), torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    train = resolve_precision("auto", cuda, mode="training")
    assert (train.dtype, train.channels_last, train.grad_scaler) == (torch.float16, True, True)
    infer = resolve_precision("auto", cuda)
    assert (infer.dtype, infer.grad_scaler) == (torch.float16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda, mode="training").dtype is torch.bfloat16
    assert resolve_precision("auto", mps).dtype is None
    assert resolve_precision("fp16", mps).dtype is torch.float16
    assert resolve_precision("fp16", mps).channels_last is False
    with pytest.raises(DeepsegError, match="fp16 training needs CUDA"):
        resolve_precision("fp16", mps, mode="training")


def test_available_devices_lists_auto_and_cpu_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devmod, "_mps_available", lambda: False)
    assert devmod.available_devices() == {"auto": True, "cpu": True, "cuda": False, "mps": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devmod.available_devices()["cuda"] is True


def test_segment_auto_uses_the_model_files_agreement(cpu_bf16, tiny_unet):
    """A model whose file records >= 99.9% agreement runs bf16 under "auto" on a bf16 CPU."""
    cpu_bf16(True)
    image = np.random.default_rng(0).random((40, 40), dtype=np.float32)
    tiny_unet.deepseg_meta.bf16_agreement = None
    assert segment(image, tiny_unet, device="cpu").meta["precision"] == "fp32"
    tiny_unet.deepseg_meta.bf16_agreement = 0.9995
    assert segment(image, tiny_unet, device="cpu").meta["precision"] == "bf16"
    assert segment(image, tiny_unet, device="cpu", precision="fp32").meta["precision"] == "fp32"


def test_bundled_model_records_its_bf16_agreement_and_the_policy_follows_it(cpu_bf16):
    from napari_deepseg.models import load_model

    meta = load_model("nuclei").deepseg_meta
    assert 0.9 < meta.bf16_agreement <= 1.0  # measured, not assumed
    assert "benchmarks/default_model_speed.py" in meta.provenance["bf16_agreement"]
    cpu_bf16(True)
    policy = resolve_precision("auto", torch.device("cpu"), bf16_agreement=meta.bf16_agreement)
    expected = torch.bfloat16 if meta.bf16_agreement >= devmod.BF16_AGREEMENT_MIN else None
    assert policy.dtype is expected


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(2, 1, 40, 56)
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-4, rtol=1e-4)


def test_model_copy_cached_folded_and_refreshed_on_weight_change(tiny_unet):
    cpu = torch.device("cpu")
    tiny_unet.eval()
    a = prepare_model(tiny_unet, cpu, channels_last=True)
    assert a is not tiny_unet
    assert prepare_model(tiny_unet, cpu, channels_last=True) is a
    assert not any(isinstance(m, nn.BatchNorm2d) for m in a.modules())  # folded into the convs
    assert any(isinstance(m, nn.BatchNorm2d) for m in tiny_unet.modules())  # caller's model untouched
    assert _same_outputs(a, tiny_unet)
    with torch.no_grad():
        next(tiny_unet.parameters()).add_(1.0)
    b = prepare_model(tiny_unet, cpu, channels_last=True)
    assert b is not a
    assert _same_outputs(b, tiny_unet)
    assert not _same_outputs(a, tiny_unet)


def test_model_without_batchnorm_on_device_is_used_directly():
    plain = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU()).eval()
    assert prepare_model(plain, torch.device("cpu"), channels_last=False) is plain


def test_folding_keeps_class_maps_of_a_trained_like_model(tiny_unet, nuclei_image, monkeypatch):
    """With non-trivial batch-norm statistics, folded and unfolded runs give the same class map."""
    with torch.no_grad():
        for m in tiny_unet.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    image = nuclei_image[0]
    options = {"tile": 64, "precision": "fp32", "device": "cpu", "outputs": ("probabilities",)}
    folded = segment(image, tiny_unet, **options)
    devmod.clear_model_cache()
    monkeypatch.setattr(devmod, "fold_batchnorm", lambda model: model)
    plain = segment(image, tiny_unet, **options)
    devmod.clear_model_cache()
    assert np.abs(folded.probabilities.astype(np.float32) - plain.probabilities).max() < 2e-3
    assert (folded.classes == plain.classes).mean() > 0.9999


def test_training_mode_restored(tiny_unet, nuclei_image):
    tiny_unet.train()
    segment(nuclei_image[0], tiny_unet, tile=64, **CPU)
    assert tiny_unet.training


class _OOMModel(nn.Module):
    """Raises CUDA out-of-memory when a batch holds more than ``limit`` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.limit = limit

    def forward(self, x):
        if x.shape[0] * x.shape[2] * x.shape[3] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return self.conv(x)


def test_oom_halves_batch_then_tile():
    image = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    model = _OOMModel(limit=48 * 48).eval()
    with pytest.warns(RuntimeWarning, match="out of memory") as record:
        res = segment(image, model, tile=96, overlap=8, batch_size=4, **CPU)
    messages = [str(r.message) for r in record]
    assert any("tile batch" in m for m in messages)
    assert any("with tile 48" in m for m in messages)
    assert res.classes.shape == (100, 100)
    assert res.meta["tile"] == 48
    reference = segment(image, nn.Sequential(model.conv).eval(), tile=48, overlap=8, **CPU)
    np.testing.assert_array_equal(res.classes, reference.classes)
    with pytest.warns(RuntimeWarning), pytest.raises(DeepsegError, match="out of memory"):
        segment(image, _OOMModel(limit=1).eval(), tile=32, overlap=4, **CPU)


def test_tta_is_invariant_for_symmetric_model():
    conv = nn.Conv2d(1, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight[:] = torch.rand(3, 1, 1, 1) * torch.ones(1, 1, 3, 3)  # D4-symmetric kernels
    image = np.random.default_rng(0).random((40, 56)).astype(np.float32)
    a = segment(image, conv.eval(), tile=64, outputs=("probabilities",), **CPU)
    b = segment(image, conv.eval(), tile=64, outputs=("probabilities",), tta=True, **CPU)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-3)


def test_bf16_cpu_runs(tiny_unet, nuclei_image):
    res = segment(nuclei_image[0], tiny_unet, tile=64, device="cpu", precision="bf16")
    assert res.meta["precision"] == "bf16"
    fp32 = segment(nuclei_image[0], tiny_unet, tile=64, **CPU)
    assert (res.classes == fp32.classes).mean() > 0.95


@pytest.mark.gpu
def test_gpu_autocast_matches_cpu(tiny_unet, nuclei_image):
    res = segment(nuclei_image[0], tiny_unet, tile=64, device="auto", precision="auto")
    assert res.meta["device"] != "cpu"
    fp32 = segment(nuclei_image[0], tiny_unet, tile=64, **CPU)
    assert (res.classes == fp32.classes).mean() > 0.99
