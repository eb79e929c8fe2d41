"""The training loop of section 4.2 of Lamprou (2023), resumable and deterministic.

:func:`train` sets up a run (:func:`_set_up`), picks up an interrupted one (:func:`_resume`), then runs
epochs (:func:`_run_epoch`: reseed, :func:`_fit_epoch`, :func:`_validate`, :func:`_save_epoch`) until
the last epoch or early stopping, and hands the model back with the best epoch's weights. The forward
passes of training and validation run in ``config.precision`` (:func:`camfaith.device.forward_precision`)
and the model in the memory format of ``config.channels_last`` (:func:`camfaith.device.set_memory_format`);
float32 and contiguous by default.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from camfaith.data.base import DatasetSplits
from camfaith.device import check_precision, forward_precision, resolve_device, set_memory_format
from camfaith.evaluate import per_class_recall, predict_logits
from camfaith.train.checkpoints import (
    HISTORY_COLUMNS,
    cpu_state,
    model_description,
    resume_checkpoint,
    save_epoch,
    training_files,
)
from camfaith.train.config import TrainConfig
from camfaith.train.criteria import EarlyStopping, class_weights, monitored_classes
from camfaith.train.layers import apply_trainable_layers, frozen_batchnorm_layers, set_train_mode


@dataclass
class TrainingResult:
    """What :func:`train` returns; the model itself now holds the best epoch's weights, in eval mode."""

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    trainable_modules: list[str]
    out_dir: Path
    resumed_from_epoch: int = 0  # 0: started afresh
    files: dict[str, Path] = field(default_factory=dict)  # by role, see camfaith.train.training_files


@dataclass
class _TrainingState:
    """Everything one call of :func:`train` works with: built by :func:`_set_up`, advanced by each epoch."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    out_dir: Path
    classes: list[str]
    monitored: list[int]
    setup: dict
    trainable: list[str]
    frozen_batchnorm: list[str]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    criterion: nn.CrossEntropyLoss
    stopper: EarlyStopping
    records: list[dict] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    finished: bool = False
    resumed_from: int = 0  # the last finished epoch of an earlier call


def _epoch_seed(seed: int, epoch: int) -> int:
    """An independent seed per epoch, so a resumed run replays exactly the remaining epochs."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


def _train_labels(splits: DatasetSplits) -> torch.Tensor:
    """Training labels without loading images: ``dataset.labels``, else the manifest, else iteration."""
    dataset = splits.train
    labels = getattr(dataset, "labels", None)
    if labels is not None and len(labels) == len(dataset):
        return torch.as_tensor(labels, dtype=torch.long)
    manifest = splits.manifest
    if manifest is not None and {"split", "label"} <= set(manifest.columns):
        rows = manifest[manifest["split"] == "train"]
        if len(rows) == len(dataset):
            return torch.tensor(rows["label"].to_numpy(dtype=np.int64, copy=True))
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def _loader(dataset: Dataset, config: TrainConfig, device: torch.device, generator=None) -> DataLoader:
    """Batches of ``dataset``; shuffled by ``generator`` when one is given (training), else in order."""
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=generator is not None,
                      generator=generator, num_workers=config.num_workers,
                      pin_memory=device.type == "cuda")


