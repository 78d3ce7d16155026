"""The object-size decision of the last auto run, reused by the next auto run of the same image.

A run with the object diameter on auto estimates it first (a few network passes over crops of
the image: :func:`napari_deepseg.inference.object_size`). Pressing Run again on the same image
with the same model and channels, say after changing a post-processing field, gives the same
estimate, so the widget passes the remembered diameter instead of measuring again (issue 36).
The image is recognised by its data array itself (held weakly) with its shape and axes: a new
layer, a new model file or other channels start a new estimate. An array changed in place
keeps the remembered value; the estimate button re-measures on demand.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Any

from .segment_run import RunPlan

#: the source text a reused decision reports ("object diameter 18.0 px (<this>; ...)")
REUSED = "estimated by the previous run of this image, reused"


class SizeMemory:
    """The last estimated decision and what it was measured on."""

    def __init__(self) -> None:
        self._data: Any = None  # weak reference to the image array
        self._key: tuple[Any, ...] | None = None
        self._decision: dict[str, Any] | None = None

    @staticmethod
    def _key_of(plan: RunPlan) -> tuple[Any, ...]:
        snap = plan.snapshot
        return (tuple(snap.data.shape), snap.axes, plan.choice.cache_key(), plan.options.channels)

    def _matches(self, plan: RunPlan) -> bool:
        return (
            self._data is not None and self._data() is plan.snapshot.data and self._key == self._key_of(plan)
        )

    def remember(self, plan: RunPlan, sizing: dict[str, Any] | None) -> None:
        """After a run: keep its decision when it estimated the object size itself."""
        if plan.options.object_diameter is not None or not sizing or sizing.get("source") != "estimated":
            return
        try:
            self._data = weakref.ref(plan.snapshot.data)
        except TypeError:  # an array type that cannot be referenced weakly: nothing kept
            self._data = None
            return
        self._key, self._decision = self._key_of(plan), dict(sizing)

    def applied(self, plan: RunPlan) -> tuple[RunPlan, bool]:
        """``plan`` with the remembered object diameter when it runs on auto over the same image,
        model and channels as the remembered run; and whether it was applied."""
        if plan.options.object_diameter is not None or self._decision is None or not self._matches(plan):
            return plan, False
        options = plan.options.replace(object_diameter=self._decision["object_diameter"])
        return replace(plan, options=options), True
