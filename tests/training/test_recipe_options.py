"""The training core's recipe options: sampling weights, scale augmentation, a time budget,
snapshots, a training object diameter and the H&E channel mode (tiny models, seconds)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from napari_deepseg.inference.scale import median_diameter, resize_labels, resize_plane
from napari_deepseg.models import load_model
from napari_deepseg.samples import synthetic_nuclei
from napari_deepseg.training import finetune, finetune_iter
from napari_deepseg.training.data import PatchSampler, Region

TINY = {"arch_options": {"base": 8, "depth": 2}, "patch_size": 48, "batch_size": 2, "lr": 3e-3}


def _region(value: float, name: str, weight: float | None) -> Region:
    image = np.full((1, 64, 64), value, np.float32)
    target = np.zeros((64, 64), np.int16)
    return Region(image, target, name, np.flatnonzero(target >= 0), weight)


def test_sampling_follows_pair_weights():
    regions = [_region(0.0, "a", 0.9), _region(1.0, "b", 0.1)]
    sampler = PatchSampler(regions, 32, 32)
    x, _, _ = sampler.sample(400, np.random.default_rng(0), augment=False)
    share_b = float((x[:, 0, 0, 0] == 1.0).mean())
    assert 0.05 < share_b < 0.16
    unweighted = PatchSampler([_region(0.0, "a", None), _region(1.0, "b", None)], 32, 32)
    assert unweighted.weights == pytest.approx([0.5, 0.5])


def test_zoom_windows_keep_their_size_and_vary_the_scale():
    image, labels = synthetic_nuclei((128, 128), radius=(6, 8), seed=0)[:2]
    region = Region(image[None].astype(np.float32), (labels > 0).astype(np.int16), "n",
                    np.arange(128 * 128))  # fmt: skip
    sampler = PatchSampler([region], 48, 48, zoom=2.0)
    rng = np.random.default_rng(1)
    fractions = []
    for _ in range(40):
        x, y, _ = sampler.sample(1, rng, augment=False)
        assert x.shape == (1, 1, 48, 48)
        assert y.shape == (1, 48, 48)
        fractions.append(y.mean())
    assert np.std(fractions) > 0.02


def _pairs(scale: float = 1.0, n: int = 2):
    out = []
    for seed in range(n):
        image, labels = synthetic_nuclei((96, 96), radius=(5, 6), seed=seed)[:2]
        if scale != 1:
            shape = (round(96 * scale), round(96 * scale))
            image, labels = (
                resize_plane(image[None].astype(np.float32), shape)[0],
                resize_labels(labels, shape),
            )
        out.append({"image": image, "labels": labels, "weight": 1.0 + seed})
    return out


def test_new_model_with_diameter_hed_budget_and_snapshots(tmp_path):
    pairs = _pairs(scale=2.0)
    assert median_diameter(pairs[0]["labels"]) > 18
    events = list_events(
        finetune_iter(
            pairs,
            None,
            output=tmp_path / "m.pt",
            epochs=3,
            steps_per_epoch=4,
            object_diameter=11.0,
            channel_mode="gray-hed",
            zoom=1.25,
            snapshots=True,
            val_fraction=0.2,
            **TINY,
        )
    )
    result = events[-1]
    assert sorted(p.name for p in tmp_path.glob("m.epoch*.pt")) == [f"m.epoch00{i}.pt" for i in (1, 2, 3)]
    model = load_model(result.path)
    meta = model.deepseg_meta
    assert (meta.object_diameter, meta.channel_mode) == (11.0, "gray-hed")
    assert meta.provenance["rescaled_pairs"] == 2
    assert meta.provenance["object_diameter"] == 11.0
    assert torch.load(result.path, weights_only=True)["schema_version"] == 2


def test_time_budget_ends_the_run_validated_and_saved(tmp_path):
    result = finetune(
        _pairs(), None, output=tmp_path / "m.pt", epochs=50, steps_per_epoch=20, minutes=0.02, **TINY
    )
    prov = load_model(result.path).deepseg_meta.provenance
    assert prov["steps"] < 50 * 20  # the budget (1.2 s), not the 50 epochs, ended it
    assert result.history[-1]["epoch"] >= 1  # the last (maybe partial) epoch was validated
    assert result.history[-1]["elapsed_s"] < 0.02 * 60 + 5


def test_finetuning_a_sized_model_rescales_sparse_pairs_with_its_own_estimate(tmp_path):
    model = load_model("nuclei")
    model.deepseg_meta.object_diameter = 8.0
    image, labels = synthetic_nuclei((128, 128), radius=(7, 8), seed=4)[:2]
    scribbles = np.zeros_like(labels)
    scribbles[labels == 1] = 2
    scribbles[:4, :] = 1  # painted background
    result = finetune(
        [(image, scribbles)], model, sparse=True, epochs=1, steps_per_epoch=2, patch_size=48,
        batch_size=2, val_fraction=0.0,
    )  # fmt: skip
    assert result.model.deepseg_meta.provenance["rescaled_pairs"] == 1


def list_events(gen):
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        events.append(stop.value)
    return events


def test_corrected_pixels_weigh_more_in_the_loss():
    from napari_deepseg.training.losses import segmentation_loss

    logits = torch.zeros(1, 3, 4, 4)
    logits[:, 0] = 5.0  # predicts background everywhere
    target = torch.zeros(1, 4, 4, dtype=torch.int64)
    target[0, 0, 0] = 1  # one interior pixel: wrong
    plain = segmentation_loss(logits, target, dice_weight=0)
    weights = torch.ones(1, 4, 4)
    weights[0, 0, 0] = 5.0  # the corrected pixel
    assert segmentation_loss(logits, target, dice_weight=0, pixel_weights=weights) > 2 * plain
    assert torch.isclose(
        segmentation_loss(logits, target, dice_weight=0, pixel_weights=torch.ones(1, 4, 4)), plain
    )


def test_corrections_are_marked_through_sampling_and_augmentation():
    from napari_deepseg.training.config import FinetuneConfig
    from napari_deepseg.training.labels import EMPHASIS
    from napari_deepseg.training.loop import _prepare
    from napari_deepseg.training.optim import split_emphasis

    image, labels = synthetic_nuclei((96, 96), radius=(6, 8), seed=2)[:2]
    emphasis = labels == labels.max()  # one corrected object
    cfg = FinetuneConfig.from_options(
        patch_size=48, val_fraction=0.0, **{k: TINY[k] for k in ("arch_options",)}
    )
    _, data = _prepare(
        None, [{"image": image, "labels": labels, "emphasis": emphasis}], None, cfg, fresh=True
    )
    (region,) = data.train
    marked = region.target >= EMPHASIS
    assert marked.sum() >= emphasis.sum()  # the object and its rim
    sampler = PatchSampler(data.train, data.in_size, data.out_size, zoom=1.5)
    _, y, _ = sampler.sample(64, np.random.default_rng(0), augment=True, elastic=True)
    assert (y >= EMPHASIS).any()
    plain, weights = split_emphasis(y, 4.0)
    assert plain.max() < EMPHASIS
    assert set(np.unique(weights)) == {1.0, 4.0}
    assert split_emphasis(y, 1.0)[1] is None


def _from(start, steps: int, lr: float, **options):
    """``start`` fine-tuned for ``steps`` steps on the synthetic pairs (fp32, no validation)."""
    return finetune(
        _pairs(), start, epochs=1, steps_per_epoch=steps, lr=lr, patch_size=48, batch_size=2,
        val_fraction=0.0, precision="fp32", **options,
    ).model  # fmt: skip


def test_anchor_keeps_the_weights_near_the_start():
    start = load_model("nuclei")

    def moved(model):
        ref = dict(start.named_parameters())
        return float(sum(((p - ref[n]) ** 2).sum() for n, p in model.named_parameters()))

    free = _from(start, 4, 1e-2)
    anchored = _from(start, 4, 1e-2, anchor=10.0)
    assert moved(anchored) < 0.5 * moved(free)


def test_a_time_budget_plans_the_schedule_to_fit_it(tmp_path):
    events = list_events(
        finetune_iter(
            _pairs(),
            None,
            output=tmp_path / "m.pt",
            epochs=1000,
            steps_per_epoch=5,
            minutes=0.1,
            val_fraction=0.2,
            **TINY,
        )
    )
    result = events[-1]
    steps = [e for e in events[:-1] if getattr(e, "stage", "") == "step"]
    prov = load_model(result.path).deepseg_meta.provenance
    assert prov["epochs_planned"] < 1000  # the budget, not the 1000 epochs, set the schedule
    # the progress total is the plan; the last epoch's end may replan by one epoch (its pace
    # said the next would not fit), so the saved plan is within one epoch of the last total
    assert steps[-1].total % 5 == 0
    assert steps[-1].total < 1000 * 5
    assert abs(steps[-1].total // 5 - prov["epochs_planned"]) <= 1
    assert steps[-1].info["lr"] < 0.5 * TINY["lr"]  # the rate has decayed by the end


def test_a_budget_is_replanned_when_the_first_steps_were_slow(tmp_path, monkeypatch):
    """The plan made from a slow start (here the first steps sleep) would end the run seconds
    into a 6-second budget; the epochs' own pace plans it again, and the run uses the budget."""
    from napari_deepseg.training import trainer

    fast_step = trainer.Trainer._train_step

    def slow_start(self):
        if self.step < trainer.FIT_AFTER_STEPS:
            time.sleep(0.3)
        return fast_step(self)

    monkeypatch.setattr(trainer.Trainer, "_train_step", slow_start)
    result = finetune(
        _pairs(), None, output=tmp_path / "m.pt", epochs=1000, steps_per_epoch=5, minutes=0.1,
        val_fraction=0.2, **TINY,
    )  # fmt: skip
    prov = load_model(result.path).deepseg_meta.provenance
    first_plan = int(6 / 0.3) // 5  # what the slow steps alone would have planned
    assert prov["epochs"] > first_plan + 2
    assert prov["epochs_planned"] == prov["epochs"] or prov["stopped_by_time_budget"]
    assert 0.6 * 6 < result.history[-1]["elapsed_s"] < 6 + 3


