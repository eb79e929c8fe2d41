"""Training as in the seed's section 4.2 and Table 3, resumable and deterministic.

The seed fine-tunes pretrained networks with a class-weighted cross-entropy and Adam, unfreezing the
layers Table 3 names, with optional L2 weight decay and a step learning-rate schedule, and stops early
when for ``patience`` epochs neither the validation loss decreases nor the mean validation recall of
the monitored (non-normal) classes increases. :func:`train` does the same and adds what a
reproducible report needs: a checkpoint after every epoch (atomic), resumption of an interrupted run,
and seeding of everything random, so two CPU runs with one seed produce the same history.

Pieces that carry a decision are pure functions or small classes, tested on their own:
:func:`parse_trainable_layers`, :func:`class_weights` and :class:`EarlyStopping`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from camfaith.data.base import DatasetSplits
from camfaith.evaluate import per_class_recall, predict_logits, resolve_device
from camfaith.io import save_csv, save_json, save_torch

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_monitored_recall",
                   "lr", "seconds", "improved", "best")
HEAD_MODULE = "head"
ALL_LAYERS = "all"

# A range of numbered modules: "features.19-34", "19-34" or "layer1-layer4" (prefix repeated or not).
_RANGE = re.compile(r"(?P<prefix>.*?)(?P<start>\d+)-(?:(?P=prefix))?(?P<stop>\d+)")


@dataclass
class TrainConfig:
    """One training configuration, one column of the seed's Table 3.

    Attributes
    ----------
    lr : Adam's learning rate.
    weight_decay : L2 penalty passed to Adam (``None`` or 0: none).
    scheduler_step, scheduler_gamma : ``StepLR`` period (epochs) and factor; both ``None`` for a
        constant learning rate.
    batch_size, epochs : mini-batch size and the maximum number of epochs.
    patience : epochs without improvement before stopping (``None``: never stop early); see
        :class:`EarlyStopping`.
    trainable_layers : the layers to unfreeze, written as in Table 3: comma-separated module names
        (``"layer3,layer4"``), numbered ranges (``"features.19-34"``: VGG ``features`` indices 19 to 34
        inclusive; a list of such entries also works), ``None`` or ``""`` for the head alone, or
        ``"all"`` for the whole network (training from scratch). The head is always trainable. See
        :func:`parse_trainable_layers`.
    normal_classes : class names whose recall is not monitored for early stopping (seed section
        4.2: Covid-19's ``Normal``).
    num_workers : DataLoader worker processes.
    seed : seeds the shuffling, augmentation and dropout of every epoch.
    """

    lr: float = 1e-4
    weight_decay: float | None = None
    scheduler_step: int | None = None
    scheduler_gamma: float | None = None
    batch_size: int = 32
    epochs: int = 10
    patience: int | None = None
    trainable_layers: str | None = None
    normal_classes: tuple[str, ...] = ()
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.normal_classes, str):
            self.normal_classes = tuple(name.strip() for name in self.normal_classes.split(",") if name.strip())
        self.normal_classes = tuple(self.normal_classes)
        if isinstance(self.trainable_layers, (list, tuple)):
            self.trainable_layers = ",".join(self.trainable_layers)
        if self.trainable_layers is not None and not isinstance(self.trainable_layers, str):
            raise ValueError(f"trainable_layers must be a string like 'layer3,layer4' or None, "
                             f"got {self.trainable_layers!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be None or a non-negative number, got {self.weight_decay!r}")
        if (self.scheduler_step is None) != (self.scheduler_gamma is None):
            raise ValueError("give both scheduler_step and scheduler_gamma (StepLR), or neither")
        if self.scheduler_step is not None:
            _check_positive_int("scheduler_step", self.scheduler_step)
            if not 0 < self.scheduler_gamma <= 1:
                raise ValueError(f"scheduler_gamma must be in (0, 1], got {self.scheduler_gamma!r}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("epochs", self.epochs)
        if self.patience is not None:
            _check_positive_int("patience", self.patience)
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {self.num_workers!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["normal_classes"] = list(self.normal_classes)
        return values

    @classmethod
    def from_dict(cls, values: Mapping, ignore: Iterable[str] = ()) -> TrainConfig:
        """Build from a mapping such as a row of ``table3_training.csv`` or a YAML block.

        Missing entries (``None``, NaN, empty strings) become ``None``; integral floats (pandas reads
        an integer column with gaps as floats) become integers. Keys in ``ignore`` (e.g. ``dataset``,
        ``arch``) are skipped; any other unknown key is an error.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - set(ignore))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        cleaned = {}
        for key in known & set(values):
            value = values[key]
            if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
                value = None
            elif isinstance(value, (float, np.floating)) and float(value).is_integer() and key in _INT_FIELDS:
                value = int(value)
            elif isinstance(value, np.integer):
                value = int(value)
            elif isinstance(value, np.floating):
                value = float(value)
            if value is None and key in _NON_OPTIONAL:
                continue  # keep the default
            cleaned[key] = value
        return cls(**cleaned)


