"""The package's cover image: the test image beside its segmentation (2:1, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models.modelfile import INSTANCE_BOUNDARY, ModelMeta


def _gray8(raw: np.ndarray) -> np.ndarray:
    """(C, H, W) raw values -> (H, W, 3) uint8, stretched between the 1st and 99.8th percentiles."""
    img = raw.mean(axis=0) if raw.shape[0] != 3 else np.moveaxis(raw, 0, -1)
    low, high = np.percentile(img, (1.0, 99.8))
    scaled = np.clip((img - low) / max(high - low, 1e-9), 0, 1)
    rgb = scaled if scaled.ndim == 3 else np.repeat(scaled[..., None], 3, axis=-1)
    return (rgb * 255).astype(np.uint8)


def _hex_rgb(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i : i + 2], 16) for i in (0, 2, 4)], np.float32)


def segmentation_rgb(probs: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """(K, H, W) probabilities -> (H, W, 3) uint8: instances in random colours for
    instance-boundary models (the model's own post-processing), else the class colours."""
    if meta.task == INSTANCE_BOUNDARY:
        from ..inference import instances_from_probabilities
        from ..inference.engine import POSTPROCESS_KEYS

        settings = {k: v for k, v in meta.postprocess.items() if k in POSTPROCESS_KEYS}
        labels = instances_from_probabilities(probs.astype(np.float32), **settings)
        rng = np.random.default_rng(0)
        palette = rng.integers(60, 256, (int(labels.max()) + 1, 3)).astype(np.uint8)
        palette[0] = 0
        return palette[labels]
    colors = np.stack([_hex_rgb(c) for c in meta.class_colors]).astype(np.uint8)
    return colors[np.argmax(probs, axis=0)]


def write_cover(path: Path, raw: np.ndarray, probs: np.ndarray, meta: ModelMeta) -> Path:
    """Write ``[image | image with its segmentation blended in]`` as a PNG (width = 2 x height).

    Args:
        raw: (C, H, W) test input; probs: (K, H', W') class probabilities (H' <= H for
            valid-padding networks: the image is cropped to match).
    """
    import imageio.v3 as iio

    h, w = probs.shape[1:]
    dy, dx = (raw.shape[1] - h) // 2, (raw.shape[2] - w) // 2
    image = _gray8(raw[:, dy : dy + h, dx : dx + w])
    seg = segmentation_rgb(probs, meta)
    blended = np.where(seg.any(axis=-1, keepdims=True), 0.4 * image + 0.6 * seg, image).astype(np.uint8)
    iio.imwrite(path, np.concatenate([image, blended], axis=1))
    return path
