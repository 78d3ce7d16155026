"""Exclusive time per post-processing step, for ``benchmarks/postprocess_speed.py``: the step
each function of the code before (``_postprocess_before``) and now (the package) counts for."""

from __future__ import annotations

import time
from contextlib import contextmanager

from napari_deepseg.inference import postprocess, probability
from napari_deepseg.inference.gridmap import GridMap

try:  # run as a script (benchmarks/ on sys.path) or imported as a package module
    import _postprocess_before as before
except ImportError:
    from benchmarks import _postprocess_before as before

STEPS = (
    "class map",
    "softmax + float16 rows",
    "foreground + relief",
    "groups + bands/sheets",
    "seeds (h-maxima)",
    "watershed",
    "small objects + renumbering",
    "grid mapping + outlines",
)


class Steps:
    """Exclusive time per step of wrapped functions (a wrapped call inside another counts for
    its own step only)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.stack: list[float] = []

    def wrap(self, owner, name: str, step: str, saved: list) -> None:
        func = getattr(owner, name)
        saved.append((owner, name, func))

        def timed(*args, **kwargs):
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                inner = self.stack.pop()
                self.times[step] = self.times.get(step, 0.0) + spent - inner
                if self.stack:
                    self.stack[-1] += spent

        setattr(owner, name, timed)


OLD_STEPS = {
    "class_map": "class map",
    "finalize_softmax": "softmax + float16 rows",
    "write_rows": "softmax + float16 rows",
    "_foreground": "foreground + relief",
    "_relief": "foreground + relief",
    "instances_from_probabilities": "groups + bands/sheets",  # its own lines: label, find_objects, bands
    "dynamic_maxima": "seeds (h-maxima)",
    "_group_instances": "watershed",
    "_remove_small": "small objects + renumbering",
    "consecutive": "small objects + renumbering",
    "grid_labels": "grid mapping + outlines",
}
NEW_STEPS = [
    (postprocess, "class_map", "class map"),
    (probability, "softmax", "softmax + float16 rows"),
    (probability, "write_float16", "softmax + float16 rows"),
    (postprocess, "_planes", "foreground + relief"),
    (postprocess, "_smooth", "foreground + relief"),
    (postprocess, "instances_from_probabilities", "groups + bands/sheets"),
    (postprocess, "sheet_of", "groups + bands/sheets"),
    (postprocess, "dynamic_maxima", "seeds (h-maxima)"),
    (postprocess, "_group_instances", "watershed"),
    (postprocess, "_remove_small", "small objects + renumbering"),
    (postprocess, "_in_raster_order", "small objects + renumbering"),
    (GridMap, "instances", "grid mapping + outlines"),
]


@contextmanager
def timed_steps(steps: Steps, new: bool):
    saved: list = []
    if new:
        for owner, name, step in NEW_STEPS:
            steps.wrap(owner, name, step, saved)
    else:
        for name, step in OLD_STEPS.items():
            steps.wrap(before, name, step, saved)
    try:
        yield
    finally:
        for owner, name, func in reversed(saved):
            setattr(owner, name, func)