_INT_FIELDS = {"scheduler_step", "batch_size", "epochs", "patience", "num_workers", "seed"}
_NON_OPTIONAL = {"lr", "batch_size", "epochs", "normal_classes", "num_workers", "seed"}


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------------
# Trainable layers


def _resolve_module_name(name: str, module_names: Sequence[str], token: str) -> str:
    """The module called ``name``: an exact qualified name, else the shallowest whose name ends in it.

    Suffix matching lets Table 3's torchvision names (``layer3``) find the same modules when the network
    wraps them (``features.layer3``). Ties at the shallowest depth are ambiguous and raise.
    """
    if name in module_names:
        return name
    candidates = [candidate for candidate in module_names if candidate.endswith("." + name)]
    if not candidates:
        top = [n for n in module_names if n.count(".") <= 1][:24]
        raise ValueError(
            f"trainable layer {name!r} (from {token!r}) matches no module of the model. "
            f"Use module names as model.named_modules() gives them, e.g. {', '.join(top)}"
        )
    depth = min(candidate.count(".") for candidate in candidates)
    shallowest = [candidate for candidate in candidates if candidate.count(".") == depth]
    if len(shallowest) > 1:
        raise ValueError(f"trainable layer {name!r} is ambiguous: it matches {', '.join(shallowest)}; "
                         "write the full name")
    return shallowest[0]


