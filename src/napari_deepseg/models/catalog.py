"""The one model list, and loading a model by name or path.

Every picker (the Segment, Fine-tune and Batch widgets) and ``deepseg models`` list
:func:`model_catalog`: the bundled model files (``nuclei`` first), the ready pretrained models (whole
torchvision segmentation models; ``weights_cached`` says whether their weights are already in
torch's hub cache, else they are fetched on first use), and the model files in the user models
folder (:func:`user_models_dir`: where the Fine-tune widget saves by default and
``deepseg train`` can write). The list is read afresh on every call, so a model saved there by
any process appears at the next call.

:func:`load_model` loads any of them by name, or a model file by path.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from .. import _checks
from .._files import user_dir
from ..errors import ModelFileError
from .bioimageio import is_package, load_package
from .modelfile import ModelMeta, load_model_file, read_model_file
from .pretrained import IMAGENET_NORMALIZATION, VOC_CLASSES, coco_checkpoint_path, ensure_cached, weights_for
from .registry import build_model

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
MODELS_DIR_ENV = "DEEPSEG_MODELS_DIR"
DEFAULT_MODEL = "nuclei"

# name -> (architecture, options, description); load with load_model(name)
READY_MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    "deeplabv3_resnet101_coco": (
        "deeplabv3", {"backbone": "resnet101"}, "DeepLabv3-ResNet101, COCO (VOC classes)"
    ),
    "deeplabv3_resnet50_coco": (
        "deeplabv3", {"backbone": "resnet50"}, "DeepLabv3-ResNet50, COCO (VOC classes)"
    ),
    "deeplabv3_mobilenet_v3_large_coco": (
        "deeplabv3", {"backbone": "mobilenet_v3_large"}, "DeepLabv3-MobileNetV3-Large, COCO (VOC classes)"
    ),
    "fcn_resnet50_coco": ("fcn_resnet50", {}, "FCN-ResNet50 (torchvision), COCO (VOC classes)"),
    "fcn_resnet101_coco": ("fcn_resnet101", {}, "FCN-ResNet101 (torchvision), COCO (VOC classes)"),
}  # fmt: skip

Kind = Literal["bundled", "pretrained", "user", "file"]


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the list.

    Attributes:
        kind: ``"bundled"`` (shipped in the package), ``"pretrained"`` (a ready torchvision
            model), ``"user"`` (a file in the user models folder) or ``"file"`` (any other file).
        ref: the bundled or pretrained model's name, or the file's path.
        description: one line (ready models) or "".
        weights_cached: for ready models, whether the weights are already in torch's hub cache.
    """

    kind: Kind
    ref: str
    description: str = ""
    weights_cached: bool = True

    @property
    def name(self) -> str:
        """The model's short name (file stem for files)."""
        return Path(self.ref).stem if self.kind in ("user", "file") else self.ref


def bundled_models() -> dict[str, Path]:
    """Model files shipped in the package, by name (file stem)."""
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.pt"))}


def user_models_dir() -> Path:
    """The user models folder: ``$DEEPSEG_MODELS_DIR``, else the platform's user data folder
    (``~/.local/share/napari-deepseg/models`` on Linux). Not created here."""
    return user_dir("data", MODELS_DIR_ENV, "models")


def _user_files() -> dict[str, Path]:
    """Every ``*.pt`` entry of the user models folder (loadable or not), by name (file stem)."""
    folder = user_models_dir()
    return {p.stem: p for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}


def user_models() -> dict[str, Path]:
    """The loadable model files (``*.pt``) in the user models folder, by name (file stem); the
    others are reported by :func:`user_model_problems`."""
    return {name: p for name, p in _user_files().items() if _problem_of(p) is None}


def user_model_problems() -> list[str]:
    """One line per problem of the user models folder: a file where the folder should be, or a
    ``.pt`` file that does not load (damaged, a link to nothing, code inside); [] when all is well."""
    folder = user_models_dir()
    if folder.exists() and not folder.is_dir():
        return [
            f"the models folder {folder} ({MODELS_DIR_ENV}) is a file; point {MODELS_DIR_ENV} at a folder"
        ]
    return [
        f"{path} is not listed: {reason}" for path in _user_files().values() if (reason := _problem_of(path))
    ]


