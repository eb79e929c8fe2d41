"""Datasets over sample tables, and their assembly into :class:`~camfaith.data.base.DatasetSplits`.

Every loader lists its samples as a table with the columns ``id``, ``label`` and ``split`` plus
either ``path`` (an image file, decoded lazily with PIL) or ``index`` (a row of an in-memory or
memory-mapped uint8 array). This module turns such a table into three datasets and the manifest.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from camfaith.data.base import MANIFEST_COLUMNS, DatasetSplits, data_root
from camfaith.data.splits import SPLITS
from camfaith.data.transforms import (
    DEFAULT_ROTATION_DEGREES,
    CorruptImageError,
    array_to_image,
    image_transform,
    load_image,
    skip_corrupt_default,
)

ARRAY_LAYOUTS = ("HWC", "HW", "CWH")


class ImageFileDataset(Dataset):
    """Images decoded from disk on access; items are ``(image, label, id)``.

    Parameters
    ----------
    paths, labels, ids
        One entry per sample.
    transform
        Maps an RGB PIL image to a tensor (see :func:`camfaith.data.transforms.image_transform`).
    skip_corrupt
        Decode every image once now and drop the unreadable ones; their ids are kept in
        :attr:`skipped_ids`. When false, an unreadable image raises
        :class:`~camfaith.data.transforms.CorruptImageError` naming the file when it is accessed.
    groups
        Group of each sample (a HAM10000 lesion, a BreakHis case); default ``""`` for every sample.

    Attributes
    ----------
    labels : numpy.ndarray
        Class index of every sample (no decoding needed, e.g. for class weights).
    ids : list of str
        Sample ids, as in the manifest.
    groups : list of str
        Group of every sample, as in the manifest (``""`` where the data set has none).
    skipped_ids : tuple of str
        Ids dropped as unreadable (empty unless ``skip_corrupt``).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: Sequence[int],
        ids: Sequence[str],
        transform: Callable,
        skip_corrupt: bool = False,
        groups: Sequence[str] | None = None,
    ):
        groups = [""] * len(ids) if groups is None else groups
        if not len(paths) == len(labels) == len(ids) == len(groups):
            raise ValueError("paths, labels, ids and groups must have the same length")
        self.paths = [Path(path) for path in paths]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.ids = [str(sample_id) for sample_id in ids]
        self.groups = [str(group) for group in groups]
        self.transform = transform
        self.skipped_ids: tuple[str, ...] = ()
        if skip_corrupt:
            self._drop_unreadable()

    def _drop_unreadable(self) -> None:
        def readable(path: Path) -> bool:
            try:
                load_image(path)
            except CorruptImageError:
                return False
            return True

        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            keep = np.fromiter(pool.map(readable, self.paths), dtype=bool, count=len(self.paths))
        self.skipped_ids = tuple(sample_id for sample_id, ok in zip(self.ids, keep, strict=True) if not ok)
        self.paths = [path for path, ok in zip(self.paths, keep, strict=True) if ok]
        self.labels = self.labels[keep]
        self.ids = [sample_id for sample_id, ok in zip(self.ids, keep, strict=True) if ok]
        self.groups = [group for group, ok in zip(self.groups, keep, strict=True) if ok]

    @property
    def num_skipped(self) -> int:
        """Number of unreadable images dropped (``skip_corrupt=True``)."""
        return len(self.skipped_ids)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = load_image(self.paths[index])
        return self.transform(image), int(self.labels[index]), self.ids[index]


