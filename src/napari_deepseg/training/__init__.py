"""Fine-tuning on corrected labels (dense masks or sparse scribbles): core API.

>>> from napari_deepseg.training import finetune, finetune_iter
>>> result = finetune([(image, labels)], "nuclei", epochs=10, output="my_model.pt")

See docs/training.md for label conventions, checkpoints and the events ``finetune_iter`` yields.
"""

from .config import FinetuneConfig, FinetuneResult
from .data import TrainingPair
from .labels import IGNORE, make_target
from .loop import finetune, finetune_iter

__all__ = [
    "IGNORE",
    "FinetuneConfig",
    "FinetuneResult",
    "TrainingPair",
    "finetune",
    "finetune_iter",
    "make_target",
]