def parse_trainable_layers(spec: str | None, module_names: Iterable[str]) -> list[str]:
    """Resolve a Table 3 ``trainable_layers`` entry into qualified module names.

    Parameters
    ----------
    spec : comma-separated entries, each a module name (``"layer3"``, ``"features.layer3.1"``) or a
        numbered range with both ends included (``"features.19-34"``, ``"19-34"``,
        ``"layer1-layer4"``). Spaces are ignored. ``None``, ``""`` or ``"none"``: no layer (only the
        head will train). ``"all"``: the whole network (returns ``[""]``, the root module).
    module_names : the names ``model.named_modules()`` yields.

    Returns
    -------
    The resolved qualified names, without duplicates, in the order given. A name resolves to the
    module of exactly that name if there is one, else to the shallowest module whose name ends with
    ``"." + name`` (so ``layer3`` finds ``features.layer3`` in a :class:`camfaith.models.CamNet`).

    Raises
    ------
    ValueError
        If an entry matches no module, matches several at the same depth, or a range runs backwards.
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return []
    if spec.strip().lower() == ALL_LAYERS:
        return [""]
    names = [name for name in module_names if name]
    resolved: list[str] = []
    for token in spec.replace(" ", "").split(","):
        if not token:
            raise ValueError(f"empty entry in trainable_layers {spec!r}; separate module names with single commas")
        match = _RANGE.fullmatch(token)
        if match:
            start, stop = int(match["start"]), int(match["stop"])
            if start > stop:
                raise ValueError(f"range {token!r} runs backwards; write it as {match['prefix']}{stop}-{start}")
            wanted = [f"{match['prefix']}{index}" for index in range(start, stop + 1)]
        else:
            wanted = [token]
        for name in wanted:
            module_name = _resolve_module_name(name, names, token)
            if module_name not in resolved:
                resolved.append(module_name)
    return resolved


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(prefix == "" or name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def apply_trainable_layers(model: nn.Module, spec: str | None) -> list[str]:
    """Freeze every parameter except those of the layers in ``spec`` and of ``model.head``.

    Returns the unfrozen module names (``[""]`` for ``"all"``; ``"head"`` included otherwise).
    """
    module_names = [name for name, _ in model.named_modules()]
    trainable = parse_trainable_layers(spec, module_names)
    if trainable != [""]:
        if HEAD_MODULE not in module_names:
            raise ValueError("the model has no 'head' module, so the always-trainable classifier is unknown; "
                             "build it with camfaith.models.build_model or use trainable_layers='all'")
        trainable.append(HEAD_MODULE)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(_within(name, trainable))
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"trainable_layers={spec!r} leaves no parameter to train")
    return trainable


def frozen_batchnorm_layers(model: nn.Module, trainable: Iterable[str]) -> list[str]:
    """Names of the BatchNorm layers that must stay in eval mode while training.

    A BatchNorm layer is frozen when none of its parameters is trainable (or, for one without affine
    parameters, when it lies outside every trainable module). Frozen layers keep their running
    statistics, as a frozen pretrained layer should.
    """
    trainable = list(trainable)
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))
            if parameters:
                is_frozen = not any(parameter.requires_grad for parameter in parameters)
            else:
                is_frozen = not _within(name, trainable)
            if is_frozen:
                frozen.append(name)
    return frozen


def set_train_mode(model: nn.Module, frozen_batchnorm: Iterable[str]) -> nn.Module:
    """``model.train()``, then the frozen BatchNorm layers back to eval mode."""
    model.train()
    for name in frozen_batchnorm:
        model.get_submodule(name).eval()
    return model


# ---------------------------------------------------------------------------------------------------
# Loss weights and early stopping


def class_weights(labels: Sequence[int] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights from the training labels: inverse frequency, normalised.

    ``w_c = N / (C * n_c)`` for ``N`` samples, ``C`` classes and ``n_c`` samples of class ``c``: each
    class then contributes the same total weight, and the average weight over the samples is 1 (the
    seed's weighted cross-entropy for class imbalance, section 4.2). Balanced data gives all ones.

    Raises
    ------
    ValueError
        If a class has no training sample (its weight would be infinite) or a label is out of range.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    if len(labels) == 0:
        raise ValueError("no training labels to weigh classes by")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    counts = torch.bincount(labels, minlength=num_classes).double()
    absent = torch.nonzero(counts == 0).flatten().tolist()
    if absent:
        raise ValueError(f"classes {absent} have no training sample; the model cannot learn them. "
                         "Check the split, or drop those classes")
    return (len(labels) / (num_classes * counts)).float()


@dataclass
class EarlyStopping:
    """The seed's stopping rule (section 4.2), and the choice of the epoch whose weights are kept.

    An epoch is an *improvement* when its validation loss is below every earlier one **or** its
    monitored mean recall is above every earlier one. Training stops once ``patience`` consecutive
    epochs bring no improvement (``patience=None``: never).

    The *best* epoch, whose weights :func:`train` restores, is the one with the lowest validation loss;
    among equal losses the one with the higher monitored recall, then the earlier one.
    """

    patience: int | None
    best_loss: float = math.inf
    best_recall: float = -math.inf
    best_epoch: int | None = None
    best_epoch_recall: float = -math.inf
    epochs_without_improvement: int = 0

    def update(self, epoch: int, val_loss: float, monitored_recall: float) -> tuple[bool, bool]:
        """Record one epoch. Returns ``(improved, is_best)``.

        NaN values never count as improvements.
        """
        is_best = val_loss < self.best_loss or (
            val_loss == self.best_loss and monitored_recall > self.best_epoch_recall
        )
        improved = val_loss < self.best_loss or monitored_recall > self.best_recall
        if is_best:
            self.best_epoch, self.best_epoch_recall = epoch, monitored_recall
        self.best_loss = min(self.best_loss, val_loss) if not math.isnan(val_loss) else self.best_loss
        if not math.isnan(monitored_recall):
            self.best_recall = max(self.best_recall, monitored_recall)
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        return improved, is_best

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.epochs_without_improvement >= self.patience

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: Mapping) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def monitored_classes(classes: Sequence[str], normal_classes: Iterable[str]) -> list[int]:
    """Indices of the classes whose recall early stopping watches: all but the normal ones."""
    normal = list(normal_classes)
    unknown = [name for name in normal if name not in classes]
    if unknown:
        raise ValueError(f"normal_classes {unknown} are not classes of this data set; classes: {list(classes)}")
    monitored = [index for index, name in enumerate(classes) if name not in normal]
    if not monitored:
        raise ValueError("every class is listed in normal_classes, so no recall is left to monitor")
    return monitored


# ---------------------------------------------------------------------------------------------------
# The training loop


@dataclass
class TrainingResult:
    """What :func:`train` returns; the model itself now holds the best epoch's weights, in eval mode."""

    history: pd.DataFrame
    best_epoch: int
    stopped_early: bool
    trainable_modules: list[str]
    out_dir: Path
    resumed_from_epoch: int = 0  # 0: started afresh
    files: dict[str, Path] = field(default_factory=dict)


