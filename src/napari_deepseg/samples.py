"""Synthetic sample data: fluorescent nuclei with ground truth (numpy/scipy only).

Used by napari's File > Open Sample, by ``deepseg demo`` and by the tests, so a new user can try
the plugin at once and tests have realistic inputs without downloading anything.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int | None = None,
    radius: tuple[float, float] = (6.0, 12.0),
    seed: int = 0,
    snr: float = 12.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a fluorescence-like nuclei image and its instance labels.

    Nuclei are ellipses with random size, orientation and brightness and a little texture,
    blurred by a Gaussian PSF, on an uneven background, with Poisson and read noise.

    Args:
        shape: (H, W) of the image.
        n_nuclei: number of nuclei; default about one per 900 pixels.
        radius: range of the ellipses' semi-axes in pixels.
        seed: random seed; the same seed gives the same data.
        snr: peak signal over read-noise standard deviation.

    Returns:
        image: (H, W) uint16 image.
        labels: (H, W) uint16 instance labels, 0 = background, 1..N = nuclei (no overlaps).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    if n_nuclei is None:
        n_nuclei = max(1, (h * w) // 900)
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    placed = 0
    for _ in range(n_nuclei * 20):
        if placed == n_nuclei:
            break
        a, b = rng.uniform(*radius, size=2)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        theta = rng.uniform(0, np.pi)
        cos, sin = np.cos(theta), np.sin(theta)
        r = int(max(a, b)) + 2
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        region = labels[y0:y1, x0:x1]
        if not inside.any() or (region[inside] > 0).any():
            continue
        placed += 1
        region[inside] = placed
        brightness = rng.uniform(0.5, 1.0)
        texture = 1.0 + 0.15 * rng.standard_normal(inside.sum())
        signal[y0:y1, x0:x1][inside] = brightness * texture
    blurred = ndi.gaussian_filter(signal, sigma=1.2)
    background = 0.08 + 0.06 * np.sin(xx / w * np.pi) * np.cos(yy / h * np.pi)
    photons = rng.poisson((blurred + background) * 400.0).astype(np.float32)
    read_noise = rng.normal(0.0, 400.0 / snr, size=shape).astype(np.float32)
    image = np.clip(photons + read_noise + 100.0, 0, 65535).astype(np.uint16)
    return image, labels