def _set_up(model: nn.Module, splits: DatasetSplits, config: TrainConfig, out_dir, device) -> _TrainingState:
    """Check the inputs, unfreeze the trainable layers, and build the optimiser, schedule, loss and stopping rule."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = resolve_device(device)
    classes = list(splits.classes)
    monitored = monitored_classes(classes, config.normal_classes)
    weights = class_weights(_train_labels(splits), len(classes))
    if len(splits.val) == 0:
        raise ValueError("the validation set is empty; early stopping and model selection need one")
    setup = {"train_config": config.to_dict(), "classes": classes, "n_train": len(splits.train),
             "n_val": len(splits.val), "model": model_description(model)}
    trainable = apply_trainable_layers(model, config.trainable_layers)
    frozen_batchnorm = frozen_batchnorm_layers(model, trainable)
    check_precision(config.precision, config.channels_last, device)
    set_memory_format(model.to(device), config.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                 weight_decay=config.weight_decay or 0.0)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, config.scheduler_step, config.scheduler_gamma)
                 if config.scheduler_step is not None else None)
    return _TrainingState(model=model, config=config, device=device, out_dir=Path(out_dir), classes=classes,
                monitored=monitored, setup=setup, trainable=trainable, frozen_batchnorm=frozen_batchnorm,
                optimizer=optimizer, scheduler=scheduler,
                criterion=nn.CrossEntropyLoss(weight=weights.to(device), reduction="sum"),
                stopper=EarlyStopping(config.patience))


def _resume(run: _TrainingState) -> None:
    """Continue the run ``out_dir`` holds, if it is this one, from its last finished epoch."""
    run.setup, checkpoint = resume_checkpoint(run.out_dir, run.setup)
    if checkpoint is None:
        return
    run.model.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    if run.scheduler is not None:
        run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.stopper.load_state_dict(checkpoint["early_stopping"])
    run.records, run.best_state, run.finished = checkpoint["history"], checkpoint["best_model"], checkpoint["finished"]
    run.resumed_from = checkpoint["epoch"]


def _fit_epoch(run: _TrainingState, loader: DataLoader, epoch: int, progress: bool) -> float:
    """One pass of optimiser steps over the training set; returns its class-weighted mean loss."""
    loss_sum, weight_sum = 0.0, 0.0
    batches = tqdm(loader, desc=f"epoch {epoch}/{run.config.epochs}", leave=False, disable=not progress)
    for images, labels, _ in batches:
        images, labels = images.to(run.device), torch.as_tensor(labels).to(run.device)
        with forward_precision(run.config.precision, run.device):
            logits = run.model(images).float()  # the loss in float32 (a no-op in float32)
        if logits.shape[1] != len(run.classes):
            raise ValueError(f"the model outputs {logits.shape[1]} scores but the data has {len(run.classes)} "
                             "classes; build the model with num_classes=len(splits.classes)")
        batch_loss_sum = run.criterion(logits, labels)
        batch_weight = run.criterion.weight[labels].sum()
        run.optimizer.zero_grad(set_to_none=True)
        (batch_loss_sum / batch_weight).backward()
        run.optimizer.step()
        loss_sum += float(batch_loss_sum.detach())
        weight_sum += float(batch_weight)
        batches.set_postfix(loss=f"{loss_sum / weight_sum:.4f}")
    return loss_sum / weight_sum


def _validate(model, loader, criterion, device, monitored) -> dict[str, float]:
    """Validation loss (with the training class weights), balanced accuracy and monitored mean recall."""
    logits, labels, _ = predict_logits(model, loader, device=device)
    weight = criterion.weight.cpu()
    loss = nn.functional.cross_entropy(logits, labels, weight=weight, reduction="sum") / weight[labels].sum()
    num_classes = logits.shape[1]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, logits.argmax(1)), torch.ones_like(labels), accumulate=True)
    recall = per_class_recall(confusion.numpy())
    monitored_recall = recall[monitored]
    return {
        "val_loss": float(loss),
        "val_balanced_accuracy": float(np.nanmean(recall)),
        "val_monitored_recall": (float(np.nanmean(monitored_recall)) if np.isfinite(monitored_recall).any()
                                 else math.nan),
    }


def _save_epoch(run: _TrainingState, epoch: int, best_scores: dict[str, float] | None) -> None:
    """Write the epoch's files; ``best_scores`` are the validation scores of a new best epoch, else None."""
    best = (None if best_scores is None
            else {"model": run.best_state, "epoch": epoch, "classes": run.classes, **best_scores})
    last = {
        "setup": run.setup, "epoch": epoch, "finished": run.finished, "model": cpu_state(run.model),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "early_stopping": run.stopper.state_dict(), "history": run.records, "best_model": run.best_state,
    }
    save_epoch(run.out_dir, run.records, last, best)