def test_frozen_norm_statistics_stay_those_of_the_start():
    start = load_model("nuclei")

    def stats(model):
        return torch.cat([m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])

    frozen = _from(start, 3, 1e-3, freeze_norm=True)
    free = _from(start, 3, 1e-3)
    assert torch.equal(stats(frozen), stats(start))
    assert not torch.allclose(stats(free), stats(start))
    moved = [n for n, p in frozen.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert moved  # the weights (batch-norm scale and shift included) still train


def test_warmup_raises_the_rate_then_decays_it():
    from napari_deepseg.training.config import FinetuneConfig
    from napari_deepseg.training.optim import make_scheduler

    def rates(warmup):
        opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
        sched, out = make_scheduler(opt, FinetuneConfig(warmup=warmup), 100), []
        for _ in range(100):
            out.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return np.array(out)

    warm, plain = rates(0.1), rates(0.0)
    assert np.all(np.diff(warm[:11]) > 0)
    assert warm[0] < 0.1 * 1e-3
    assert warm.max() == pytest.approx(1e-3)
    assert plain[0] == pytest.approx(1e-3)
    assert np.all(np.diff(plain) <= 0)
    assert warm[-1] == pytest.approx(plain[-1], rel=0.05)  # both end near 1% of the rate


def test_pixels_between_objects_are_marked_and_weighted():
    from napari_deepseg.training.config import FinetuneConfig
    from napari_deepseg.training.labels import CONTACT, EMPHASIS, contact_mask
    from napari_deepseg.training.loop import _prepare
    from napari_deepseg.training.optim import split_emphasis

    objects = np.zeros((12, 20), np.int32)
    objects[2:10, 2:8] = 1
    objects[2:10, 8:14] = 2  # touches object 1
    objects[2:10, 19:20] = 3  # 5 background pixels away from object 2
    between = contact_mask(objects)
    assert between[5, 6:10].all()  # both sides of the contact
    assert not between[5, 2:5].any()  # deep inside object 1
    assert not between[5, 14:19].any()  # the gap to object 3 is wider than twice the reach
    image, labels = synthetic_nuclei((96, 96), radius=(6, 8), seed=2)[:2]
    cfg = FinetuneConfig.from_options(
        patch_size=48, val_fraction=0.0, contact_weight=5.0, **{"arch_options": TINY["arch_options"]}
    )
    _, data = _prepare(None, [{"image": image, "labels": labels}], None, cfg, fresh=True)
    (region,) = data.train
    marked = region.target >= CONTACT
    assert marked.sum() == contact_mask(labels).sum() > 0
    y, weights = split_emphasis(region.target.copy(), 1.0, 5.0)
    assert y.max() < EMPHASIS
    assert set(np.unique(weights)) == {1.0, 5.0}
    np.testing.assert_array_equal(weights == 5.0, marked)
    # a corrected pixel between objects weighs both
    both = np.array([[EMPHASIS + CONTACT + 2, 1, -1]], np.int64)
    y, weights = split_emphasis(both, 3.0, 5.0)
    np.testing.assert_array_equal(y, [[2, 1, -1]])
    np.testing.assert_array_equal(weights, [[15.0, 1.0, 1.0]])
    _, off = _prepare(
        None,
        [{"image": image, "labels": labels}],
        None,
        FinetuneConfig.from_options(
            patch_size=48, val_fraction=0.0, **{"arch_options": TINY["arch_options"]}
        ),
        fresh=True,
    )
    assert not (off.train[0].target >= EMPHASIS).any()


def test_boundary_width_makes_a_new_models_targets_and_its_fine_tunes(tmp_path, monkeypatch):
    from napari_deepseg.errors import DeepsegError
    from napari_deepseg.training import loop

    widths = []
    make = loop.make_targets

    def spy(*args, **kwargs):
        widths.append(kwargs["boundary_width"])
        return make(*args, **kwargs)

    monkeypatch.setattr(loop, "make_targets", spy)
    opts = dict(epochs=1, steps_per_epoch=2, val_fraction=0.0, **TINY)
    result = finetune(_pairs(), None, output=tmp_path / "m.pt", boundary_width=2, **opts)
    model = load_model(result.path)
    assert model.deepseg_meta.boundary_width == 2
    assert model.deepseg_meta.provenance["boundary_width"] == 2
    finetune(_pairs(), model, **{k: v for k, v in opts.items() if k != "arch_options"})
    assert widths == [2, 2]  # the fine-tune makes the targets the model learned
    with pytest.raises(DeepsegError, match="2-pixel boundary"):
        finetune(_pairs(), model, boundary_width=1, epochs=1)
    with pytest.raises(DeepsegError, match="boundary_width must be 1 to 8"):
        finetune(_pairs(), None, boundary_width=0, epochs=1)


def test_replay_regions_get_their_share_of_patches_and_user_regions_keep_theirs():
    from napari_deepseg.training.optim import default_steps
    from napari_deepseg.training.prepare import TrainingData, mix_replay

    user = [_region(0.0, "a", 3.0), _region(1.0, "b", 1.0)]
    replay = [_region(2.0, "r1", None), _region(3.0, "r2", None)]
    data = TrainingData(user, [], 16, 16, np.zeros(3), ["a", "b"], [])
    assert default_steps(data, 2) == 16  # 2 x 64² annotated pixels / (2 x 16²)
    mixed = mix_replay(data, replay, 0.4)
    assert [r.weight for r in mixed.train] == pytest.approx([0.45, 0.15, 0.2, 0.2])
    assert mixed.replayed == 2
    assert default_steps(mixed, 2) == 27  # 16 / 0.6: the user's patches per epoch are kept
    sampler = PatchSampler(mixed.train, 32, 32)
    x, _, _ = sampler.sample(1000, np.random.default_rng(0), augment=False)
    assert 0.35 < float((x[:, 0, 0, 0] >= 2.0).mean()) < 0.45


def test_replay_pairs_are_trained_on_but_never_validated_on(tmp_path, monkeypatch):
    from napari_deepseg.errors import DeepsegError
    from napari_deepseg.training import loop

    seen = []
    mix = loop.mix_replay

    def spy(data, replay, share):
        out = mix(data, replay, share)
        seen.append(([r.name for r in out.train], [r.name for r in out.val]))
        return out

    monkeypatch.setattr(loop, "mix_replay", spy)
    replay = [(p["image"], p["labels"]) for p in _pairs(n=3)[2:]]
    result = finetune(
        _pairs(), None, replay_pairs=replay, replay=0.3, epochs=1, steps_per_epoch=2, val_fraction=0.2, **TINY
    )
    assert result.model.deepseg_meta.provenance["replay"] == {"regions": 1, "share": 0.3}
    train, val = seen[0]
    assert train == ["pair 0", "pair 1", "replay pair 0"]
    assert val == ["pair 0", "pair 1"]  # held-out strips of the user's pairs only
    with pytest.raises(DeepsegError, match="replay must be in"):
        finetune(_pairs(), None, replay_pairs=replay, replay=0.95, epochs=1, **TINY)


def test_replay_labels_stay_dense_when_the_users_are_sparse(monkeypatch):
    from napari_deepseg.training import loop

    seen = []
    mix = loop.mix_replay
    monkeypatch.setattr(loop, "mix_replay", lambda d, rep, share: seen.append(rep) or mix(d, rep, share))
    image, labels = synthetic_nuclei((96, 96), radius=(5, 6), seed=3)[:2]
    scribbles = np.zeros_like(labels)
    scribbles[labels == 1] = 2
    scribbles[:6] = 1  # painted background
    replay = [synthetic_nuclei((96, 96), radius=(5, 6), seed=4)[:2]]
    finetune([(image, scribbles)], None, sparse=True, replay_pairs=replay, epochs=1, steps_per_epoch=1,
             val_fraction=0.0, **TINY)  # fmt: skip
    target = seen[0][0].target
    inside = target[target >= 0]
    assert inside.size == 96 * 96  # every replay pixel is annotated ...
    assert set(np.unique(inside % 1000)) == {0, 1, 2}  # ... background included
