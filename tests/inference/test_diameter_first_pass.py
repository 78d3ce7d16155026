"""The diameter estimate's first pass measures only the scales its rule reads (issue 36)."""

from __future__ import annotations

import itertools

import pytest

from napari_deepseg.inference.rescaled import first_guess, first_pass
from napari_deepseg.inference.scale import FIRST_SCALES

VALUES = (None, 6.0, 15.9, 16.0, 16.1, 30.0)


@pytest.mark.parametrize("diameters", list(itertools.product(VALUES, repeat=len(FIRST_SCALES))))
def test_the_same_guess_as_with_every_scale(diameters):
    everything = dict(zip(sorted(FIRST_SCALES), diameters))
    asked: list[float] = []

    def measure(scale: float) -> float | None:
        asked.append(scale)
        return everything[scale]

    seen = first_pass(measure, 16.0)
    assert first_guess(seen, 16.0) == first_guess(everything, 16.0)
    assert len(asked) == len(set(asked)) == len(seen)
    if everything[0.5] is not None and (everything[0.5] < 16.0 or everything[0.25] is not None):
        assert len(asked) == 2  # one crop of three saved


def test_small_objects_skip_the_coarse_scale():
    asked: list[float] = []
    seen = first_pass(lambda s: asked.append(s) or 10.0 * s / 0.5, 16.0)
    assert asked == [0.5, 1.0]
    assert first_guess(seen, 16.0) == pytest.approx((0.8, 20.0))  # objects of 20 px: scale 16 / 20
