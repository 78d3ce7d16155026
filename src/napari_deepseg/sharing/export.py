"""Export a napari-deepseg model as a bioimage.io model package (spec 0.5.x, ``bioimageio.spec``).

The package (a ``.zip``) holds:

- ``weights.pt``: the PyTorch state dict, with its architecture named as a library callable
  (:func:`napari_deepseg.models.bioimageio.build_network`), and ``weights.torchscript``:
  the traced network, which any bioimage.io runner loads without this package;
- ``test_input.npy`` (1, C, H, W) float32 raw image and ``test_output.npy`` (1, K, H', W')
  float32 class probabilities, computed here by napari-deepseg's own normalization and network;
- ``cover.png``: the test image beside its segmentation (2:1);
- ``README.md``: what the model does, what it was trained on, its measured accuracy, the command
  that made it and how to rebuild instances;
- ``rdf.yaml``: axes (batch, channel, y, x), the preprocessing that matches the model file's
  normalization, a softmax over the classes as postprocessing, class names as the output's
  channel names, the license, and under ``config.napari_deepseg`` the model file's metadata
  (architecture, normalization, instance post-processing parameters) for an exact round trip.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from .._files import atomic_path, guard_output
from ..errors import DeepsegError
from ..models.bioimageio import CONFIG_KEY, INPUT_ID, valid_input_size
from ..models.contract import contract_of
from ..models.modelfile import (
    FORMAT,
    INSTANCE_BOUNDARY,
    SCHEMA_VERSION,
    ModelMeta,
    has_distance,
    model_meta,
)
from ..progress import Progress
from .cover import write_cover
from .readme import readme_text
from .tensors import input_channel_names, output_descr, preprocessing, space_axes

PROJECT_URL = "https://github.com/napari-deepseg/napari-deepseg"
DEFAULT_AUTHORS = ("napari-deepseg developers",)
#: architecture papers cited by packages, by registered name prefix
_PAPERS = {
    "unet": ("Ronneberger, Fischer, Brox: U-Net (MICCAI 2015)", "10.1007/978-3-319-24574-4_28"),
    "fcn": (
        "Long, Shelhamer, Darrell: Fully convolutional networks (CVPR 2015)",
        "10.1109/CVPR.2015.7298965",
    ),
    "deeplab": ("Chen et al.: Encoder-decoder with atrous separable convolution (ECCV 2018)", None),
}
TEST_SIZE = 128


def export_bioimageio(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    test_image: np.ndarray | None = None,
    authors: Sequence[str] = DEFAULT_AUTHORS,
    license: str = "BSD-3-Clause",
    command: str | None = None,
    torchscript: bool = True,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write ``model`` as a bioimage.io model package (a ``.zip``), validated by ``bioimageio.spec``.

    Args:
        model: a module made by ``build_model`` or ``load_model`` (carries ``deepseg_arch`` and
            ``deepseg_meta``).
        path: the ``*.zip`` to write (atomically; an existing file only with ``overwrite``).
        test_image: a 2D image, (H, W) or (H, W, C), for the test tensors and the cover; a
            central crop of at most 256x256 is used. Default: a synthetic nuclei image.
        authors: names written as the package's authors.
        license: an SPDX licence id for the weights.
        command: the command that made the model (README); default: the model's provenance.
        torchscript: also write TorchScript weights (runners without napari-deepseg need them).
        overwrite: replace an existing ``path``; ``inputs``: files of this call ``path`` must not be.

    Returns:
        The package's path. Raises :class:`DeepsegError` with a one-line reason on failure.
    """
    arch = getattr(model, "deepseg_arch", None)
    if arch is None or arch.name == "bioimageio":  # another tool's package is shared as it came
        raise DeepsegError("only models made by napari-deepseg can be exported; this one has no architecture")
    path = guard_output(path, what="package", suffixes=(".zip",), inputs=tuple(inputs), overwrite=overwrite)
    authors, license = check_package_fields(authors, license)
    meta = model_meta(model).complete(arch.num_classes)
    net = _cpu_copy(model)
    raw = _test_input(test_image, arch.in_channels, net)
    with tempfile.TemporaryDirectory(prefix="deepseg-bioimageio-") as tmp:
        folder = Path(tmp)
        probs = _write_tensors(folder, net, meta, raw)
        torch.save(
            {k: v.float() if v.is_floating_point() else v for k, v in net.state_dict().items()},
            folder / "weights.pt",
        )
        if torchscript:
            _write_torchscript(folder / "weights.torchscript", net, raw.shape[1])
        write_cover(folder / "cover.png", raw[0], probs[0], meta)
        (folder / "README.md").write_text(readme_text(arch, meta, command, license))
        descr = _describe(folder, arch, meta, net, authors, license, torchscript)
        _save(descr, path)
    return path


