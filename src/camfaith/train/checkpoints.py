"""The training folder: its files, what identifies the run in it, and the checks before resuming it.

A training folder holds four files, each written atomically (:mod:`camfaith.io`):

- ``config.json``: the setup of the run: the configuration, class names, split sizes, the model's
  class and a fingerprint of its initial weights (:func:`weights_fingerprint`);
- ``history.csv``: one row per finished epoch (:data:`HISTORY_COLUMNS`);
- ``last.pt``: model, optimiser, scheduler and early-stopping states after the last finished epoch,
  plus the best weights so far: everything needed to resume;
- ``best.pt``: the best epoch's model ``state_dict`` (key ``"model"``) and its epoch and scores.

A run resumes only in a folder holding the same setup (:func:`resume_checkpoint`), so a checkpoint
never continues with another configuration, data set or network.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from camfaith.io import save_csv, save_json, save_torch

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_monitored_recall",
                   "lr", "seconds", "improved", "best")
_FILES = {"config": CONFIG_FILE, "history": HISTORY_FILE, "last": LAST_CHECKPOINT, "best": BEST_CHECKPOINT}


def training_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The paths of the training files in ``folder`` by role: ``config``, ``history``, ``last``, ``best``."""
    folder = Path(folder)
    return {role: folder / name for role, name in _FILES.items()}


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's ``state_dict`` on the CPU, unaffected by further training."""
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def weights_fingerprint(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """A short SHA-256 of the weights' names and bytes: equal weights, equal fingerprints."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def model_description(model: nn.Module) -> dict:
    """What identifies the network of a run: its class, build settings if known, initial weights."""
    description = {"class": type(model).__name__,
                   "num_parameters": sum(parameter.numel() for parameter in model.parameters())}
    for attribute in ("arch", "head_type", "variant", "input_size", "stages", "removed_downsampling"):
        if hasattr(model, attribute):
            description[attribute] = getattr(model, attribute)
    description["initial_weights_sha256"] = weights_fingerprint(model)
    return description


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _recognise_trained_model(setup: dict, checkpoint: Mapping) -> dict:
    """Accept the very model object a run left behind (e.g. a notebook cell run twice).

    Its weights are then those of the checkpoint's last or best epoch, not the initial ones; the setup
    is given the saved initial fingerprint so the comparison with the saved run can succeed.
    """
    saved_fingerprint = checkpoint["setup"]["model"].get("initial_weights_sha256")
    current_fingerprint = setup["model"]["initial_weights_sha256"]
    states = [state for state in (checkpoint["model"], checkpoint["best_model"]) if state is not None]
    if current_fingerprint != saved_fingerprint and current_fingerprint in map(weights_fingerprint, states):
        return {**setup, "model": {**setup["model"], "initial_weights_sha256": saved_fingerprint}}
    return setup


def _check_resumable(out_dir: Path, saved: Mapping, current: Mapping) -> None:
    """Raise, naming what differs, unless the saved setup is the current one."""
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


def resume_checkpoint(out_dir: str | os.PathLike, setup: dict) -> tuple[dict, dict | None]:
    """Check that ``out_dir`` holds no run or this one, and record the setup in ``config.json``.

    ``setup`` describes the run about to train (``train_config``, ``classes``, ``n_train``, ``n_val``
    and ``model``, the latter from :func:`model_description`). Returns the setup as recorded (the
    saved initial fingerprint when the model is the object that run trained) and the contents of
    ``last.pt``, or ``None`` for a fresh start. Raises ``ValueError`` when the folder holds another run.
    """
    out_dir = Path(out_dir)
    files = training_files(out_dir)
    checkpoint = None
    if files["last"].exists():
        checkpoint = _load(files["last"])
        setup = _recognise_trained_model(setup, checkpoint)
        _check_resumable(out_dir, checkpoint["setup"], setup)
    elif files["config"].exists():
        _check_resumable(out_dir, json.loads(files["config"].read_text()), setup)
    save_json(setup, files["config"])
    return setup, checkpoint


def save_epoch(out_dir: str | os.PathLike, history: list[dict], last: dict, best: dict | None = None) -> None:
    """Write one finished epoch: ``best.pt`` (if given) and ``history.csv`` first, then ``last.pt``.

    ``last.pt``, written last, marks the epoch as finished: a run killed before it repeats the epoch.
    """
    files = training_files(out_dir)
    if best is not None:
        save_torch(best, files["best"])
    save_csv(pd.DataFrame(history, columns=HISTORY_COLUMNS), files["history"])
    save_torch(last, files["last"])


def load_weights(model: nn.Module, out_dir: str | os.PathLike, which: str = "best") -> nn.Module:
    """Load the ``best`` (or ``last``) weights a :func:`camfaith.train.train` run left in ``out_dir``."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    path = training_files(out_dir)[which]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run camfaith.train.train with out_dir={out_dir}")
    model.load_state_dict(_load(path)["model"])
    return model