class ImageArrayDataset(Dataset):
    """Rows of a uint8 image array (MedMNIST, CIFAR-10, STL-10); items are ``(image, label, id)``.

    Parameters
    ----------
    images
        Array (or ``numpy.memmap``) of all images of a file, shared between the splits.
    rows
        Rows of ``images`` that belong to this dataset.
    labels, ids
        One entry per row in ``rows``.
    transform
        Maps an RGB PIL image to a tensor.
    layout
        Axis order of one image: ``"HWC"``, ``"HW"`` (grayscale) or ``"CWH"`` (STL-10's binary files).
    """

    def __init__(
        self,
        images: np.ndarray,
        rows: Sequence[int],
        labels: Sequence[int],
        ids: Sequence[str],
        transform: Callable,
        layout: str = "HWC",
    ):
        if layout not in ARRAY_LAYOUTS:
            raise ValueError(f"layout must be one of {ARRAY_LAYOUTS}, got {layout!r}")
        if not len(rows) == len(labels) == len(ids):
            raise ValueError("rows, labels and ids must have the same length")
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.ids = [str(sample_id) for sample_id in ids]
        self.transform = transform
        self.layout = layout
        self.skipped_ids: tuple[str, ...] = ()

    @property
    def num_skipped(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        pixels = np.asarray(self.images[self.rows[index]])
        if self.layout == "CWH":
            pixels = pixels.transpose(2, 1, 0)
        return self.transform(array_to_image(pixels)), int(self.labels[index]), self.ids[index]


def image_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files in ``folder`` (not recursive) whose suffix is in ``suffixes``, sorted by name."""
    suffixes = {suffix.lower() for suffix in suffixes}
    with os.scandir(folder) as entries:
        files = [Path(entry.path) for entry in entries
                 if entry.is_file() and Path(entry.name).suffix.lower() in suffixes]
    return sorted(files)


def subfolders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that are not hidden, sorted by name."""
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _folder_candidates(root: str | os.PathLike | None, subfolder: str, marker: str) -> list[Path]:
    base = data_root(root)
    candidates = [base, base / subfolder]
    if base.name == marker:
        candidates.insert(0, base.parent)
    return candidates


def find_dataset_folder(root: str | os.PathLike | None, subfolder: str, marker: str) -> Path | None:
    """The folder of one dataset, ``root`` itself or ``<data root>/<subfolder>``, or ``None``.

    The folder is the one that contains ``marker`` (e.g. ``HAM10000_metadata.csv``); ``root`` may also
    be the ``marker`` folder itself.
    """
    return next((candidate for candidate in _folder_candidates(root, subfolder, marker)
                 if (candidate / marker).exists()), None)


def dataset_folder(
    root: str | os.PathLike | None,
    subfolder: str,
    marker: str,
    dataset: str,
    layout: str,
    instructions: str,
) -> Path:
    """Find the folder of one dataset as :func:`find_dataset_folder` does, or explain what is missing.

    Raises
    ------
    FileNotFoundError
        Naming the folders searched, the expected layout and where to get the data.
    """
    folder = find_dataset_folder(root, subfolder, marker)
    if folder is not None:
        return folder
    searched = ", ".join(str(candidate) for candidate in _folder_candidates(root, subfolder, marker))
    raise FileNotFoundError(
        f"{dataset}: no {marker!r} found in {searched}.\nExpected layout under the data root "
        f"(argument root, else $CAMFAITH_DATA, else ./data):\n  {subfolder}/{layout}\n{instructions}"
    )


def check_coverage(
    samples: pd.DataFrame, classes: Sequence[str], dataset: str, allow_small: bool, advice: str = ""
) -> None:
    """Require every class in every split, unless ``allow_small`` (smoke tests on tiny samples).

    Raises
    ------
    ValueError
        If there are no samples at all, or (without ``allow_small``) a split lacks a class.
    """
    if len(samples) == 0:
        raise ValueError(f"{dataset}: found no images. {advice}".strip())
    if allow_small:
        return
    for split in SPLITS:
        present = set(samples.loc[samples["split"] == split, "label"].tolist())
        missing = [name for label, name in enumerate(classes) if label not in present]
        if missing:
            raise ValueError(
                f"{dataset}: the {split} split has no images of {', '.join(missing)} "
                f"({len(samples)} images in all), too few for a train/val/test split of every class. "
                + (f"{advice} " if advice else "")
                + "Pass allow_small=True to load tiny samples anyway (smoke tests only)."
            )


def _split_tables(samples: pd.DataFrame) -> dict[str, pd.DataFrame]:
    unknown = set(samples["split"]) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected {SPLITS}")
    return {
        split: samples[samples["split"] == split].sort_values("id", kind="stable").reset_index(drop=True)
        for split in SPLITS
    }


def _manifest(datasets: dict[str, Dataset]) -> pd.DataFrame:
    """The manifest columns id, split, label and group (``""`` for datasets without ``groups``)."""
    frames = [
        pd.DataFrame({"id": dataset.ids, "split": split, "label": dataset.labels.astype(np.int64),
                      "group": getattr(dataset, "groups", None) or [""] * len(dataset.ids)}, columns=MANIFEST_COLUMNS)
        for split, dataset in datasets.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _warn_skipped(datasets: dict[str, Dataset], dataset_name: str) -> None:
    skipped = [sample_id for dataset in datasets.values() for sample_id in dataset.skipped_ids]
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"{dataset_name}: skipped {len(skipped)} unreadable images ({shown}); see each split's "
            f"skipped_ids. The manifest lists only the images kept.",
            stacklevel=3,
        )


def file_splits(
    samples: pd.DataFrame,
    classes: Sequence[str],
    input_size: int,
    augment: bool,
    dataset_name: str,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """Build :class:`DatasetSplits` from a table with columns ``id``, ``label``, ``split``, ``path``.

    An optional column ``group`` (lesion, case) goes to the datasets and the manifest; without it every
    group is ``""``. Each split is sorted by id. ``augment`` applies to the training split only (Lamprou
    2023, section 4.2).
    """
    skip = skip_corrupt_default(skip_corrupt)
    datasets = {}
    for split, table in _split_tables(samples).items():
        transform = image_transform(input_size, augment=augment and split == "train",
                                    rotation_degrees=rotation_degrees)
        groups = table["group"].astype(str).tolist() if "group" in table.columns else None
        datasets[split] = ImageFileDataset(table["path"].tolist(), table["label"].to_numpy(),
                                           table["id"].tolist(), transform, skip_corrupt=skip, groups=groups)
    _warn_skipped(datasets, dataset_name)
    return DatasetSplits(datasets["train"], datasets["val"], datasets["test"], list(classes),
                         _manifest(datasets))


def array_splits(
    samples: pd.DataFrame,
    images: np.ndarray | dict[str, np.ndarray],
    classes: Sequence[str],
    input_size: int,
    augment: bool,
    layout: str = "HWC",
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """Build :class:`DatasetSplits` from a table with columns ``id``, ``label``, ``split``, ``index``.

    ``images`` is one array, or a mapping from the value of a ``source`` column (e.g. the MedMNIST key
    ``"train"``) to an array; ``index`` is the row within that array. All rows of a split must come
    from one array, so no array is ever copied.
    """
    datasets = {}
    for split, table in _split_tables(samples).items():
        transform = image_transform(input_size, augment=augment and split == "train",
                                    rotation_degrees=rotation_degrees)
        if isinstance(images, dict):
            sources = table["source"].unique() if len(table) else []
            if len(sources) > 1:
                raise ValueError(f"the {split} split mixes rows of several arrays: {list(sources)}")
            array = images[sources[0]] if len(sources) else np.empty((0, 1, 1, 3), dtype=np.uint8)
        else:
            array = images
        rows = table["index"].to_numpy()
        datasets[split] = ImageArrayDataset(array, rows, table["label"].to_numpy(), table["id"].tolist(),
                                            transform, layout=layout)
    return DatasetSplits(datasets["train"], datasets["val"], datasets["test"], list(classes),
                         _manifest(datasets))