def export_bioimageio_iter(
    model: nn.Module | str | os.PathLike, path: str | os.PathLike, **options: Any
) -> Generator[Progress, None, Path]:
    """:func:`export_bioimageio` as a generator for background workers (the Fine-tune widget).

    ``model`` may be a module or a model file; yields ``Progress("export", 0, 1)`` before the
    work and ``Progress("export", 1, 1)`` after it; returns the package's path.
    """
    from ..models import load_model

    yield Progress("export", 0, 1, message=f"exporting {Path(path).name}")
    module = model if isinstance(model, nn.Module) else load_model(model)
    written = export_bioimageio(module, path, **options)
    yield Progress("export", 1, 1, message=f"wrote {written.name}")
    return written


def check_package_fields(authors: Any, license: Any) -> tuple[tuple[str, ...], str]:
    """Authors (one name per entry: a single string is one author) and the SPDX licence id,
    checked before anything is written; one-line DeepsegError naming the fix."""
    from bioimageio.spec.model import v0_5 as bio

    names = (authors,) if isinstance(authors, str) else authors
    if (
        not isinstance(names, Sequence)
        or not names
        or not all(isinstance(a, str) and a.strip() for a in names)
    ):
        raise DeepsegError(f"authors={authors!r}: give a list of names, e.g. authors=['A. Researcher']")
    if not isinstance(license, str):
        raise DeepsegError(
            f"license={license!r}: give an SPDX licence id such as BSD-3-Clause, MIT or CC-BY-4.0"
        )
    try:
        bio.LicenseId(license)
    except ValueError:  # pydantic's ValidationError lists every SPDX id: not for users
        raise DeepsegError(
            f"license={license!r} is not an SPDX licence id; use e.g. BSD-3-Clause, MIT, Apache-2.0 "
            "or CC-BY-4.0 (the list: spdx.org/licenses)"
        ) from None
    return tuple(a.strip() for a in names), license


def _cpu_copy(model: nn.Module) -> nn.Module:
    import copy

    net = copy.deepcopy(model).cpu().float().eval()
    return net


def _test_input(image: np.ndarray | None, in_channels: int, net: nn.Module) -> np.ndarray:
    """(1, C, H, W) float32 raw values: a central crop, sized for the network."""
    if image is None:
        from ..samples import synthetic_nuclei

        image = synthetic_nuclei((TEST_SIZE, TEST_SIZE), seed=0)[0]
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise DeepsegError(f"test image of type {image.dtype}: give a real-valued image (integers or floats)")
    if image.size == 0:
        raise DeepsegError(f"test image of shape {image.shape} is empty; give a 2D image with pixels")
    bad = int(image.size - np.count_nonzero(np.isfinite(image)))
    if bad:
        raise DeepsegError(
            f"test image has {bad} NaN or infinite pixel(s) of {image.size}; give a finite image "
            "(the package's test input must be one any tool reproduces)"
        )
    if image.ndim == 2:
        image = image[None]
    elif image.ndim == 3 and image.shape[-1] in (1, 3, 4):
        image = np.moveaxis(image, -1, 0)
    else:
        raise DeepsegError(f"test image of shape {image.shape}: give a 2D image, (H, W) or (H, W, C)")
    if image.shape[0] != in_channels:
        image = (
            image[:3].mean(axis=0, keepdims=True)
            if in_channels == 1
            else np.repeat(image[:1], in_channels, 0)
        )
    side = valid_input_size(net, min(256, *image.shape[1:]))
    if side > min(image.shape[1:]):
        raise DeepsegError(
            f"test image {image.shape[1:]} is smaller than the network's smallest input {side}"
        )
    y0, x0 = (image.shape[1] - side) // 2, (image.shape[2] - side) // 2
    return np.ascontiguousarray(image[None, :, y0 : y0 + side, x0 : x0 + side], dtype=np.float32)


def _write_tensors(folder: Path, net: nn.Module, meta: ModelMeta, raw: np.ndarray) -> np.ndarray:
    """Test input and the probabilities napari-deepseg computes for it; returns the latter."""
    from ..inference.inputs import check_normalization, fixed_normalizer, percentile_normalizer

    spec = check_normalization(meta.normalization, raw.shape[1])
    norm = fixed_normalizer(spec, raw.shape[1]) or percentile_normalizer([raw[0]], spec["low"], spec["high"])
    with torch.no_grad():
        logits = net(torch.from_numpy(norm(raw[0])[None]))
    # a distance model's package gives its raw maps (no softmax over classes and distance alike)
    probs = (logits.float() if has_distance(meta) else torch.softmax(logits.float(), dim=1)).numpy()
    probs = probs.astype(np.float32)
    np.save(folder / "test_input.npy", raw)
    np.save(folder / "test_output.npy", probs)
    return probs


