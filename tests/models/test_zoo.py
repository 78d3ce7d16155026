"""One tester over every registered architecture (tiny widths): forward, any size, 1/3/4
channels, backward, and save/load round trip with identical outputs."""

from __future__ import annotations

import pytest
import torch

from napari_deepseg.errors import DeepsegError
from napari_deepseg.models import (
    SegmentationNet,
    build_model,
    contract_of,
    load_model,
    registered_models,
    save_model,
)
from napari_deepseg.training.setup import grow_head

# id -> (registered name, tiny options)
TINY = {
    "unet": ("unet", {"base": 4, "depth": 2}),
    "unet-valid": ("unet", {"base": 4, "depth": 2, "padding": "valid"}),
    "unet-resnet18": ("unet", {"base": 4, "encoder": "resnet18"}),
    "fcn8s-vgg16": ("fcn8s", {"width": 1 / 16, "head_channels": 16}),
    "fcn16s-resnet18": ("fcn16s", {"backbone": "resnet18", "width": 1 / 16}),
    "fcn32s-resnet34": ("fcn32s", {"backbone": "resnet34", "width": 1 / 16}),
    "fcn8s-resnet50": ("fcn8s", {"backbone": "resnet50", "width": 1 / 16}),
    "fcn_resnet50": ("fcn_resnet50", {"width": 1 / 16}),
    "fcn_resnet101": ("fcn_resnet101", {"width": 1 / 16, "aux": True}),
    "deeplabv3-resnet50": ("deeplabv3", {"width": 1 / 16, "head_channels": 8}),
    "deeplabv3-resnet18-os16": (
        "deeplabv3",
        {"backbone": "resnet18", "width": 1 / 16, "output_stride": 16, "head_channels": 8},
    ),
    "deeplabv3-mobilenet": (
        "deeplabv3",
        {"backbone": "mobilenet_v3_large", "width": 0.25, "head_channels": 8},
    ),
    "deeplabv3plus-resnet18": (
        "deeplabv3plus",
        {"backbone": "resnet18", "width": 1 / 16, "decoder_channels": 8},
    ),
    "deeplabv3plus-xception": (
        "deeplabv3plus",
        {"backbone": "xception", "width": 1 / 16, "decoder_channels": 8, "middle_blocks": 2},
    ),
}
K = 3


def test_every_registered_model_is_tested():
    assert set(registered_models()) == {name for name, _ in TINY.values()}


@pytest.fixture(params=list(TINY), ids=list(TINY))
def config(request):
    return TINY[request.param]


def _build(config, in_channels=3):
    name, options = config
    return build_model(name, in_channels=in_channels, num_classes=K, **options)


def _expected(model, h, w):
    m = getattr(model, "output_margin", 0)
    return (h - 2 * m, w - 2 * m)


class TestEveryModel:
    """The base tester: every test runs for every tiny configuration."""

    def test_forward_logits_at_input_size(self, config):
        model = _build(config).eval()
        n = model.valid_input_size(40) if hasattr(model, "valid_input_size") else 40
        with torch.no_grad():
            y = model(torch.randn(2, 3, n, n))
        assert y.shape == (2, K, *_expected(model, n, n))
        assert torch.isfinite(y).all()
        assert y.dtype == torch.float32

    def test_one_and_four_input_channels(self, config):
        for in_channels in (1, 4):
            model = _build(config, in_channels).eval()
            n = model.valid_input_size(32) if hasattr(model, "valid_input_size") else 32
            w = n + (0 if model.output_margin else 7)
            with torch.no_grad():
                y = model(torch.randn(1, in_channels, n, w))
            assert y.shape == (1, K, *_expected(model, n, w))

    def test_any_size(self, config):
        model = _build(config).eval()
        sizes = [(224, 224), (227, 227), (61, 97)]
        if model.output_margin:  # valid padding: the nearest sizes it maps, minus its margin
            sizes = [(model.valid_input_size(h), model.valid_input_size(w)) for h, w in sizes]
        for h, w in sizes:
            with torch.no_grad():
                assert model(torch.randn(1, 3, h, w)).shape == (1, K, *_expected(model, h, w))

    def test_backward_reaches_every_parameter(self, config):
        model = _build(config).train()
        n = model.valid_input_size(32) if hasattr(model, "valid_input_size") else 32
        y = model(torch.randn(2, 3, n, n))
        target = torch.randint(0, K, y.shape[:1] + y.shape[2:])
        torch.nn.functional.cross_entropy(y, target).backward()
        missing = [k for k, p in model.named_parameters() if p.grad is None and not k.startswith("aux_")]
        assert not missing

    def test_save_load_identical_outputs(self, config, tmp_path):
        model = _build(config).eval()
        path = save_model(tmp_path / "m.pt", model)
        loaded = load_model(path)
        assert loaded.deepseg_arch == model.deepseg_arch
        x = torch.randn(1, 3, 32, 32) if not model.output_margin else torch.randn(1, 3, 92, 92)
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))

    def test_declares_the_model_contract(self, config):
        model = _build(config, in_channels=4).eval()
        assert isinstance(model, SegmentationNet)
        assert contract_of(model) is model
        assert model.in_channels == 4
        assert model.size_multiple >= 1
        assert all(layer.weight.shape[0] == K for layer in model.classifiers()[:1])
        n = model.valid_input_size(2 * model.size_multiple + 2 * model.output_margin)
        model.check_input((1, 4, n, n))
        with pytest.raises(DeepsegError, match="input channel"):
            model.check_input((1, 3, n, n))
        assert model.window_sizes(48)[0] >= 48

    def test_grow_head_keeps_the_old_classes(self, config, tmp_path):
        model = _build(config).eval()
        x = torch.randn(1, 3, *(2 * [model.valid_input_size(64)]))
        with torch.no_grad():
            before = model(x)
        grow_head(model, K + 2, ["bg", "a", "b", "c", "d"])
        assert model.deepseg_arch.num_classes == K + 2
        assert model.deepseg_meta.class_names == ["bg", "a", "b", "c", "d"]
        assert len(model.deepseg_meta.class_colors) == K + 2
        for layer in model.classifiers():
            assert layer.weight.shape[0] == K + 2 or layer.weight.shape[1] == K + 2
        with torch.no_grad():
            after = model(x)
        assert after.shape == (1, K + 2, *before.shape[2:])
        assert torch.allclose(after[:, :K], before, rtol=1e-4, atol=1e-4)
        loaded = load_model(save_model(tmp_path / "grown.pt", model))
        with torch.no_grad():
            assert torch.equal(loaded(x), after)
