"""Architectures, registry and model files (public API).

>>> from napari_deepseg.models import build_model, list_models, load_model, save_model
"""

from .modelfile import ModelMeta, bundled_models, load_model, model_meta, save_model
from .registry import ArchSpec, build_model, register_model, registered_models


def list_models() -> list[dict]:
    """Registered architectures: name and one-line description (see ``deepseg models``)."""
    return [
        {"name": e.name, "description": e.description, "pretrained": list(e.pretrained)}
        for e in registered_models().values()
    ]


__all__ = [
    "ArchSpec",
    "ModelMeta",
    "build_model",
    "bundled_models",
    "list_models",
    "load_model",
    "model_meta",
    "register_model",
    "registered_models",
    "save_model",
]