def _write_torchscript(path: Path, net: nn.Module, channels: int) -> None:
    """Trace the network and check the trace on a second input size (shapes must not be frozen)."""
    import warnings

    multiple = int(contract_of(net).size_multiple)
    sizes = [valid_input_size(net, 64), valid_input_size(net, 64 + 3 * max(multiple, 8))]
    gen = torch.Generator().manual_seed(0)
    examples = [torch.rand(1, channels, s, s, generator=gen) for s in sizes]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates tracing; runners still load it
        traced = torch.jit.trace(net, examples[0], check_trace=False)
        for x in examples:
            if not torch.allclose(traced(x), net(x), atol=1e-4, rtol=1e-4):
                raise DeepsegError(
                    f"the TorchScript trace of {net.deepseg_arch.name} is wrong at {x.shape[-1]} pixels; "
                    "export without TorchScript (torchscript=False, --no-torchscript)"
                )
    traced.save(str(path))


def _describe(folder, arch, meta: ModelMeta, net, authors, license, torchscript):
    from bioimageio.spec.model import v0_5 as bio

    space_in, space_out = space_axes(net)
    inputs = bio.InputTensorDescr(
        id=bio.TensorId(INPUT_ID),
        description="raw image, channels first; any numeric type, converted to float32",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=input_channel_names(arch, meta)), *space_in],
        test_tensor=bio.FileDescr(source=folder / "test_input.npy"),
        data=bio.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=preprocessing(meta, arch.in_channels),
    )
    outputs = output_descr(bio, folder, meta, space_out)
    weights = _weights(bio, folder, arch, torchscript)
    paper, doi = next((v for k, v in _PAPERS.items() if arch.name.startswith(k)), _PAPERS["unet"])
    cite = [bio.CiteEntry(text="napari-deepseg", url=bio.HttpUrl(PROJECT_URL))]
    cite.append(
        bio.CiteEntry(text=paper, doi=bio.Doi(doi))
        if doi
        else bio.CiteEntry(text=paper, url=bio.HttpUrl("https://arxiv.org/abs/1802.02611"))
    )
    return bio.ModelDescr(
        name=_name(meta, arch),
        description=(meta.description or f"{arch.name} {meta.task} segmentation made with napari-deepseg")[
            :1000
        ],
        authors=[bio.Author(name=a) for a in authors],
        cite=cite,
        license=bio.LicenseId(license),
        git_repo=bio.HttpUrl(PROJECT_URL),
        documentation=bio.FileDescr(source=folder / "README.md"),
        covers=[bio.FileDescr(source=folder / "cover.png")],
        tags=["napari-deepseg", "segmentation", "2d", "pytorch", arch.name, meta.task],
        inputs=[inputs],
        outputs=[outputs],
        weights=weights,
        config=bio.Config(**{CONFIG_KEY: _plain(_config(arch, meta))}),
    )


def _weights(bio, folder, arch, torchscript: bool):
    """The package's weights: the state dict rebuilt by ``build_network`` (and TorchScript)."""
    torch_version = bio.Version(torch.__version__.split("+")[0])
    return bio.WeightsDescr(
        pytorch_state_dict=bio.PytorchStateDictWeightsDescr(
            source=folder / "weights.pt",
            architecture=bio.ArchitectureFromLibraryDescr(
                callable=bio.Identifier("build_network"),
                import_from="napari_deepseg.models.bioimageio",
                kwargs=_plain(arch.to_dict()),
            ),
            pytorch_version=torch_version,
        ),
        torchscript=(
            bio.TorchscriptWeightsDescr(
                source=folder / "weights.torchscript",
                pytorch_version=torch_version,
                parent="pytorch_state_dict",
            )
            if torchscript
            else None
        ),
    )


def _name(meta: ModelMeta, arch) -> str:
    name = meta.name or arch.name
    return name if len(name) >= 5 else f"napari-deepseg {name}"


def _config(arch, meta: ModelMeta) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "architecture": arch.to_dict(),
        "meta": asdict(meta),
        "instance_postprocessing": (
            {
                "method": "seeded watershed on the interior and boundary probabilities "
                "(napari_deepseg.inference.instances_from_probabilities)",
                "classes": {"interior": 1, "boundary": 2},
                "parameters": dict(meta.postprocess),
            }
            if meta.task == INSTANCE_BOUNDARY
            else None
        ),
    }


def _plain(data: Any) -> Any:
    """JSON-plain copy (tuples to lists, numpy scalars to numbers): YAML-safe for rdf.yaml."""
    return json.loads(json.dumps(data, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _save(descr: Any, path: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".partial.zip") as tmp:
        save_bioimageio_package(descr, output_path=tmp)
