"""MedMNIST ``.npz`` files (Yang et al., "MedMNIST v2", Scientific Data 10:41, 2023).

A MedMNIST file holds ``train_images``, ``train_labels``, ``val_images``, ``val_labels``,
``test_images`` and ``test_labels``; images are uint8 ``(N, H, W)`` or ``(N, H, W, 3)``, labels
``(N, 1)``. PathMNIST is CRC (Lamprou 2023, section 4.1) at 28 to 224 px and DermaMNIST is HAM10000; they
give the report a fast stand-in for the full-size datasets.

The official splits are used when all three are in the file. A partial file (e.g. the first 1,000
PathMNIST training images) keeps the splits it has and carves the missing ones out of its training
images with a seeded stratified split, in the proportions ``fractions`` (default 7:1:2, MedMNIST's
own ratio for datasets without an official split). Ids are ``<key>/<row>`` with the file's split key
and the zero-padded row, e.g. ``train/000017``, whatever split the image ends up in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from camfaith.data.base import DatasetSplits, data_root
from camfaith.data.download import instructions
from camfaith.data.medical import CRC_CLASSES, HAM10000_CLASSES
from camfaith.data.samples import array_splits, check_coverage
from camfaith.data.splits import SPLITS, stratified_assignment
from camfaith.data.transforms import DEFAULT_ROTATION_DEGREES

# Label order of MedMNIST (medmnist INFO): PathMNIST 0..8 = ADI ... TUM, DermaMNIST 0..6 = akiec ... vasc.
MEDMNIST_CLASSES = {"pathmnist": CRC_CLASSES, "dermamnist": HAM10000_CLASSES}
MEDMNIST_FRACTIONS = (0.7, 0.1, 0.2)


def _flag_of(path: Path) -> str | None:
    stem = path.stem.lower()
    return next((flag for flag in MEDMNIST_CLASSES if stem.startswith(flag)), None)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Images and labels per split key present in a MedMNIST file, checked for shape and type."""
    try:
        bundle = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"medmnist: cannot read {path} as an .npz file ({error})") from error
    images, labels = {}, {}
    with bundle:
        for split in SPLITS:
            image_key, label_key = f"{split}_images", f"{split}_labels"
            if image_key not in bundle.files and label_key not in bundle.files:
                continue
            if image_key not in bundle.files or label_key not in bundle.files:
                raise ValueError(f"medmnist: {path} has only one of {image_key} and {label_key}")
            split_images, split_labels = bundle[image_key], bundle[label_key]
            if split_images.dtype != np.uint8 or split_images.ndim not in (3, 4) or (
                split_images.ndim == 4 and split_images.shape[3] not in (1, 3)
            ):
                raise ValueError(
                    f"medmnist: {path}[{image_key!r}] has shape {split_images.shape} and type "
                    f"{split_images.dtype}; expected uint8 (N, H, W) or (N, H, W, 3)"
                )
            if split_labels.ndim == 2 and split_labels.shape[1] != 1:
                raise ValueError(
                    f"medmnist: {path}[{label_key!r}] has shape {split_labels.shape}; multi-label files "
                    f"(e.g. ChestMNIST) are not supported, expected (N, 1)"
                )
            split_labels = split_labels.reshape(-1)
            if len(split_labels) != len(split_images):
                raise ValueError(
                    f"medmnist: {path} has {len(split_images)} {split} images but {len(split_labels)} labels"
                )
            if not np.issubdtype(split_labels.dtype, np.integer) or (
                len(split_labels) and split_labels.min() < 0
            ):
                raise ValueError(f"medmnist: {path}[{label_key!r}] must hold non-negative integer labels")
            images[split], labels[split] = split_images, split_labels.astype(np.int64)
    if "train" not in images:
        raise ValueError(
            f"medmnist: {path} has no train_images/train_labels (keys: {sorted(images)}); a MedMNIST "
            f"file has train_, val_ and test_ images and labels"
        )
    return images, labels


