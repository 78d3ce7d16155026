"""Sharing models in the formats the field uses: bioimage.io model packages (spec 0.5).

>>> from napari_deepseg.sharing import export_bioimageio
>>> export_bioimageio(model, "nuclei.zip")

Reading packages back lives with the other model files (:mod:`napari_deepseg.models.bioimageio`),
so ``load_model("nuclei.zip")`` works wherever a model file does.
"""

from .export import export_bioimageio, export_bioimageio_iter

__all__ = ["export_bioimageio", "export_bioimageio_iter"]
