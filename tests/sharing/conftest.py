"""Fixtures for bioimage.io packages: a tiny exported model and a 'foreign' package built here."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_deepseg.models import ModelMeta, build_model, save_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.sharing import export_bioimageio


def tiny_model(distance: bool = False) -> nn.Module:
    """A 3-class instance-boundary U-Net (base 4, depth 2) with full metadata and random weights
    (and a distance output after the classes with ``distance``)."""
    torch.manual_seed(0)
    options = {"extra_outputs": 1} if distance else {}
    model = build_model("unet", in_channels=1, num_classes=3, base=4, depth=2, **options)
    model.deepseg_meta = ModelMeta(
        name="tiny nuclei",
        task="instance-boundary",
        outputs=["classes", "distance"] if distance else ["classes"],
        postprocess={"seed_method": "distance" if distance else "maxima", "seed_sigma": 2.0, "min_size": 8},
        provenance={
            "data": "synthetic nuclei, 4 images",
            "steps": 10,
            "val_metrics": {"all": {"ap": {"0.5": 0.61}, "mean_ap": 0.4, "fg_iou": 0.8, "images": 2}},
            "command": "deepseg train --images a --labels b -o tiny.pt",
        },
    ).complete(3)
    return model.eval()


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> tuple[nn.Module, Path]:
    """(model, package path): the tiny model exported once per session."""
    folder = tmp_path_factory.mktemp("package")
    model = tiny_model()
    save_model(folder / "tiny.pt", model)
    return model, export_bioimageio(model, folder / "tiny.zip")


class TwoClassNet(nn.Module):
    """Another tool's network: a 3x3 conv from 1 channel to 2 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[1, 0, 1, 1] = 8.0
            self.conv.bias.copy_(torch.tensor([0.0, -4.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def build_foreign_package(
    folder: Path, *, preprocessing: str = "scale_range", weights: str = "torchscript"
) -> Path:
    """A bioimage.io 0.5 package as another tool writes it (no napari-deepseg config)."""
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as bio

    folder.mkdir(parents=True, exist_ok=True)
    net = TwoClassNet().eval()
    raw = synthetic_nuclei((64, 64), seed=5)[0].astype(np.float32)[None, None]
    lo, hi = np.percentile(raw, (1.0, 99.8))
    with torch.no_grad():
        logits = net(torch.from_numpy(((raw - lo) / (hi - lo + 1e-6)).astype(np.float32)))
        np.save(folder / "in.npy", raw)
        np.save(folder / "out.npy", torch.softmax(logits, 1).numpy())
    if preprocessing == "scale_range":
        pre = [
            bio.ScaleRangeDescr(
                kwargs=bio.ScaleRangeKwargs(
                    axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=1.0, max_percentile=99.8
                )
            )
        ]
    else:
        pre = [
            bio.ZeroMeanUnitVarianceDescr(
                kwargs=bio.ZeroMeanUnitVarianceKwargs(axes=[bio.AxisId("y"), bio.AxisId("x")])
            )
        ]
    if weights == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates tracing
            torch.jit.trace(net, torch.rand(1, 1, 32, 32)).save(str(folder / "net.ts"))
        wdescr = bio.WeightsDescr(
            torchscript=bio.TorchscriptWeightsDescr(
                source=folder / "net.ts", pytorch_version=bio.Version("2.0")
            )
        )
    else:
        (folder / "arch.py").write_text("import torch\nclass Net(torch.nn.Module):\n    pass\n")
        torch.save(net.state_dict(), folder / "net.pt")
        arch = bio.ArchitectureFromFileDescr(source=folder / "arch.py", callable=bio.Identifier("Net"))
        wdescr = bio.WeightsDescr(
            pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
                source=folder / "net.pt", architecture=arch, pytorch_version=bio.Version("2.0")
            )
        )
    space_in = [
        bio.SpaceInputAxis(id=bio.AxisId(a), size=bio.ParameterizedSize(min=16, step=8)) for a in "yx"
    ]
    space_out = [
        bio.SpaceOutputAxis(
            id=bio.AxisId(a), size=bio.SizeReference(tensor_id=bio.TensorId("image"), axis_id=bio.AxisId(a))
        )
        for a in "yx"
    ]
    descr = bio.ModelDescr(
        name="other tool cells",
        description="a two-class cell segmenter from another tool",
        authors=[bio.Author(name="Someone Else")],
        cite=[bio.CiteEntry(text="other tool", doi=bio.Doi("10.1000/xyz123"))],
        license=bio.LicenseId("MIT"),
        documentation=bio.FileDescr(source=_readme(folder)),
        inputs=[
            bio.InputTensorDescr(
                id=bio.TensorId("image"),
                axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=["dapi"]), *space_in],
                test_tensor=bio.FileDescr(source=folder / "in.npy"),
                preprocessing=pre,
            )
        ],
        outputs=[
            bio.OutputTensorDescr(
                id=bio.TensorId("scores"),
                axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=["bg", "cell"]), *space_out],
                test_tensor=bio.FileDescr(source=folder / "out.npy"),
                postprocessing=[bio.SoftmaxDescr(kwargs=bio.SoftmaxKwargs())],
            )
        ],
        weights=wdescr,
    )
    return save_bioimageio_package(descr, output_path=folder / f"other_{preprocessing}_{weights}.zip")


def _readme(folder: Path) -> Path:
    path = folder / "README.md"
    path.write_text("# other tool cells\n")
    return path