def _run_epoch(run: _TrainingState, epoch: int, train_loader: DataLoader, val_loader: DataLoader,
               generator: torch.Generator, progress: bool) -> None:
    """Train, validate and save one epoch, reseeding torch and the shuffling from ``(seed, epoch)`` first."""
    started = time.perf_counter()
    epoch_seed = _epoch_seed(run.config.seed, epoch)
    torch.manual_seed(epoch_seed)
    generator.manual_seed(epoch_seed)
    set_train_mode(run.model, run.frozen_batchnorm)
    lr = run.optimizer.param_groups[0]["lr"]
    train_loss = _fit_epoch(run, train_loader, epoch, progress)
    if run.scheduler is not None:
        run.scheduler.step()

    with forward_precision(run.config.precision, run.device):
        scores = _validate(run.model, val_loader, run.criterion, run.device, run.monitored)
    if math.isnan(scores["val_loss"]):
        raise FloatingPointError(f"validation loss is NaN at epoch {epoch}: training diverged; "
                                 "lower the learning rate")
    improved, is_best = run.stopper.update(epoch, scores["val_loss"], scores["val_monitored_recall"])
    if is_best:
        run.best_state = cpu_state(run.model)
    run.records.append({"epoch": epoch, "train_loss": train_loss, **scores, "lr": lr,
                        "seconds": time.perf_counter() - started, "improved": improved, "best": is_best})
    run.finished = run.stopper.should_stop or epoch == run.config.epochs
    _save_epoch(run, epoch, scores if is_best else None)
    if progress:
        tqdm.write(f"epoch {epoch}: train loss {train_loss:.4f}, val loss {scores['val_loss']:.4f}, "
                   f"val balanced accuracy {scores['val_balanced_accuracy']:.3f}" + (" (best)" if is_best else ""))


def train(model: nn.Module, splits: DatasetSplits, config: TrainConfig, out_dir: str | os.PathLike,
          device: str | torch.device | None = None, progress: bool = True) -> TrainingResult:
    """Train ``model`` on ``splits.train``, validate on ``splits.val``, and keep the best epoch.

    The recipe of section 4.2 of Lamprou (2023): weighted cross-entropy (:func:`class_weights`), Adam
    with ``config.weight_decay``, optional ``StepLR``, the layers of ``config.trainable_layers``
    unfrozen (plus the head; frozen BatchNorm layers stay in eval mode), and :class:`EarlyStopping` on
    the validation loss and the mean validation recall of the classes not in ``config.normal_classes``.
    After every epoch ``out_dir`` gets ``config.json``, ``history.csv``, ``last.pt`` and ``best.pt``
    (:mod:`camfaith.train.checkpoints`). If it already holds ``last.pt`` of the same setup, training
    resumes after its last finished epoch (or just restores the best weights if that run had
    finished); another setup raises. "Same setup" means the same config, classes, split sizes and
    model, the model being either built afresh exactly as before (same initial weights) or the object
    that run trained. Each epoch reseeds torch and the shuffling from ``(config.seed, epoch)``, so on
    the CPU a resumed run ends with the same weights as an uninterrupted one, and two runs with one
    seed agree.

    Parameters
    ----------
    model : a network whose trainable part is ``model.head`` plus ``config.trainable_layers``;
        typically from :func:`camfaith.models.build_model`. Moved to ``device`` and trained in place.
    splits : train and validation sets yielding ``(image, label, id)``.
    config : the :class:`TrainConfig`.
    out_dir : folder for the files above.
    device : ``"cuda"``, ``"cpu"``, ``"auto"``...; default CUDA when available, else the CPU.
    progress : show tqdm progress bars.

    Returns
    -------
    TrainingResult : the history (losses are class-weighted means over each split, the validation loss
        with the training weights), the best epoch, whether training stopped early, the unfrozen
        modules and the files written. The model holds the best epoch's weights, in eval mode.
    """
    run = _set_up(model, splits, config, out_dir, device)
    _resume(run)
    generator = torch.Generator()
    train_loader = _loader(splits.train, config, run.device, generator)
    val_loader = _loader(splits.val, config, run.device)
    epoch = run.resumed_from + 1
    while not run.finished and epoch <= config.epochs:
        _run_epoch(run, epoch, train_loader, val_loader, generator, progress)
        epoch += 1
    model.load_state_dict(run.best_state)
    model.eval()
    return TrainingResult(history=pd.DataFrame(run.records, columns=HISTORY_COLUMNS),
                          best_epoch=run.stopper.best_epoch, stopped_early=run.stopper.should_stop,
                          trainable_modules=run.trainable, out_dir=run.out_dir,
                          resumed_from_epoch=run.resumed_from, files=training_files(run.out_dir))
