"""Loss honours the ignore mask: unannotated / unreviewed pixels do not change it."""

from __future__ import annotations

import numpy as np
import torch

from napari_deepseg.training import IGNORE, make_target
from napari_deepseg.training.losses import segmentation_loss, soft_dice_loss


def _logits_and_target(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 16, 16, generator=g)
    target = torch.randint(0, 3, (2, 16, 16), generator=g)
    target[:, :, :8] = IGNORE
    return logits, target


def test_loss_ignores_predictions_on_ignored_pixels():
    logits, target = _logits_and_target()
    changed = logits.clone()
    changed[:, :, :, :8] = torch.randn(2, 3, 16, 8) * 10
    weights = torch.tensor([1.0, 1.0, 2.0])
    a = segmentation_loss(logits, target, weights)
    b = segmentation_loss(changed, target, weights)
    assert torch.allclose(a, b)
    changed.requires_grad_(True)
    segmentation_loss(changed, target, weights).backward()
    assert changed.grad[:, :, :, :8].abs().max() == 0
    assert changed.grad[:, :, :, 8:].abs().max() > 0


def test_sparse_targets_make_loss_independent_of_unannotated_pixels():
    rng = np.random.default_rng(0)
    labels = np.zeros((16, 16), np.uint16)
    labels[:3] = 1  # background scribble
    labels[6:12, 6:12] = 2  # an object
    target = torch.from_numpy(make_target(labels, task="instance-boundary", sparse=True)).long()[None]
    logits = torch.randn(1, 3, 16, 16)
    base = segmentation_loss(logits, target)
    for _ in range(3):
        noisy = logits.clone()
        unannotated = torch.from_numpy(labels == 0)[None, None].expand_as(noisy)
        noisy[unannotated] = torch.from_numpy(rng.normal(size=int(unannotated.sum())) * 5).float()
        assert torch.allclose(segmentation_loss(noisy, target), base)


def test_reviewed_mask_makes_loss_independent_of_unreviewed_labels():
    labels = np.zeros((16, 16), np.uint16)
    labels[2:6, 2:6] = 1
    reviewed = np.zeros((16, 16), bool)
    reviewed[:, :8] = True
    edited = labels.copy()
    edited[4:14, 10:15] = 9  # a change well inside the unreviewed half
    logits = torch.randn(1, 3, 16, 16)
    losses = [
        segmentation_loss(
            logits,
            torch.from_numpy(make_target(lab, task="instance-boundary", reviewed=reviewed)).long()[None],
        )
        for lab in (labels, edited)
    ]
    assert torch.allclose(*losses)


def test_dice_is_perfect_for_a_perfect_prediction_and_all_ignored_batch_is_zero():
    target = torch.randint(0, 3, (1, 8, 8))
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(logits, target) < 1e-3
    empty = torch.full((1, 8, 8), IGNORE)
    loss = segmentation_loss(logits.requires_grad_(True), empty)
    assert loss.item() == 0.0
    loss.backward()
