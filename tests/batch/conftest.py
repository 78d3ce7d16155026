"""Batch fixtures: a fake engine (the tiny model file and image folder are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from . import fakes


@pytest.fixture
def fake():
    """The fake engine with its call log cleared."""
    fakes.CALLS.clear()
    return fakes.fake_segment_iter


def expected_classes(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image) > 100).astype(np.uint8)
