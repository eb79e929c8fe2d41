"""The non-medical datasets of the HAAS study of Lamprou (2023, section 4.5, Tables 8 and 9).

CIFAR-10 (Krizhevsky 2009), STL-10 (Coates, Ng and Lee 2011) and Imagenette (a 10-class subset of
ImageNet by fast.ai, used by the original study "instead of ImageNet for size reasons") are read from local
files only, never downloaded here (see :mod:`camfaith.data.download`):

- CIFAR-10: torchvision's format ``<cifar10>/cifar-10-batches-py/{data_batch_1..5,test_batch,
  batches.meta}``, or image folders ``<cifar10>/{train,test}/<class>/*.png``;
- STL-10: torchvision's format ``<stl10>/stl10_binary/{train,test}_{X,y}.bin`` (the unlabelled
  images are not used), or image folders ``<stl10>/{train,test}/<class>/*.png``;
- Imagenette: ``<imagenette>/imagenette2[-320|-160]/{train,val}/<wnid>/*.JPEG``.

The official test set (Imagenette: its ``val`` folder) is the test split, and a stratified
``val_fraction`` of the official training set, drawn with ``seed``, is the validation split. The
original study cuts VGG19 to the native input size for CIFAR-10 and STL-10, so their loaders default to
``input_size`` 32 and 96. Ids are ``train/<row>``/``test/<row>`` for array files and relative paths
for image folders.
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from camfaith.data.base import DatasetSplits, data_root
from camfaith.data.download import instructions
from camfaith.data.samples import array_splits, check_coverage, file_splits
from camfaith.data.splits import stratified_assignment
from camfaith.data.transforms import DEFAULT_ROTATION_DEGREES

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
NATURAL_VAL_FRACTION = 0.1
CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
STL10_SIDE = 96
STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of lists and numpy arrays only: a CIFAR-10 batch cannot run code."""

    allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module.replace("numpy._core", "numpy.core"), name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from a CIFAR-10 batch file")
        # Pickles written with NumPy 1 name numpy.core, NumPy 2 renamed it numpy._core.
        for candidate in (module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot import {module}.{name}")


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            content = _ArrayUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as error:
        raise ValueError(f"cifar10: cannot read {path} as a CIFAR-10 python batch ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"cifar10: {path} does not hold a dict, so it is not a CIFAR-10 python batch")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _read_cifar_batches(folder: Path, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in names:
        batch = _read_pickle(folder / name)
        if "data" not in batch or "labels" not in batch:
            raise ValueError(f"cifar10: {folder / name} lacks 'data' or 'labels'")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch["labels"]) != len(data):
            raise ValueError(f"cifar10: {folder / name} holds data of shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def _ordered_classes(found: Sequence[str], canonical: Sequence[str]) -> list[str]:
    """Class folders in the dataset's canonical order if they all belong to it, else sorted by name."""
    if set(found) <= set(canonical):
        return [name for name in canonical if name in found]
    return sorted(found)


def _image_folder_samples(folder: Path, split_folder: str, classes: Sequence[str]) -> pd.DataFrame:
    rows = []
    for label, name in enumerate(classes):
        class_folder = folder / split_folder / name
        if not class_folder.is_dir():
            raise FileNotFoundError(f"{class_folder} is missing; the train and test folders need the same classes")
        rows += [
            (path.relative_to(folder).as_posix(), label, str(path))
            for path in sorted(class_folder.iterdir())
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
        ]
    return pd.DataFrame(rows, columns=["id", "label", "path"])


def _carve_val(samples: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """Mark a stratified ``val_fraction`` of the rows whose split is ``train`` as ``val``."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    samples = samples.sort_values("id", kind="stable").reset_index(drop=True)
    train_rows = samples.index[samples["split"] == "train"]
    assignment = stratified_assignment(samples.loc[train_rows, "label"], (1 - val_fraction, val_fraction), seed)
    samples.loc[train_rows, "split"] = np.asarray(["train", "val"])[assignment]
    return samples


def _folder_dataset(
    folder: Path, train_name: str, test_name: str, canonical: Sequence[str], dataset: str, names: dict,
    input_size: int, seed: int, augment: bool, val_fraction: float, allow_small: bool,
    skip_corrupt: bool | None, rotation_degrees: float,
) -> DatasetSplits:
    found = [path.name for path in sorted((folder / train_name).iterdir()) if path.is_dir()]
    classes = _ordered_classes(found, canonical)
    train = _image_folder_samples(folder, train_name, classes).assign(split="train")
    test = _image_folder_samples(folder, test_name, classes).assign(split="test")
    samples = _carve_val(pd.concat([train, test], ignore_index=True), val_fraction, seed)
    display = [names.get(name, name) for name in classes]
    check_coverage(samples, display, dataset, allow_small, instructions(dataset))
    return file_splits(samples, display, input_size, augment, dataset, skip_corrupt, rotation_degrees)


def _array_dataset(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], classes: Sequence[str],
    dataset: str, input_size: int, seed: int, augment: bool, val_fraction: float, allow_small: bool,
    rotation_degrees: float, layout: str,
) -> DatasetSplits:
    frames = []
    for key, (_, labels) in (("train", train), ("test", test)):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"{dataset}: {key} labels outside 0..{len(classes) - 1}")
        frames.append(pd.DataFrame({"id": [f"{key}/{row:06d}" for row in range(len(labels))], "label": labels,
                                    "source": key, "index": np.arange(len(labels)), "split": key}))
    samples = _carve_val(pd.concat(frames, ignore_index=True), val_fraction, seed)
    check_coverage(samples, classes, dataset, allow_small, instructions(dataset))
    return array_splits(samples, {"train": train[0], "test": test[0]}, classes, input_size, augment,
                        layout=layout, rotation_degrees=rotation_degrees)


def natural_folder(root: str | os.PathLike | None, subfolder: str, markers: Sequence[str]) -> Path | None:
    """The data root or its ``subfolder`` if it holds every one of ``markers``, else ``None``."""
    base = data_root(root)
    for candidate in (base, base / subfolder):
        if all((candidate / marker).exists() for marker in markers):
            return candidate
    return None


def cifar10(
    root: str | os.PathLike | None = None,
    input_size: int = 32,
    seed: int = 0,
    augment: bool = True,
    *,
    val_fraction: float = NATURAL_VAL_FRACTION,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """CIFAR-10 (Krizhevsky 2009; reference [56] of Lamprou 2023) from torchvision's files or image folders.

    Parameters are those of :mod:`camfaith.data.medical` loaders, plus ``val_fraction``, the share of
    the 50,000 training images held out for validation (the 10,000 test images are the test split).
    """
    folder = natural_folder(root, "cifar10", ["cifar-10-batches-py"])
    if folder is not None:
        batches = folder / "cifar-10-batches-py"
        missing = [name for name in (*CIFAR10_BATCHES, "test_batch") if not (batches / name).is_file()]
        if missing:
            raise FileNotFoundError(f"cifar10: {batches} lacks {', '.join(missing)}. {instructions('cifar10', root)}")
        classes = list(CIFAR10_CLASSES)
        if (batches / "batches.meta").is_file():
            meta = _read_pickle(batches / "batches.meta")
            classes = [name.decode("latin1") if isinstance(name, bytes) else str(name)
                       for name in meta.get("label_names", classes)]
        return _array_dataset(_read_cifar_batches(batches, CIFAR10_BATCHES),
                              _read_cifar_batches(batches, ["test_batch"]), classes, "cifar10", input_size,
                              seed, augment, val_fraction, allow_small, rotation_degrees, layout="HWC")
    folder = natural_folder(root, "cifar10", ["train", "test"])
    if folder is None:
        base = data_root(root)
        raise FileNotFoundError(
            f"cifar10: neither {base}/cifar10/cifar-10-batches-py nor {base}/cifar10/{{train,test}}/<class>/ "
            f"exists. {instructions('cifar10', root)}"
        )
    return _folder_dataset(folder, "train", "test", CIFAR10_CLASSES, "cifar10", {}, input_size, seed, augment,
                           val_fraction, allow_small, skip_corrupt, rotation_degrees)


def _read_stl10_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    pixels_per_image = 3 * STL10_SIDE * STL10_SIDE
    size = image_file.stat().st_size
    if size % pixels_per_image:
        raise ValueError(f"stl10: {image_file} has {size} bytes, not a multiple of 3 x 96 x 96")
    # Memory-mapped: images are read from disk on access. Stored channel by channel, column-major.
    images = np.memmap(image_file, dtype=np.uint8, mode="r").reshape(-1, 3, STL10_SIDE, STL10_SIDE)
    labels = np.fromfile(label_file, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images):
        raise ValueError(f"stl10: {image_file} holds {len(images)} images but {label_file} {len(labels)} labels")
    return images, labels


def stl10(
    root: str | os.PathLike | None = None,
    input_size: int = 96,
    seed: int = 0,
    augment: bool = True,
    *,
    val_fraction: float = NATURAL_VAL_FRACTION,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """STL-10 (Coates, Ng and Lee 2011; reference [57] of Lamprou 2023), labelled images only.

    Parameters as for :func:`cifar10`; the 5,000 training images give train and val, the 8,000 test
    images the test split.
    """
    files = STL10_FILES
    folder = natural_folder(root, "stl10", ["stl10_binary"])
    if folder is not None:
        binary = folder / "stl10_binary"
        missing = [name for name in files if not (binary / name).is_file()]
        if missing:
            raise FileNotFoundError(f"stl10: {binary} lacks {', '.join(missing)}. {instructions('stl10', root)}")
        classes = list(STL10_CLASSES)
        if (binary / "class_names.txt").is_file():
            classes = [line.strip() for line in (binary / "class_names.txt").read_text().splitlines() if line.strip()]
        return _array_dataset(_read_stl10_split(binary, "train"), _read_stl10_split(binary, "test"), classes,
                              "stl10", input_size, seed, augment, val_fraction, allow_small, rotation_degrees,
                              layout="CWH")
    folder = natural_folder(root, "stl10", ["train", "test"])
    if folder is None:
        base = data_root(root)
        raise FileNotFoundError(
            f"stl10: neither {base}/stl10/stl10_binary/{{{','.join(files)}}} nor {base}/stl10/{{train,test}}/"
            f"<class>/ exists. {instructions('stl10', root)}"
        )
    return _folder_dataset(folder, "train", "test", STL10_CLASSES, "stl10", {}, input_size, seed, augment,
                           val_fraction, allow_small, skip_corrupt, rotation_degrees)


def imagenette_versions(root: str | os.PathLike | None, variant: str | None = None) -> list[Path]:
    """Unpacked Imagenette folders (with ``train/`` and ``val/``) in the data root or its ``imagenette/``.

    ``root`` itself counts when it has ``train/`` and ``val/``; otherwise ``variant`` (a folder name
    such as ``"imagenette2-320"``) keeps only that version.
    """
    base = data_root(root)
    if (base / "train").is_dir() and (base / "val").is_dir():
        return [base]
    parents = [base, base / "imagenette"]
    found = [path for parent in parents if parent.is_dir() for path in sorted(parent.glob("imagenette2*"))
             if (path / "train").is_dir() and (path / "val").is_dir()]
    if variant is not None:
        found = [path for path in found if path.name == variant]
    return found


def _imagenette_folder(root: str | os.PathLike | None, variant: str | None) -> Path:
    base = data_root(root)
    found = imagenette_versions(root, variant)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(str(path) for path in found)
        raise ValueError(f"imagenette: several versions found ({names}); choose one with variant=<folder name>")
    wanted = variant or "imagenette2*"
    raise FileNotFoundError(
        f"imagenette: no {wanted}/{{train,val}}/<wnid>/*.JPEG in {base} or {base / 'imagenette'}. "
        f"{instructions('imagenette', root)}"
    )


def imagenette(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    variant: str | None = None,
    val_fraction: float = NATURAL_VAL_FRACTION,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """Imagenette (fast.ai; the original study's stand-in for ImageNet, Table 8) as an image-folder tree.

    Class folders are WordNet ids, listed in sorted order and named by their ImageNet labels
    (tench, English springer, ...). ``variant`` picks one of several unpacked versions (e.g.
    ``"imagenette2-320"``); other parameters as for :func:`cifar10`.
    """
    folder = _imagenette_folder(root, variant)
    wnids = sorted(path.name for path in (folder / "train").iterdir() if path.is_dir())
    return _folder_dataset(folder, "train", "val", wnids, "imagenette", IMAGENETTE_CLASSES, input_size, seed,
                           augment, val_fraction, allow_small, skip_corrupt, rotation_degrees)