def _npz_samples(labels: dict[str, np.ndarray], fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """One row per image of the file (id, label, source key, index, split), missing splits carved out."""
    frames = []
    for key in labels:
        count = len(labels[key])
        frames.append(pd.DataFrame({
            "id": [f"{key}/{row:06d}" for row in range(count)],
            "label": labels[key],
            "source": key,
            "index": np.arange(count),
            "split": key,
        }))
    samples = pd.concat(frames, ignore_index=True)
    missing = [split for split in SPLITS if split not in labels]
    if missing:
        receivers = ["train", *missing]
        shares = np.asarray([fractions[SPLITS.index(split)] for split in receivers], dtype=np.float64)
        if shares.sum() <= 0 or shares[0] <= 0:
            raise ValueError(f"medmnist: fractions {fractions!r} leave nothing to split off the training images")
        from_train = samples.index[samples["source"] == "train"]
        assignment = stratified_assignment(samples.loc[from_train, "label"], shares / shares.sum(), seed)
        samples.loc[from_train, "split"] = np.asarray(receivers)[assignment]
    return samples


def medmnist(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    path: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    fractions: Sequence[float] = MEDMNIST_FRACTIONS,
    allow_small: bool = False,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """Load any MedMNIST-format ``.npz`` file.

    Parameters
    ----------
    root
        The ``.npz`` file, if ``path`` is not given.
    input_size, seed, augment, rotation_degrees
        As for the other loaders (:mod:`camfaith.data.medical`); ``seed`` only matters for a partial
        file.
    path
        The ``.npz`` file.
    classes
        Class names in label order; default the known names for files named ``pathmnist*`` or
        ``dermamnist*``, else ``"0"``, ``"1"``, ... up to the largest label.
    fractions
        Train, val and test shares used to carve missing splits out of the training images.
    allow_small
        Accept splits that miss a class.
    """
    file = Path(path) if path is not None else (Path(root) if root is not None else None)
    if file is None or not file.is_file():
        raise FileNotFoundError(
            f"medmnist: {file} is not a file; pass path=<file>.npz (a MedMNIST-format file with "
            f"train_/val_/test_ images and labels), or use the pathmnist or dermamnist loaders."
        )
    images, labels = _read_npz(file)
    flag = _flag_of(file)
    filled = [values for values in labels.values() if len(values)]
    largest = max(int(values.max()) for values in filled) if filled else -1
    if classes is None:
        classes = MEDMNIST_CLASSES[flag] if flag else tuple(str(label) for label in range(largest + 1))
    if largest >= len(classes):
        raise ValueError(f"medmnist: {file} has label {largest} but only {len(classes)} classes are named")
    samples = _npz_samples(labels, fractions, seed)
    check_coverage(samples, classes, f"medmnist ({file.name})", allow_small)
    return array_splits(samples, images, classes, input_size, augment, rotation_degrees=rotation_degrees)


def find_npz(root: str | os.PathLike | None, flag: str, file: str | None = None) -> Path:
    """The ``.npz`` file of MedMNIST dataset ``flag``: ``root`` itself, or ``file`` (default the one
    ``<flag>*.npz``, else ``<flag>.npz``) in ``<data root>/<flag>/`` or the data root.

    Raises
    ------
    FileNotFoundError
        When there is none; the message says how to get it.
    ValueError
        When several files match and ``file`` does not choose one.
    """
    base = data_root(root)
    if base.is_file():
        return base
    folders = [base / flag, base] if base.name != flag else [base]
    for folder in folders:
        if file is not None:
            if (folder / file).is_file():
                return folder / file
            continue
        candidates = sorted(folder.glob(f"{flag}*.npz")) if folder.is_dir() else []
        if len(candidates) == 1:
            return candidates[0]
        if (folder / f"{flag}.npz").is_file():
            return folder / f"{flag}.npz"
        if candidates:
            names = ", ".join(candidate.name for candidate in candidates)
            raise ValueError(f"{flag}: several files in {folder} ({names}); choose one with file=<name>")
    searched = ", ".join(str(folder) for folder in folders)
    wanted = file or f"{flag}*.npz"
    raise FileNotFoundError(f"{flag}: no {wanted} in {searched}. {instructions(flag, root)}")


def pathmnist(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    file: str | None = None,
    **options,
) -> DatasetSplits:
    """PathMNIST (MedMNIST v2; from NCT-CRC-HE-100K and CRC-VAL-HE-7K, Kather et al. 2019).

    Reads ``<data root>/pathmnist/pathmnist*.npz`` (``file`` picks one of several) with the 9 CRC
    classes; other options as for :func:`medmnist`.
    """
    path = find_npz(root, "pathmnist", file)
    return medmnist(input_size=input_size, seed=seed, augment=augment, path=path,
                    classes=MEDMNIST_CLASSES["pathmnist"], **options)


def dermamnist(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    file: str | None = None,
    **options,
) -> DatasetSplits:
    """DermaMNIST (MedMNIST v2; from HAM10000, Tschandl et al. 2018).

    Reads ``<data root>/dermamnist/dermamnist*.npz`` (``file`` picks one of several) with the 7
    HAM10000 classes in MedMNIST's label order; other options as for :func:`medmnist`. MedMNIST's
    split of DermaMNIST is by image, not by lesion, unlike :func:`camfaith.data.medical.ham10000`.
    """
    path = find_npz(root, "dermamnist", file)
    return medmnist(input_size=input_size, seed=seed, augment=augment, path=path,
                    classes=MEDMNIST_CLASSES["dermamnist"], **options)
