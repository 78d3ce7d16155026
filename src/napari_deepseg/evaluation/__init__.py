"""Segmentation metrics: IoU, Dice, instance matching and DSB average precision.

```python
from napari_deepseg.evaluation import match_instances, pool_scores, semantic_scores
s = match_instances(pred_labels, true_labels)     # InstanceScores at IoU 0.5..0.95
s.at(0.5), s.mean_ap                               # AP@0.5, DSB mean AP
pool_scores([s1, s2]).at(0.5)                      # pooled over images (sum TP/FP/FN)
```
"""

from .metrics import (
    DSB_THRESHOLDS,
    InstanceScores,
    OverlapTable,
    confusion_matrix,
    foreground_scores,
    match_instances,
    overlap_table,
    pool_foreground,
    pool_scores,
    pool_semantic,
    scores_from_confusion,
    semantic_scores,
)

__all__ = [
    "DSB_THRESHOLDS",
    "InstanceScores",
    "OverlapTable",
    "confusion_matrix",
    "foreground_scores",
    "match_instances",
    "overlap_table",
    "pool_foreground",
    "pool_scores",
    "pool_semantic",
    "scores_from_confusion",
    "semantic_scores",
]
