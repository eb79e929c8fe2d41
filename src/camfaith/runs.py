"""One run of the study (a dataset and a network): the folder that holds it, and every file in it.

The training chapter creates a run; each metric chapter opens it by its folder alone, rebuilds the
trained network, draws the same seeded test images and saves its per-image scores there. A run
folder holds:

==================================  =============================================================
``run.json``                        the settings: dataset, loader options, input size, random
                                    seed, data root and how to rebuild the network
``manifest.csv``                    the split of every sample (id, split, label, group:
                                    the lesion or patient, empty where there is none)
``config.json``, ``history.csv``,   the training's own files (:mod:`camfaith.train.checkpoints`)
``last.pt``, ``best.pt``
``report.json``,                    the test-set scores of Table 4 of Lamprou (2023)
``confusion_matrix.csv``
``<name>.csv``                      per-image scores of the chapters: ``aopc``,
                                    ``aopc_removal``, ``max_sensitivity``, ``haas``,
                                    ``localisation``, ``sanity`` and ``identity``
                                    (Proposition 4 on the trained network)
==================================  =============================================================

Every file is written atomically, so a killed chapter leaves either a whole file or none.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch

from camfaith.data import DATASETS, DatasetSplits, load_dataset
from camfaith.device import resolve_device, set_memory_format
from camfaith.evaluate import SUMMARY_KEYS, confusion_frame
from camfaith.io import save_csv, save_json
from camfaith.models import ARCHITECTURES, build_model
from camfaith.parameters import check_choice, check_positive_integers, parse_options
from camfaith.train import load_weights, training_files

RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.csv"
REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion_matrix.csv"
SCORES = ("aopc", "aopc_removal", "max_sensitivity", "haas", "localisation", "sanity", "identity", "family_aopc",
          "feature_deletion", "family_max_sensitivity", "family_haas", "family_localisation",
          "family_stages", "reliability", "multiverse")


@dataclass(frozen=True)
class Run:
    """The settings of a run and the paths of its files; create with :meth:`create`, reopen with :meth:`open`."""

    folder: Path
    dataset: str
    arch: str
    input_size: int
    seed: int = 0
    dataset_options: dict = field(default_factory=dict)  # keyword arguments of the loader (or "name=value,...")
    data_root: str = ""  # empty: $CAMFAITH_DATA when the data are read
    model: dict = field(default_factory=dict)  # keyword arguments of build_model, weights excepted
    train_seed: int | None = None  # initial weights and shuffling; None: ``seed``
    replicate_of: str = ""  # the run this one repeats with another train_seed (same data, same split)

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("arch", self.arch, ARCHITECTURES)
        check_positive_integers(input_size=self.input_size)
        object.__setattr__(self, "dataset_options", parse_options(self.dataset_options))  # fails early if malformed
        object.__setattr__(self, "folder", Path(self.folder))
        if self.train_seed is None:
            object.__setattr__(self, "train_seed", self.seed)

    @classmethod
    def create(cls, folder: str | os.PathLike, **settings) -> Run:
        """Record a new run's settings in ``<folder>/run.json`` (the training chapter does this)."""
        run = cls(folder=Path(folder), **settings)
        save_json({key: value for key, value in asdict(run).items() if key != "folder"}, run.folder / RUN_FILE)
        return run

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Run:
        """The run recorded in ``folder``; a clear error when its training chapter has not run."""
        path = Path(folder) / RUN_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {folder} is not a run folder yet; run the training "
                                    "chapter (notebooks/02_train.py) with run_dir pointing there first")
        return cls(folder=Path(folder), **json.loads(path.read_text()))

    @property
    def name(self) -> str:
        return self.folder.name

    # -- data and network ---------------------------------------------------------------------------

    def load_splits(self, augment: bool = False) -> DatasetSplits:
        """The dataset's train/validation/test splits, drawn with the run's seed."""
        return load_dataset(self.dataset, root=self.data_root or None, input_size=self.input_size, seed=self.seed,
                            augment=augment, **self.dataset_options)

    def build_model(self, weights: str | None = None):
        """A new network of the run and its target layer: ``(model, target_layer)``.

        ``weights`` names torchvision's pretrained weights to start from (training only; a trained run's
        weights are in its checkpoints, see :meth:`trained_model`).
        """
        return build_model(**self.model, weights=weights)

    def trained_model(self, device: str | torch.device | None = "auto", channels_last: bool = False):
        """The network with its best trained weights, in eval mode on ``device``: ``(model, target_layer)``.

        ``channels_last`` converts its parameters to that memory format
        (:func:`camfaith.device.set_memory_format`; the default, contiguous, changes nothing).
        """
        model, target_layer = self.build_model()
        load_weights(model, self.folder)
        return set_memory_format(model.to(resolve_device(device)).eval(), channels_last), target_layer

    def test_indices(self, splits: DatasetSplits, n_images: int) -> torch.Tensor:
        """Indices of a seeded sample of at most ``n_images`` test images, in increasing order."""
        check_positive_integers(n_images=n_images)
        count = min(n_images, len(splits.test))
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randperm(len(splits.test), generator=generator)[:count].sort().values

    def test_images(self, splits: DatasetSplits, n_images: int, device: str | torch.device | None = "auto"):
        """The seeded sample of :meth:`test_indices`: ``(images, labels, ids)``, images on ``device``."""
        return _stacked(splits.test, self.test_indices(splits, n_images), device)

    def test_masks(self, splits: DatasetSplits, n_images: int) -> torch.Tensor | None:
        """The object masks ``(N, H, W)`` of the :meth:`test_images` sample, or None unless every test image
        has one (the synthetic data; HAM10000 has lesion masks for some images only)."""
        masks = getattr(splits.test, "masks", None)
        return None if masks is None else masks[self.test_indices(splits, n_images)]

    def masked_test_images(self, splits: DatasetSplits, n_images: int, device: str | torch.device | None = "auto"):
        """A seeded sample of at most ``n_images`` test images that have a ground-truth mask:
        ``(images, labels, ids, masks)``, or None when the data set has no masks.

        Synthetic data have a mask for every image (``splits.test.masks``); HAM10000 has lesion
        segmentations for some images only (``splits.test.mask_indices``).
        """
        test = splits.test
        if getattr(test, "masks", None) is not None:
            indices = self.test_indices(splits, n_images)
            masks = test.masks[indices]
        elif len(getattr(test, "mask_indices", ())):
            check_positive_integers(n_images=n_images)
            candidates = torch.as_tensor(test.mask_indices)
            order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(self.seed))
            indices = candidates[order[:n_images]].sort().values
            masks = test.masks_at(indices.tolist())
        else:
            return None
        images, labels, ids = _stacked(test, indices, device)
        return images, labels, ids, masks.to(images.device)

    # -- files --------------------------------------------------------------------------------------

    @property
    def files(self) -> dict[str, Path]:
        """Every file of the run folder by role (per-image scores under their metric's name)."""
        names = {"run": RUN_FILE, "manifest": MANIFEST_FILE, "report": REPORT_FILE, "confusion": CONFUSION_FILE}
        return ({role: self.folder / name for role, name in names.items()} | training_files(self.folder)
                | {metric: self.folder / f"{metric}.csv" for metric in SCORES})

    def test_groups(self) -> pd.Series | None:
        """The group (lesion, patient) of each test image by id, from the manifest; None where the data
        set has no groups (each image is then its own group)."""
        path = self.files["manifest"]
        if not path.exists():
            return None
        manifest = pd.read_csv(path, dtype={"id": str, "group": str}, keep_default_na=False)
        if "group" not in manifest or not (manifest["group"] != "").any():
            return None
        test = manifest[manifest["split"] == "test"]
        return pd.Series(test["group"].to_numpy(), index=test["id"].to_numpy(), name="group")

    def save_manifest(self, splits: DatasetSplits) -> Path:
        return save_csv(splits.manifest, self.files["manifest"])

    def save_report(self, report: dict) -> Path:
        """Write the classification report (NaN as ``null``) and its confusion matrix."""
        missing = [key for key in (*SUMMARY_KEYS, "confusion_matrix", "class_names") if key not in report]
        if missing:
            raise ValueError(f"not a classification report (missing {', '.join(missing)}); "
                             "build it with camfaith.classification_report()")
        save_csv(confusion_frame(report), self.files["confusion"])
        return save_json(report, self.files["report"])

    def report(self) -> dict:
        path = self.files["report"]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the training chapter of {self.name} has not finished")
        return json.loads(path.read_text())

    def save_scores(self, metric: str, frame: pd.DataFrame) -> Path:
        """Write the per-image scores of a metric chapter."""
        check_choice("metric", metric, SCORES)
        return save_csv(frame, self.files[metric])

    def has_scores(self, metric: str) -> bool:
        check_choice("metric", metric, SCORES)
        return self.files[metric].exists()

    def scores(self, metric: str) -> pd.DataFrame:
        if not self.has_scores(metric):
            raise FileNotFoundError(f"{self.files[metric]} is missing: run the {metric} chapter of {self.name}")
        return pd.read_csv(self.files[metric])


def _stacked(dataset, indices, device) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(images, labels, ids)`` of the dataset's items at ``indices``, the tensors on ``device``."""
    items = [dataset[int(i)] for i in indices]
    images = torch.stack([item[0] for item in items]).to(resolve_device(device))
    labels = torch.tensor([int(item[1]) for item in items], device=images.device)
    return images, labels, [str(item[2]) for item in items]
