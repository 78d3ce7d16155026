"""Fine-tuning loop: ``finetune_iter`` (a progress generator) and ``finetune`` (drains it).

Events (for progress bars and the napari widget's live curves):

- ``Progress("step", done=global step, total=all steps, info={"loss", "epoch", "step", "lr",
  "steps_per_epoch", "elapsed_s"})`` after every optimizer step;
- ``Progress("epoch", done=epoch, total=epochs, info={"epoch", "train_loss", "val_loss",
  "val_iou": {class name: IoU or None}, "mean_iou", "best": bool, "model_path", "elapsed_s"})``
  after every epoch, and once with ``epoch=0`` before training when there is validation data
  (the starting model's scores).

Stopping: close the generator (or ``drain(..., should_stop=...)``); it stops within one step,
writes a checkpoint (when ``checkpoint`` is set) and the best model so far to ``output``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .. import _checks
from .._files import check_writable_file, guard_output, same_file
from ..errors import DeepsegError
from ..models import build_model, model_meta
from ..models.modelfile import INSTANCE_BOUNDARY, ModelMeta, has_distance
from ..progress import ProgressGenerator, drain
from .checkpoints import check_resume, data_record, load_checkpoint
from .config import FinetuneConfig, FinetuneResult
from .data import image_channels
from .prepare import build_regions, check_targets, make_targets, mix_replay, needed_classes
from .setup import grow_head, scratch_model, start_model
from .trainer import Trainer


def finetune_iter(
    pairs: Iterable[Any],
    model_or_path: nn.Module | str | os.PathLike | None = None,
    *,
    config: FinetuneConfig | None = None,
    val_pairs: Iterable[Any] | None = None,
    replay_pairs: Iterable[Any] | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    output: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options: Any,
) -> ProgressGenerator[FinetuneResult]:
    """Fine-tune (or train from scratch) a segmentation model on annotated images.

    Args:
        pairs: training pairs: ``(image, labels)``, ``(image, labels, reviewed)``, dicts or
            :class:`~napari_deepseg.training.data.TrainingPair`. image (H, W) or (H, W, C), or
            stacks (..., H, W[, C]) whose labels are (..., H, W); labels integer; reviewed bool.
        model_or_path: starting model (module, model file or bundled name); None = a new
            U-Net (``arch_options``, default base 32, depth 4) with percentile normalization.
        config: a :class:`FinetuneConfig`; ``**options`` (its field names, e.g. ``epochs=5``)
            replace its settings. The defaults are :class:`FinetuneConfig`'s. The settings:
        epochs, lr, batch_size, patch_size, steps_per_epoch: schedule length and sizes
            (steps per epoch default: annotated pixels / (batch x patch²), clamped to 10..100).
        sparse: 0 = not annotated (ignored); ``background_label`` marks painted background.
        val_pairs: validation pairs; else the last ``val_fraction`` strip of each image.
        replay_pairs: pairs with dense labels, of the kind the starting model already knows
            (e.g. some of its own training images), mixed in so that it does not forget them:
            ``replay`` (default 0.25) of the training patches come from them. They are never
            validated on, and their labels are dense even when ``sparse`` is set.
        schedule: ``"cosine"`` or ``"onecycle"`` learning-rate schedule for AdamW; ``warmup``
            (cosine): the fraction of the steps over which the rate rises linearly to ``lr``.
        freeze_norm: starting from a trained model, batch-norm layers keep their running
            statistics (their scale and shift still train).
        class_weights: cross-entropy class weights; default (1, 1, 2) for instance-boundary
            models, uniform otherwise. ``dice_weight`` scales the soft-Dice term.
        augment, elastic, fg_fraction: flips/rot90/intensity/gamma, optional elastic warps,
            fraction of patches centred on annotated pixels.
        seed: seeds sampling, augmentation and new weights (same seed, same device -> same run).
        device, precision: ``"auto"`` picks CUDA/MPS/CPU and bf16/fp16/fp32 (see setup.py).
        boundary_width: new instance-boundary models: the boundary rim's width in pixels
            (default 1); a starting model's own width makes its targets.
        distance: new instance-boundary models: add a distance output (each object pixel's
            distance to its object's edge, divided by the object's largest; instances are then
            seeded from its maxima). A starting model keeps the outputs it has, and its distance
            targets are made from the labels the same way. ``distance_weight`` (default 1)
            scales the distance loss (binary cross-entropy on the map) against the class loss.
        task, class_names, channels, name: for new models (and names of added classes);
            ``channels`` picks image channels (the model's inputs), as ``segment(channels=...)``.
        axes: the images' axes (letters of TZCYX, e.g. ``"CYX"`` or ``"ZCYX"``), as
            ``segment(axes=...)``; labels have the same axes without C. Default: (..., H, W[, C]).
        output: model file written with the best weights (on each new best, at the end and on stop).
        checkpoint: file for resumable state (each epoch and on stop); ``resume``: such a file
            to continue from (its hyperparameters are used; pass the same pairs).
        overwrite: replace an existing ``output`` or ``checkpoint`` (else refused before any
            work; resuming may replace the files of the run it continues).

    Yields:
        :class:`~napari_deepseg.progress.Progress` events (see the module docstring).

    Returns:
        :class:`FinetuneResult`.
    """
    _check_call(pairs, model_or_path, output, checkpoint, resume)
    pairs = list(pairs)
    state = None if resume is None else load_checkpoint(resume)
    _guard_outputs(output, checkpoint, model_or_path, resume, state, overwrite)
    record = {"output": output and os.path.abspath(output), "data": data_record(pairs)}
    cfg, model, source = _start(model_or_path, config, options, resume, state, record["data"])
    model, data = _prepare(model, pairs, val_pairs, cfg, fresh=state is None, replay_pairs=replay_pairs)
    trainer = Trainer(
        model, cfg, data, device=device, precision=precision, output=output,
        checkpoint=checkpoint, source=source, state=state,
    )  # fmt: skip
    trainer.record = record  # kept in checkpoints: what a resume must match
    return (yield from trainer.run())


def _start(model_or_path: Any, config: Any, options: dict[str, Any], resume: Any, state: Any, data: Any):
    """(settings, starting model, its source): the checkpoint's, when resuming the same data
    with the same settings, else the call's."""
    if state is not None:
        check_resume(resume, state, data, {**(vars(config) if config is not None else {}), **options})
        model = _model_from_checkpoint(state)
        return FinetuneConfig(**state["config"]), model, str(state.get("source", "checkpoint"))
    cfg = FinetuneConfig.from_options(config, **options)
    cfg.check()
    return (cfg, *start_model(model_or_path))


def finetune(
    pairs: Iterable[Any], model_or_path: nn.Module | str | os.PathLike | None = None, **kwargs: Any
) -> FinetuneResult:
    """Run :func:`finetune_iter` to the end and return its :class:`FinetuneResult`."""
    return drain(finetune_iter(pairs, model_or_path, **kwargs))


def _prepare(
    model: nn.Module | None,
    pairs: Any,
    val_pairs: Any,
    cfg: FinetuneConfig,
    fresh: bool,
    replay_pairs: Any = None,
):
    """Check the data, build or adapt the model, and convert the data for it."""
    task = model_meta(model).task if model is not None else (cfg.task or INSTANCE_BOUNDARY)
    if model is not None and cfg.task and cfg.task != task:
        raise DeepsegError(f"the starting model's task is {task!r}, not {cfg.task!r}; start from scratch")
    diameter, estimate = _sizing(model, cfg)
    width = _boundary_width(model, cfg)
    _check_distance(model, cfg, task)
    kw = dict(
        task=task, sparse=cfg.sparse, background_label=cfg.background_label, axes=cfg.axes,
        diameter=diameter, estimate=estimate, boundary_width=width,
    )  # fmt: skip
    targets = make_targets(pairs, val_pairs, **kw)
    model = _fit_model(model, targets, cfg, task, width, fresh)
    if fresh:
        cfg.patch_size = _fit_patch_size(cfg.patch_size, targets)
    counts = check_targets(targets, model_meta(model).class_names)
    dense = task == INSTANCE_BOUNDARY and not cfg.sparse
    contacts = cfg.contact_weight != 1 and task == INSTANCE_BOUNDARY  # on dense instance labels
    sizes = dict(patch_size=cfg.patch_size, channels=cfg.channels)
    sizes["distance"] = has_distance(model)
    data = build_regions(
        model, targets, val_fraction=cfg.val_fraction, instance_labels=dense,
        contacts=contacts and dense, **sizes,
    )  # fmt: skip
    data.counts = counts
    data.scales = targets.scales
    if replay_pairs is not None:  # dense labels, the same conversion, never validated on
        replay = make_targets(replay_pairs, None, prefix="replay pair", **{**kw, "sparse": False})
        regions = build_regions(model, replay, val_fraction=0.0, contacts=contacts, **sizes).train
        data = mix_replay(data, regions, cfg.replay)
    return model, data


def _fit_model(
    model: nn.Module | None, targets: Any, cfg: FinetuneConfig, task: str, width: int, fresh: bool
) -> nn.Module:
    """A new model for the targets, or the starting one (its head grown for new classes)."""
    k = needed_classes(task, targets, cfg.class_names)
    if model is None:
        torch.manual_seed(cfg.seed)
        in_ch = len(cfg.channels) if cfg.channels else _scratch_channels(targets)
        model = scratch_model(
            in_channels=in_ch, num_classes=k, task=task, arch_options=cfg.arch_options, name=cfg.name,
            channel_mode=cfg.channel_mode, object_diameter=cfg.object_diameter, boundary_width=width,
            distance=bool(cfg.distance),
        )  # fmt: skip
        if cfg.class_names and len(cfg.class_names) == k:
            model.deepseg_meta.class_names = list(cfg.class_names)
    elif fresh and k > model.deepseg_arch.num_classes:
        torch.manual_seed(cfg.seed)
        model = grow_head(model, k, cfg.class_names)
    elif k > model.deepseg_arch.num_classes:
        raise DeepsegError("the labels have more classes than the checkpoint's model; start a new run")
    return model


def _sizing(model: nn.Module | None, cfg: FinetuneConfig):
    """(training object diameter, diameter estimator for images without dense instance labels).

    A starting model's recorded diameter wins; ``object_diameter`` sets a new model's. The
    estimator is the starting model's own (what inference would estimate on that image).
    """
    if model is None:
        return cfg.object_diameter, None
    diameter = model_meta(model).object_diameter
    if cfg.object_diameter is not None and diameter is not None and cfg.object_diameter != diameter:
        raise DeepsegError(
            f"the starting model was trained at object diameter {diameter:g}; object_diameter="
            f"{cfg.object_diameter:g} applies only to new models (leave it unset)"
        )
    if diameter is None:
        return None, None
    from ..inference.engine import object_size

    def estimate(image):
        decision = object_size(image, model, precision="fp32")
        return decision["object_diameter"] if decision else None

    return diameter, estimate


def _check_distance(model: nn.Module | None, cfg: FinetuneConfig, task: str) -> None:
    """One-line DeepsegError for ``distance`` that cannot apply: a semantic model, or a starting
    model whose outputs differ (its own outputs make its targets)."""
    if cfg.distance and task != INSTANCE_BOUNDARY:
        raise DeepsegError("distance=True applies to instance-boundary models only; leave it unset")
    if model is not None and cfg.distance is not None and cfg.distance != has_distance(model):
        have = "has a" if has_distance(model) else "has no"
        raise DeepsegError(
            f"the starting model {have} distance output; distance= applies only to new models "
            "(leave it unset)"
        )


def _boundary_width(model: nn.Module | None, cfg: FinetuneConfig) -> int:
    """Rim width of the instance targets: the starting model's (what it learned to predict), or
    ``boundary_width`` (default 1) for a new model."""
    if model is None:
        return cfg.boundary_width or 1
    width = model_meta(model).boundary_width
    if cfg.boundary_width is not None and cfg.boundary_width != width:
        raise DeepsegError(
            f"the starting model was trained with a {width}-pixel boundary; boundary_width="
            f"{cfg.boundary_width} applies only to new models (leave it unset)"
        )
    return width


def _scratch_channels(targets: Any) -> int:
    """Input channels of a new model: 1 for gray, RGB and RGBA images, mixed or not (colour
    becomes one channel by the channel mode), else the images' channel count (a multichannel
    model taking every channel)."""
    pairs = [*targets.pairs, *targets.val_pairs]
    counts = {1 if p.image.ndim == p.labels.ndim else int(p.image.shape[-1]) for p in pairs}
    if counts <= {1, 3, 4}:
        return 1
    return image_channels(pairs)


def _check_call(pairs: Any, model_or_path: Any, output: Any, checkpoint: Any, resume: Any) -> None:
    """Types of finetune's arguments and writable outputs, checked before any work."""
    if isinstance(pairs, (str, os.PathLike)) or not isinstance(pairs, Iterable):
        raise _checks.ArgumentTypeError(
            f"pairs must be a list of (image, labels) pairs, not {type(pairs).__name__}; "
            "read files with napari_deepseg.training.files.read_pair"
        )
    if model_or_path is not None and not isinstance(model_or_path, nn.Module):
        _checks.path_like(model_or_path, "model_or_path", "a module, a model file or a model name")
    for name, value in (("output", output), ("checkpoint", checkpoint), ("resume", resume)):
        if value is not None:
            _checks.path_like(value, name, "a file path")
    if output is not None and checkpoint is not None and same_file(output, checkpoint):
        raise DeepsegError(f"output and checkpoint are the same file {output}; give two file names")
    for name, value in (("output", output), ("checkpoint", checkpoint)):
        if value is not None:
            check_writable_file(value, f"{name} file")


def _guard_outputs(
    output: Any, checkpoint: Any, start: Any, resume: Any, state: Any, overwrite: bool
) -> None:
    """The output guard for ``output`` (.pt) and ``checkpoint``: never an input, never an existing
    file without ``overwrite``, except the files of the run that ``resume`` continues."""
    inputs = [p for p in (start, resume) if isinstance(p, (str, os.PathLike)) and os.path.exists(p)]
    recorded = [] if state is None else [state.get("output"), resume]
    ours = tuple(p for p in recorded if p)
    if output is not None:
        guard_output(output, what="output model file", suffixes=(".pt",), inputs=tuple(inputs),
                     overwrite=overwrite, ours=ours)  # fmt: skip
    if checkpoint is not None:
        inputs_ckpt = tuple(p for p in inputs if not (resume is not None and same_file(p, resume)))
        guard_output(checkpoint, what="checkpoint file", inputs=inputs_ckpt, overwrite=overwrite, ours=ours)


def _fit_patch_size(patch_size: int, targets: Any) -> int:
    """``patch_size`` clamped to the largest training plane, with a warning that says so."""
    largest = max(max(p.labels.shape[-2:]) for p in targets.pairs)
    if patch_size <= largest:
        return patch_size
    shape = max((p.labels.shape[-2:] for p in targets.pairs), key=max)
    warnings.warn(
        f"patch_size={patch_size} is larger than the largest training image ({shape[0]}x{shape[1]}); "
        f"training with patch_size={largest} (larger patches would only add padding)",
        UserWarning,
        stacklevel=3,
    )
    return int(largest)


def _model_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    try:
        arch = state["architecture"]
        model = build_model(
            arch["name"], in_channels=int(arch["in_channels"]), num_classes=int(arch["num_classes"]),
            **dict(arch.get("options", {})),
        )  # fmt: skip
        model.load_state_dict(state["model"])
        model.deepseg_meta = ModelMeta.from_dict(json.loads(state["meta"]))
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise DeepsegError(
            "the checkpoint is damaged (its model does not rebuild); give another checkpoint or start afresh"
        ) from None
    return model


__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "finetune_iter"]