def _problem_of(path: Path) -> str | None:
    """Why the model file ``path`` does not load (None when it does), read once per file version."""
    try:
        stat = path.stat()
    except OSError:
        return "a link to a missing file or an unreadable entry"
    return _problem(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _problem(path: str, _stamp: int, _size: int) -> str | None:
    try:
        read_model_file(Path(path))
    except ModelFileError as err:
        text = str(err).split("; ")[0]
        return text.replace(f"{path} ", "", 1).replace(path, "it")
    except (OSError, ValueError, TypeError, KeyError):
        return "not a readable model file"
    return None


def bundled_description(name: str) -> str:
    """The bundled model's one-line description from its file ("" when unreadable), read once
    per file version: what images it fits, for the model pickers."""
    path = bundled_models().get(name)
    if path is None:
        return ""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return ""
    return _description(str(path), stamp)


@functools.lru_cache(maxsize=16)
def _description(path: str, _stamp: int) -> str:
    try:
        meta = json.loads(read_model_file(Path(path)).get("meta") or "{}")
    except (ModelFileError, ValueError, TypeError):
        return ""
    return str(meta.get("description", ""))


def user_model_path(name: str) -> Path:
    """Where a model called ``name`` is saved in the user models folder (``NAME.pt``)."""
    return user_models_dir() / f"{Path(name).stem or 'model'}.pt"


def ready_weights_cached(name: str) -> bool:
    """Whether the ready model ``name``'s weights are already in torch's hub cache."""
    arch, options, _ = READY_MODELS[name]
    return coco_checkpoint_path(arch, _backbone(arch, options)).is_file()


def model_catalog(*, include_absent: bool = False) -> list[CatalogEntry]:
    """The model list: bundled (``nuclei`` first), ready pretrained models whose weights are in
    torch's hub cache (all of them with ``include_absent``), then the user folder's files."""
    bundled = sorted(bundled_models(), key=lambda name: (name != DEFAULT_MODEL, name))
    out = [CatalogEntry("bundled", name) for name in bundled]
    ready = [
        CatalogEntry("pretrained", name, description, ready_weights_cached(name))
        for name, (_, _, description) in READY_MODELS.items()
    ]
    out += [e for e in ready if include_absent or e.weights_cached]
    out += [CatalogEntry("user", str(path)) for path in user_models().values()]
    return out


def resolve_model_path(path_or_name: str | os.PathLike) -> Path:
    """A model file path from a path, a bundled model's name or a user-folder model's name."""
    if isinstance(path_or_name, nn.Module):
        raise _checks.ArgumentTypeError(
            "model must be a model file or name here, not a module in memory; save it first with "
            "save_model('my_model.pt', model) and pass that file"
        )
    _checks.path_like(path_or_name, "model", "a model file or a model name such as 'nuclei'")
    if isinstance(path_or_name, str) and not Path(path_or_name).exists():
        for table in (bundled_models(), _user_files()):  # a damaged user file says why when loaded
            if path_or_name in table:
                return table[path_or_name]
    path = Path(path_or_name)
    if path.is_dir() and not path.name.endswith((".zarr", ".zip")):
        raise ModelFileError(f"model file {path} is a folder, not a file; give the model file (.pt) in it")
    if not path.exists():
        names = ", ".join([*bundled_models(), *READY_MODELS, *user_models()]) or "none"
        raise ModelFileError(f"model file {path} not found; give an existing file or a model name ({names})")
    return path


def load_model(path_or_name: str | os.PathLike) -> nn.Module:
    """Load a model file, a bioimage.io package (``*.zip``, see :mod:`.bioimageio`) or a model of
    :func:`model_catalog` by name, in eval mode on the CPU.

    The module carries ``model.deepseg_meta`` (:class:`ModelMeta`) and ``model.deepseg_arch``.
    Names of ready pretrained models (``"deeplabv3_resnet101_coco"``, see :data:`READY_MODELS`)
    load torchvision's weights from the torch hub cache (downloading them once); offline the
    error names the file to place there. Raises :class:`~napari_deepseg.errors.ModelFileError`
    with a one-line reason on any problem, and a one-line ``TypeError`` when ``path_or_name`` is
    not a str or path.
    """
    _checks.path_like(path_or_name, "load_model's argument", "a model file or a model name such as 'nuclei'")
    name = str(path_or_name)
    if name in READY_MODELS and not Path(name).exists() and name not in bundled_models():
        return load_ready_model(name)
    path = resolve_model_path(path_or_name)
    if (path.is_dir() or path.suffix.lower() in (".zip", ".yaml")) and is_package(path):
        return load_package(path)
    return load_model_file(path)


def load_ready_model(
    name: str, weights_file: str | os.PathLike | None = None, progress: bool = True
) -> nn.Module:
    """A ready pretrained model (see :data:`READY_MODELS`) in eval mode, with its ModelMeta.

    The weights are fetched first, so offline the error comes before any model is built.
    """
    arch, options, description = READY_MODELS[name]
    weights = weights_for("coco", arch, _backbone(arch, options))
    if weights_file is None:
        weights_file = ensure_cached(weights, progress)
    model = build_model(
        arch, in_channels=3, num_classes=21, pretrained="coco", weights_file=weights_file, **options
    )
    model.deepseg_meta = ModelMeta(
        name=name, description=description, task="semantic", class_names=list(VOC_CLASSES),
        normalization=dict(IMAGENET_NORMALIZATION), channel_mode="rgb",
        provenance={"weights": f"torchvision {weights}", "data": "COCO train2017, 20 VOC categories",
                    "train_crop": 520},
    ).complete(21)  # fmt: skip
    return model.eval()


def _backbone(arch: str, options: dict[str, Any]) -> str:
    return options.get("backbone", arch.split("_")[-1])
