"""File > Open Sample: synthetic fluorescent nuclei with their ground truth."""

from __future__ import annotations

from ..samples import synthetic_nuclei


def nuclei_sample() -> list[tuple]:
    """A 512x512 synthetic nuclei image and its instance labels, as napari layer data."""
    image, labels = synthetic_nuclei((512, 512), seed=1)
    return [
        (image, {"name": "nuclei (synthetic)", "colormap": "gray"}, "image"),
        (labels, {"name": "nuclei ground truth", "opacity": 0.4, "visible": False}, "labels"),
    ]
