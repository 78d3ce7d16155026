"""The training state machine behind :func:`~napari_deepseg.training.finetune_iter`.

One :class:`Trainer` owns the model on its device, the optimizer, the schedule, the random
generator and the best weights. :meth:`Trainer.run` is the generator: a step per ``next``,
validation at each epoch end, checkpoint and best-model writes, and cleanup in ``finally``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DeepsegError
from ..inference.device import loader_workers, resolve_device, resolve_precision
from ..models import model_meta, save_model
from ..models.modelfile import INSTANCE_BOUNDARY
from ..progress import Progress
from .checkpoints import run_provenance, save_checkpoint
from .config import FinetuneConfig, FinetuneResult
from .data import Batch, PatchSampler
from .feeder import step_batches
from .losses import training_loss
from .optim import anchor_distance, default_steps, freeze_norm_statistics, make_scheduler, split_emphasis
from .prepare import TrainingData
from .validation import VAL_KEYS, Validator, epoch_message, instance_settings, is_new_best, verdict

#: with a time budget, the schedule is planned after this many steps have been timed
FIT_AFTER_STEPS = 5


class Trainer:
    """Training state; see the module docstring. ``state`` is a checkpoint dict to resume from."""

    def __init__(
        self,
        model: nn.Module,
        cfg: FinetuneConfig,
        data: TrainingData,
        *,
        device: str | torch.device,
        precision: str,
        output: str | os.PathLike | None,
        checkpoint: str | os.PathLike | None,
        source: str,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.cfg, self.data, self.source, self.record = cfg, data, source, {}  # record: kept in checkpoints
        self.meta = copy.deepcopy(model_meta(model))
        self.output = Path(output) if output is not None else None
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.device = resolve_device(device)
        policy = resolve_precision(precision, self.device, mode="training")
        self.amp, self.channels_last = policy.dtype, policy.channels_last
        self.precision = str(self.amp).replace("torch.", "") if self.amp else "float32"
        self.export = copy.deepcopy(model).cpu().eval()  # CPU copy that receives weights to save
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.sampler = PatchSampler(data.train, data.in_size, data.out_size, cfg.fg_fraction, cfg.zoom)
        self.spe = cfg.steps_per_epoch or default_steps(data, cfg.batch_size)
        self.total = cfg.epochs * self.spe
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = make_scheduler(self.opt, cfg, self.total)
        self.scaler = torch.amp.GradScaler("cuda") if policy.grad_scaler else None
        self.class_weights = self._class_weights()
        self.anchor_state = (
            {n: p.detach().clone() for n, p in self.model.named_parameters()}
            if cfg.anchor > 0 and source != "scratch"
            else None
        )
        self.validator = Validator(
            data.val, data.in_size, data.out_size, cfg.batch_size, self.meta.class_names,
            self.class_weights, cfg.dice_weight, instance_settings(model),
        )  # fmt: skip
        self.rng = np.random.default_rng(cfg.seed)
        self.step, self.history, self.epoch_losses = 0, [], []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.elapsed, self._busy, self.out_of_time = 0.0, False, False
        self._fitted, self._val_seconds, self._run_start_step = False, 0.0, 0
        self._planned_here, self._epoch_clock = False, None
        self.workers = loader_workers(self.device) if cfg.loader_workers is None else cfg.loader_workers
        self._feed = None
        if state is not None:
            self._restore(state)

    # ------------------------------------------------------------------ the generator

    def run(self) -> Generator[Progress, None, FinetuneResult]:
        """Train to the end, yielding progress; return the best model (see FinetuneResult)."""
        start = time.perf_counter() - self.elapsed
        self._clock = lambda: time.perf_counter() - start
        self._run_start_step, self._fitted = self.step, self.step > 0  # a resumed run keeps its plan
        try:
            if self.data.val and not self.history:
                t0 = time.perf_counter()
                yield self._end_epoch(initial=True)
                self._val_seconds = time.perf_counter() - t0
            while True:
                if self.step // self.spe > self.epochs_done:
                    yield self._end_epoch()
                    self._replan_to_budget()
                    continue
                if self.step >= self.total:
                    break
                if self._time_is_up():
                    self.out_of_time = True
                    if self.step % self.spe:  # a partial epoch is validated and kept too
                        yield self._end_epoch()
                    break
                loss = self._train_step()
                if self.cfg.minutes is not None and not self._fitted and self.step >= FIT_AFTER_STEPS:
                    self._fit_schedule_to_budget()
                yield self._step_event(loss)
        except (GeneratorExit, KeyboardInterrupt):
            self._on_stop()
            raise
        finally:
            self._release()
        path = self._save_output(stopped=False)
        result = FinetuneResult(self.export, path, list(self.history), self.best_epoch, self.checkpoint)
        result.verdict = self.verdict_text()
        return result

    def _fit_schedule_to_budget(self) -> None:
        """With ``minutes``: plan the schedule to end when the budget does (from the time of the
        first steps and of one validation), so the learning rate finishes its decay in time;
        ``epochs`` becomes the number of epochs that fit."""
        self._fitted = self._planned_here = True
        elapsed = self._clock() - self._val_seconds
        per_step = elapsed / max(1, self.step - self._run_start_step)
        per_step += self._val_seconds / self.spe  # each epoch ends with a validation
        epochs = max(1, int(60 * self.cfg.minutes / per_step) // self.spe)
        self._set_schedule(max(epochs, self.step // self.spe + 1))

    def _replan_to_budget(self) -> None:
        """With ``minutes``, at each epoch end: plan the rest again from the last epoch's pace
        (the first steps' pace can be far off, e.g. slowed by a busy machine), so the run
        neither ends minutes early nor runs past its budget with the rate still high."""
        if not self._planned_here:
            return  # no budget, or a resumed run, which keeps its plan
        now, last = self._clock(), self._epoch_clock
        self._epoch_clock = now
        if last is None:
            return  # the first epoch was planned mid-way: its pace is not a whole epoch's
        left = 60 * self.cfg.minutes - now
        epochs = self.epochs_done + (int(left / (now - last)) if now > last else 0)
        if epochs != self.cfg.epochs:
            self._set_schedule(max(epochs, self.epochs_done))

    def _set_schedule(self, epochs: int) -> None:
        """Plan ``epochs`` epochs: a new schedule (from the configured rate) at the current step."""
        self.cfg.epochs, self.total = epochs, epochs * self.spe
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr
            group.pop("initial_lr", None)
        self.sched = make_scheduler(self.opt, self.cfg, self.total)
        for _ in range(self.step):
            self.sched.step()

    def verdict_text(self) -> str | None:
        """:func:`.validation.verdict` for a run that started from a trained model."""
        return None if self.source == "scratch" else verdict(self.history, self.best_epoch)

    def _time_is_up(self) -> bool:
        """True when the ``minutes`` budget is spent (the run then ends as if finished)."""
        return self.cfg.minutes is not None and self._clock() >= 60 * self.cfg.minutes

    @property
    def epochs_done(self) -> int:
        return sum(1 for h in self.history if h["epoch"] >= 1)

    def _train_step(self) -> float:
        self._busy = True  # a KeyboardInterrupt before the end leaves a half-done step
        x, y, dist = self._batch()
        y, pixel_weights = split_emphasis(y, self.cfg.correction_weight, self.cfg.contact_weight)
        x, y = self._to_device(x), torch.from_numpy(y).to(self.device)
        pixel_weights, dist = (self._tensor(a) for a in (pixel_weights, dist))
        self.model.train()
        if self.cfg.freeze_norm and self.source != "scratch":
            freeze_norm_statistics(self.model)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.model(x)
        loss = training_loss(
            logits, y, classes=self.model_classes, class_weights=self.class_weights,
            dice_weight=self.cfg.dice_weight, pixel_weights=pixel_weights, distance=dist,
            distance_weight=self.cfg.distance_weight,
        )  # fmt: skip
        if self.anchor_state is not None:
            loss = loss + self.cfg.anchor * anchor_distance(self.model, self.anchor_state)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.sched.step()
        self.step += 1
        value = float(loss.detach())
        self.epoch_losses.append(value)
        self._busy = False
        return value

    def _step_event(self, loss: float) -> Progress:
        epoch = (self.step - 1) // self.spe + 1
        info = {
            "loss": loss,
            "epoch": epoch,
            "step": self.step,
            "lr": float(self.sched.get_last_lr()[0]),
            "steps_per_epoch": self.spe,
            "elapsed_s": self._clock(),
        }
        msg = f"epoch {epoch}/{self.cfg.epochs} loss {loss:.4f}"
        return Progress("step", self.step, self.total, msg, info)

    def _end_epoch(self, initial: bool = False) -> Progress:
        epoch = 0 if initial else self.epochs_done + 1
        entry: dict[str, Any] = {"epoch": epoch, "step": self.step}
        entry["train_loss"] = None if initial else float(np.mean(self.epoch_losses or [math.nan]))
        self.epoch_losses = []
        entry.update(self._validate() if self.data.val else dict.fromkeys(VAL_KEYS) | {"val_iou": {}})
        score = next((entry[k] for k in ("val_ap50", "mean_iou") if entry.get(k) is not None), float(epoch))
        entry["best"] = is_new_best(score, self.best_score, self.best_epoch, self.source == "scratch")
        if entry["best"]:
            self.best_score, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        entry["elapsed_s"] = self._clock()
        self.history.append(entry)
        entry["model_path"] = str(self._save_output(stopped=False)) if entry["best"] and not initial else None
        if not initial:
            self._save_checkpoint()
            self._save_snapshot(epoch)
        return Progress("epoch", epoch, self.cfg.epochs, epoch_message(entry), dict(entry))

    # ------------------------------------------------------------------ validation

    def _validate(self) -> dict[str, Any]:
        """Held-out scores of the current weights (see :mod:`.validation`)."""

        def autocast():
            return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

        return self.validator.run(self.model, self._to_device, autocast)

    # ------------------------------------------------------------------ saving

    def _save_output(self, stopped: bool, path: Path | None = None) -> Path | None:
        """Write the best (else current) weights with provenance to ``path`` (default ``output``)."""
        weights = self.best_state or {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        self.export.load_state_dict(weights)
        self.export.to(memory_format=torch.contiguous_format)
        meta = copy.deepcopy(self.meta)
        meta.name = self.cfg.name or (self.output.stem if self.output else f"{meta.name}-finetuned")
        meta.provenance = run_provenance(self, stopped)
        self.export.deepseg_meta = meta
        path = path or self.output
        if path is None:
            return None
        return save_model(path, self.export, meta, overwrite=True)  # guarded at the start

    def _save_snapshot(self, epoch: int) -> None:
        """With ``snapshots``: this epoch's weights (not the best) to ``<output>.epochNNN.pt``."""
        if not self.cfg.snapshots or self.output is None:
            return
        best = self.best_state
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        try:
            path = self._save_output(stopped=False, path=self.output.with_suffix(f".epoch{epoch:03d}.pt"))
        finally:
            self.best_state = best
        self.history[-1]["snapshot_path"] = str(path)

    def _save_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        state = {
            "architecture": self.model.deepseg_arch.to_dict(),
            "meta": json.dumps(asdict(self.meta)),
            "config": asdict(self.cfg),
            "source": self.source,
            **self.record,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "best": self.best_state,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "step": self.step,
            "history": json.dumps(self.history),
            "epoch_losses": list(self.epoch_losses),
            "elapsed_s": self._clock(),
            "rng": {"numpy": json.dumps(self.rng.bit_generator.state), "torch": torch.get_rng_state()},
        }
        save_checkpoint(self.checkpoint, state)

    def _restore(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        self.epoch_losses = [float(v) for v in state.get("epoch_losses", [])]
        self.best_state, self.best_score = state.get("best"), state.get("best_score")
        self.best_epoch = state.get("best_epoch")
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])

    def _on_stop(self) -> None:
        """Stopped from outside: keep a resumable checkpoint and the best model so far.

        After an interrupt in the middle of a step the state is not resumable, so the last
        epoch's checkpoint is kept as it is.
        """
        if not self._busy:
            self._save_checkpoint()
        self._save_output(stopped=True)

    def _release(self) -> None:
        """Free device memory: move the model to the CPU, drop optimizer state, empty caches."""
        if self._feed is not None:  # stops the workers
            self._feed.close()
            self._feed = None
        self.model.to("cpu")
        self.opt.state.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()

    # ------------------------------------------------------------------ helpers

    @property
    def model_classes(self) -> int:
        return int(self.model.deepseg_arch.num_classes)

    def _batch(self) -> Batch:
        """The next step's batch: drawn here, or made ahead by workers (:mod:`.feeder`)."""
        if not self.workers:
            return self.sampler.sample(self.cfg.batch_size, self.rng, self.cfg.augment, self.cfg.elastic)
        if self._feed is None:
            cfg = self.cfg
            self._feed = step_batches(
                self.sampler, seed=cfg.seed, batch_size=cfg.batch_size, augment=cfg.augment,
                elastic=cfg.elastic, first_step=self.step, workers=self.workers,
            )  # fmt: skip
        return next(self._feed)

    def _tensor(self, a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.from_numpy(a).to(self.device)

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).to(self.device)
        return t.to(memory_format=torch.channels_last) if self.channels_last else t

    def _class_weights(self) -> torch.Tensor | None:
        weights = self.cfg.class_weights
        if weights is None and self.meta.task == INSTANCE_BOUNDARY and self.model_classes == 3:
            weights = [1.0, 1.0, 2.0]
        if weights is None:
            return None
        if len(weights) != self.model_classes:
            raise DeepsegError(
                f"{len(weights)} class weights for {self.model_classes} classes; give one per class"
            )
        return torch.tensor(weights, dtype=torch.float32, device=self.device)
