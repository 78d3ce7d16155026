"""Architectures, registry and model files (public API).

>>> from napari_deepseg.models import build_model, list_models, load_model, save_model
"""

from functools import cache
from typing import Any

from .catalog import (
    CatalogEntry,
    bundled_description,
    bundled_models,
    load_model,
    model_catalog,
    user_models_dir,
)
from .contract import SegmentationNet, class_count, contract_of
from .macs import count_macs, model_macs
from .modelfile import ModelMeta, model_meta, save_model
from .registry import ArchSpec, build_model, pretrained_kinds, register_model, registered_models

TABLE_SIZE, TABLE_IN_CHANNELS, TABLE_CLASSES = 512, 3, 21


def list_models(variants: bool = False) -> list[dict[str, Any]]:
    """Registered architectures (see ``deepseg models``), one dict per row.

    Keys: ``name``, ``options`` (non-default options of the row; ``{}`` = builder defaults),
    ``description``, ``params`` and ``gmac`` (for a 512x512 image, 3 input channels, 21 classes,
    counted on the meta device), ``pretrained`` (the weights that exist for this row: ``"coco"``,
    ``"imagenet"``; see :mod:`.pretrained`). ``variants=True`` adds
    a row per notable option set (other backbones or encoders).
    """
    rows = []
    for entry in registered_models().values():
        for options in ({}, *(entry.variants if variants else ())):
            params, macs = _figures(entry.name, tuple(sorted(options.items())))
            rows.append(
                {
                    "name": entry.name,
                    "options": dict(options),
                    "description": entry.description,
                    "params": params,
                    "gmac": macs / 1e9,
                    "pretrained": pretrained_kinds(entry.name, options),
                }
            )
    return rows


@cache
def _figures(name: str, options: tuple[tuple[str, Any], ...]) -> tuple[int, int]:
    return model_macs(
        name, size=TABLE_SIZE, in_channels=TABLE_IN_CHANNELS, num_classes=TABLE_CLASSES, **dict(options)
    )


__all__ = [
    "ArchSpec",
    "CatalogEntry",
    "ModelMeta",
    "SegmentationNet",
    "build_model",
    "bundled_description",
    "bundled_models",
    "class_count",
    "contract_of",
    "count_macs",
    "list_models",
    "load_model",
    "model_catalog",
    "model_macs",
    "model_meta",
    "register_model",
    "registered_models",
    "save_model",
    "user_models_dir",
]
