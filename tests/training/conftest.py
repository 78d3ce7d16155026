"""One intra-op thread for the training tests: tiny models gain nothing from more, and on a
shared, oversubscribed CPU OpenMP's spinning threads make every step several times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