def _epoch_seed(seed: int, epoch: int) -> int:
    """An independent seed per epoch, so a resumed run replays exactly the remaining epochs."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def _weights_fingerprint(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> str:
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _model_description(model: nn.Module) -> dict:
    """What identifies the network of a run: its class, build settings if known, initial weights."""
    description = {"class": type(model).__name__,
                   "num_parameters": sum(parameter.numel() for parameter in model.parameters())}
    for attribute in ("arch", "head_type", "variant", "input_size", "stages", "removed_downsampling"):
        if hasattr(model, attribute):
            description[attribute] = getattr(model, attribute)
    description["initial_weights_sha256"] = _weights_fingerprint(model)
    return description


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
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=generator is not None,
                      generator=generator, num_workers=config.num_workers,
                      pin_memory=device.type == "cuda")


def _validate(model, loader, criterion, device, monitored) -> dict[str, float]:
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


def _recognise_trained_model(setup: dict, checkpoint: Mapping) -> dict:
    """Accept the very model object a run left behind (e.g. a notebook cell run twice).

    Its weights are then those of the checkpoint's last or best epoch, not the initial ones; the setup
    is given the saved initial fingerprint so the comparison with the saved run can succeed.
    """
    saved_fingerprint = checkpoint["setup"]["model"].get("initial_weights_sha256")
    current_fingerprint = setup["model"]["initial_weights_sha256"]
    states = [state for state in (checkpoint["model"], checkpoint["best_model"]) if state is not None]
    if current_fingerprint != saved_fingerprint and current_fingerprint in map(_weights_fingerprint, states):
        return {**setup, "model": {**setup["model"], "initial_weights_sha256": saved_fingerprint}}
    return setup


def _check_resumable(out_dir: Path, saved: Mapping, current: Mapping) -> None:
    if saved == current:
        return
    differing = sorted(key for key in set(saved) | set(current) if saved.get(key) != current.get(key))
    for section in ("train_config", "model"):
        if section in differing:
            old, new = saved.get(section, {}), current[section]
            differing += [f"{section}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    hint = ""
    if saved.get("model", {}).get("initial_weights_sha256") != current["model"].get("initial_weights_sha256"):
        hint = (" The model's initial weights differ: to resume, pass a freshly built model made the same "
                "way (same weights, same torch seed), not one whose training was interrupted.")
    raise ValueError(
        f"{out_dir} holds a training run with a different setup (differs in: {', '.join(differing)}).{hint} "
        "Otherwise use another out_dir, or delete this one to start over."
    )


def train(
    model: nn.Module,
    splits: DatasetSplits,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Train ``model`` on ``splits.train``, validate on ``splits.val``, and keep the best epoch.

    The recipe of the seed's section 4.2: weighted cross-entropy (:func:`class_weights`), Adam with
    ``config.weight_decay``, optional ``StepLR``, the layers of ``config.trainable_layers`` unfrozen
    (plus the head; frozen BatchNorm layers stay in eval mode), and :class:`EarlyStopping` on the
    validation loss and the mean validation recall of the classes not in ``config.normal_classes``.
    At the end the model holds the weights of the best epoch.

    Files in ``out_dir``, each written atomically:

    - ``config.json``: the configuration, class names, split sizes, model class and a fingerprint of
      its initial weights;
    - ``history.csv``: one row per finished epoch (:data:`HISTORY_COLUMNS`);
    - ``last.pt``: model, optimiser, scheduler and early-stopping states after the last finished
      epoch, plus the best weights so far: everything needed to resume;
    - ``best.pt``: the best epoch's model ``state_dict`` (key ``"model"``) and its epoch and scores.

    If ``out_dir`` already holds ``last.pt`` of the same setup, training resumes after its last
    finished epoch (or just restores the best weights if that run had finished); another setup raises.
    "Same setup" means the same config, classes, split sizes and model, the model being either built
    afresh exactly as before (same initial weights) or the object that run trained.
    Each epoch reseeds torch and the shuffling from ``(config.seed, epoch)``, so on the CPU a resumed
    run ends with the same weights as an uninterrupted one, and two runs with one seed agree.

    Parameters
    ----------
    model : a network whose trainable part is ``model.head`` plus ``config.trainable_layers``;
        typically from :func:`camfaith.models.build_model`. Moved to ``device`` and trained in place.
    splits : train and validation sets yielding ``(image, label, id)``.
    config : the :class:`TrainConfig`.
    out_dir : folder for the files above.
    device : ``"cuda"``, ``"cpu"``...; default CUDA when available, else the CPU.
    progress : show tqdm progress bars.

    Returns
    -------
    TrainingResult : the history (losses are class-weighted means over each split, the validation loss
        with the training weights), the best epoch, whether training stopped early, the unfrozen
        modules and the files written.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = resolve_device(device)
    out_dir = Path(out_dir)
    classes = list(splits.classes)
    monitored = monitored_classes(classes, config.normal_classes)
    train_labels = _train_labels(splits)
    weights = class_weights(train_labels, len(classes))
    if len(splits.val) == 0:
        raise ValueError("the validation set is empty; early stopping and model selection need one")

    setup = {
        "train_config": config.to_dict(),
        "classes": classes,
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "model": _model_description(model),
    }
    trainable = apply_trainable_layers(model, config.trainable_layers)
    frozen_batchnorm = frozen_batchnorm_layers(model, trainable)
    model.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                 weight_decay=config.weight_decay or 0.0)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, config.scheduler_step, config.scheduler_gamma)
                 if config.scheduler_step is not None else None)
    criterion = nn.CrossEntropyLoss(weight=weights.to(device), reduction="sum")
    stopper = EarlyStopping(config.patience)
    records: list[dict] = []
    best_state = None
    finished = False
    first_epoch = 1

    paths = {name: out_dir / name for name in (CONFIG_FILE, HISTORY_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT)}
    if paths[LAST_CHECKPOINT].exists():
        checkpoint = torch.load(paths[LAST_CHECKPOINT], map_location="cpu", weights_only=True)
        setup = _recognise_trained_model(setup, checkpoint)
        _check_resumable(out_dir, checkpoint["setup"], setup)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        stopper.load_state_dict(checkpoint["early_stopping"])
        records, best_state, finished = checkpoint["history"], checkpoint["best_model"], checkpoint["finished"]
        first_epoch = checkpoint["epoch"] + 1
    elif paths[CONFIG_FILE].exists():
        _check_resumable(out_dir, json.loads(paths[CONFIG_FILE].read_text()), setup)
    save_json(setup, paths[CONFIG_FILE])
    resumed_from = first_epoch - 1

    loader_generator = torch.Generator()
    train_loader = _loader(splits.train, config, device, loader_generator)
    val_loader = _loader(splits.val, config, device)
    epoch = first_epoch
    while not finished and epoch <= config.epochs:
        started = time.perf_counter()
        epoch_seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(epoch_seed)
        loader_generator.manual_seed(epoch_seed)
        set_train_mode(model, frozen_batchnorm)
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, weight_sum = 0.0, 0.0
        batches = tqdm(train_loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress)
        for images, labels, _ in batches:
            images, labels = images.to(device), torch.as_tensor(labels).to(device)
            logits = model(images)
            if logits.shape[1] != len(classes):
                raise ValueError(f"the model outputs {logits.shape[1]} scores but the data has {len(classes)} "
                                 "classes; build the model with num_classes=len(splits.classes)")
            batch_loss_sum = criterion(logits, labels)
            batch_weight = criterion.weight[labels].sum()
            optimizer.zero_grad(set_to_none=True)
            (batch_loss_sum / batch_weight).backward()
            optimizer.step()
            loss_sum += float(batch_loss_sum.detach())
            weight_sum += float(batch_weight)
            batches.set_postfix(loss=f"{loss_sum / weight_sum:.4f}")
        if scheduler is not None:
            scheduler.step()

        scores = _validate(model, val_loader, criterion, device, monitored)
        if math.isnan(scores["val_loss"]):
            raise FloatingPointError(f"validation loss is NaN at epoch {epoch}: training diverged; "
                                     "lower the learning rate")
        improved, is_best = stopper.update(epoch, scores["val_loss"], scores["val_monitored_recall"])
        if is_best:
            best_state = _cpu_state(model)
        records.append({"epoch": epoch, "train_loss": loss_sum / weight_sum, **scores, "lr": lr,
                        "seconds": time.perf_counter() - started, "improved": improved, "best": is_best})
        finished = stopper.should_stop or epoch == config.epochs

        # best.pt and history.csv first; last.pt, written last, marks the epoch as finished.
        if is_best:
            save_torch({"model": best_state, "epoch": epoch, "classes": classes, **scores}, paths[BEST_CHECKPOINT])
        save_csv(pd.DataFrame(records, columns=HISTORY_COLUMNS), paths[HISTORY_FILE])
        save_torch({
            "setup": setup, "epoch": epoch, "finished": finished, "model": _cpu_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "early_stopping": stopper.state_dict(), "history": records, "best_model": best_state,
        }, paths[LAST_CHECKPOINT])
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {records[-1]['train_loss']:.4f}, val loss "
                       f"{scores['val_loss']:.4f}, val balanced accuracy {scores['val_balanced_accuracy']:.3f}"
                       + (" (best)" if is_best else ""))
        epoch += 1

    model.load_state_dict(best_state)
    model.eval()
    return TrainingResult(
        history=pd.DataFrame(records, columns=HISTORY_COLUMNS),
        best_epoch=stopper.best_epoch,
        stopped_early=stopper.should_stop,
        trainable_modules=trainable,
        out_dir=out_dir,
        resumed_from_epoch=resumed_from,
        files=paths,
    )


def load_weights(model: nn.Module, out_dir: str | os.PathLike, which: str = "best") -> nn.Module:
    """Load the ``best`` (or ``last``) weights a :func:`train` run left in ``out_dir`` into ``model``."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(out_dir) / (BEST_CHECKPOINT if which == "best" else LAST_CHECKPOINT)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run camfaith.train.train with out_dir={out_dir}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return model
