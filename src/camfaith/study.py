"""One study run (a dataset and an architecture): its folder, its model and its test images.

The notebooks of the report share these steps: the training notebook writes ``model.json`` (how to
rebuild the network) next to the checkpoints of :func:`camfaith.train.train`; each metric notebook
rebuilds the trained model from that folder, draws the same seeded test images, explains them, and
writes its per-image results as a CSV there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch

from camfaith.cams import METHODS, cams
from camfaith.data import DATASETS, load_dataset
from camfaith.evaluate import resolve_device
from camfaith.io import save_csv, save_json
from camfaith.models import ARCHITECTURES, build_model
from camfaith.train import load_weights

MODEL_FILE = "model.json"


def check_choice(name: str, value, choices) -> None:
    """Raise a clear error for a parameter outside its choices (first cell of every notebook)."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not known; choose one of: {', '.join(map(str, choices))}")


def check_parameters(dataset: str, arch: str, **positive_integers) -> None:
    """Validate the common notebook parameters: known dataset and arch, positive integers."""
    check_choice("dataset", dataset, DATASETS)
    check_choice("arch", arch, ARCHITECTURES)
    for name, value in positive_integers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")


def parse_list(text, kind=float) -> list:
    """``"4,8,14"`` -> ``[4, 8, 14]``: list parameters travel as strings through papermill."""
    try:
        values = [kind(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None
    if not values:
        raise ValueError(f"expected at least one value, got {text!r}")
    return values


def parse_options(text: str | None) -> dict:
    """Dataset options as ``"name=value,..."`` (values parsed as YAML scalars), e.g. ``"n_train=600"``."""
    import yaml

    options = {}
    for part in str(text or "").split(","):
        if part.strip():
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"dataset options are name=value pairs separated by commas, got {text!r}")
            options[name.strip()] = yaml.safe_load(value.strip())
    return options


def load_splits(dataset: str, input_size: int, seed: int, data_root: str | None = None, options: str | None = None,
                augment: bool = True):
    """The dataset's train/val/test splits at ``input_size``, from ``data_root`` (or ``$CAMFAITH_DATA``)."""
    return load_dataset(dataset, root=data_root or None, input_size=input_size, seed=seed, augment=augment,
                        **parse_options(options))


def save_model_spec(run_dir: str | os.PathLike, **spec) -> Path:
    """Record how to rebuild the run's network (the keyword arguments of :func:`build_model`)."""
    return save_json(spec, Path(run_dir) / MODEL_FILE)


def load_trained(run_dir: str | os.PathLike, device: str | None = None):
    """Rebuild the network of a finished training run and load its best weights, in eval mode.

    Returns ``(model, target_layer, spec)``.
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the training notebook (02_train) for this run first")
    spec = json.loads(path.read_text())
    model, target = build_model(**spec)
    load_weights(model, run_dir)
    return model.to(resolve_device(device)).eval(), target, spec


def sample_indices(splits, n_images: int, seed: int) -> torch.Tensor:
    """Indices of a seeded sample of at most ``n_images`` test images, in increasing order."""
    count = min(n_images, len(splits.test))
    return torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(seed))[:count].sort().values


def sample_test(splits, n_images: int, seed: int, device=None):
    """A seeded sample of ``n_images`` test images: ``(images, labels, ids)`` on ``device``."""
    items = [splits.test[int(i)] for i in sample_indices(splits, n_images, seed)]
    images = torch.stack([item[0] for item in items]).to(resolve_device(device))
    labels = torch.tensor([int(item[1]) for item in items], device=images.device)
    return images, labels, [str(item[2]) for item in items]


def open_run(run_dir, dataset: str, input_size: int, seed: int, n_images: int, data_root: str = "",
             dataset_options: str = "", device: str = "auto"):
    """What every metric chapter starts from: the run's trained model and a seeded test sample.

    Returns ``(model, target_layer, splits, images, labels, ids)``, the images on the model's device.
    """
    model, target_layer, _ = load_trained(run_dir, None if device == "auto" else device)
    splits = load_splits(dataset, input_size, seed, data_root, dataset_options, augment=False)
    images, labels, ids = sample_test(splits, n_images, seed, next(model.parameters()).device)
    return model, target_layer, splits, images, labels, ids


def explain(model, target_layer, images: torch.Tensor, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Grad-CAM and HiResCAM maps (post-processed, input size) and the explained classes, in batches."""
    parts = [cams(model, target_layer, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return {key: torch.cat([part[key] for part in parts]) for key in (*METHODS, "targets")}


def save_results(frame: pd.DataFrame, run_dir: str | os.PathLike, name: str) -> Path:
    """Write a per-image results table of the run atomically as ``<run_dir>/<name>.csv``."""
    return save_csv(frame, Path(run_dir) / f"{name}.csv")


def reference_table(name: str) -> pd.DataFrame:
    """A table of the original study's published values (Lamprou 2023), e.g. ``"table10_summary"``."""
    from importlib import resources

    files = resources.files("camfaith") / "reference"
    available = sorted(p.name.removesuffix(".csv") for p in files.iterdir() if p.name.endswith(".csv"))
    check_choice("reference table", name, available)
    with resources.as_file(files / f"{name}.csv") as path:
        return pd.read_csv(path)
