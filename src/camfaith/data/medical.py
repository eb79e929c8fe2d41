"""The four medical datasets of Lamprou (2023, section 4.1), read from their official folder layouts.

Splits follow Table 2 of the original study: CRC 80/20 of NCT-CRC-HE-100K for train/val with CRC-VAL-HE-7K as test;
COVID-19 Radiography 80/10/10 stratified; HAM10000 60/20/20 stratified and grouped by lesion;
BreakHis benign/malignant grouped by patient case (benign 58/20/22, malignant 63/18/19; :mod:`camfaith.data.breakhis`).
Every loader returns a :class:`~camfaith.data.base.DatasetSplits` whose images load lazily from disk, whose
manifest names each sample's ``group`` (lesion, case, or ``""``), and takes the same keyword arguments:

``root``
    The data root (``<root>/<dataset folder>/...``) or the dataset folder itself; default
    ``$CAMFAITH_DATA`` or ``./data``.
``input_size``, ``augment``, ``rotation_degrees``
    Preprocessing of section 4.2 of Lamprou (2023) (:func:`camfaith.data.transforms.image_transform`);
    augmentation applies to the training split only.
``seed``
    Random seed of the split.
``allow_small``
    Accept splits that miss a class (tiny samples for smoke tests); without it such a split raises.
``skip_corrupt``
    Drop unreadable images instead of raising (default: ``$CAMFAITH_SKIP_CORRUPT``); each split's
    ``skipped_ids`` lists them and a warning gives the count.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from camfaith.data.base import DatasetSplits
from camfaith.data.breakhis import (
    BREAKHIS_CLASSES,
    BREAKHIS_FRACTIONS,
    BREAKHIS_MAGNIFICATIONS,
    BREAKHIS_SLIDE,
    breakhis,
    breakhis_case,
    breakhis_slide,
)
from camfaith.data.download import instructions
from camfaith.data.masks import attach_masks, find_masks
from camfaith.data.samples import check_coverage, dataset_folder, file_splits, image_files
from camfaith.data.splits import SPLITS, grouped_stratified_assignment, stratified_assignment
from camfaith.data.transforms import DEFAULT_ROTATION_DEGREES

CRC_CLASSES = ("ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM")
COVID19_CLASSES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

CRC_VAL_FRACTION = 0.2
COVID19_FRACTIONS = (0.8, 0.1, 0.1)
HAM10000_FRACTIONS = (0.6, 0.2, 0.2)

# Searched in this order; the Kaggle mirror ships lower-case duplicates of both parts.
HAM10000_IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "ham10000_images_part_1",
                          "ham10000_images_part_2", "HAM10000_images", "images")
HAM10000_COLUMNS = ("lesion_id", "image_id", "dx")
# Lesion masks <image_id>_segmentation.png: the official folder, then the staged subset (/work/shared/data).
HAM10000_MASK_FOLDERS = ("HAM10000_segmentations_lesion_tschandl", "masks_subset")
HAM10000_MASK_SUFFIX = "_segmentation.png"

TIFF_SUFFIXES = (".tif", ".tiff")
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")

__all__ = [
    "BREAKHIS_CLASSES", "BREAKHIS_FRACTIONS", "BREAKHIS_MAGNIFICATIONS", "BREAKHIS_SLIDE", "COVID19_CLASSES",
    "COVID19_FRACTIONS", "CRC_CLASSES", "CRC_VAL_FRACTION", "HAM10000_CLASSES", "HAM10000_COLUMNS",
    "HAM10000_FRACTIONS", "HAM10000_IMAGE_FOLDERS", "HAM10000_MASK_FOLDERS", "HAM10000_MASK_SUFFIX",
    "PHOTO_SUFFIXES", "TIFF_SUFFIXES", "breakhis", "breakhis_case", "breakhis_slide", "covid19", "crc", "ham10000",
]


def _class_folder_samples(
    folder: Path, top: str, classes: Sequence[str], suffixes: Iterable[str], dataset: str, advice: str
) -> pd.DataFrame:
    """Samples of ``folder/top/<class>/*``: columns id, label, path."""
    base = folder / top
    missing = [name for name in classes if not (base / name).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{dataset}: {base} lacks the class folders {', '.join(missing)}; expected "
            f"{top}/<class>/ for every class in {', '.join(classes)}. {advice}"
        )
    rows = [
        (path.relative_to(folder).as_posix(), label, str(path))
        for label, name in enumerate(classes)
        for path in image_files(base / name, suffixes)
    ]
    return pd.DataFrame(rows, columns=["id", "label", "path"])


def crc(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    val_fraction: float = CRC_VAL_FRACTION,
    train_folder: str = "NCT-CRC-HE-100K",
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """CRC histology tiles (Kather, Halama and Marx 2018; Lamprou 2023, section 4.1, reference [61]).

    Layout: ``<crc>/NCT-CRC-HE-100K/<CLASS>/*.tif`` (train and val, stratified ``1 - val_fraction``
    / ``val_fraction``, Table 2 of Lamprou 2023) and ``<crc>/CRC-VAL-HE-7K/<CLASS>/*.tif`` (test), with the 9
    classes ADI BACK DEB LYM MUC MUS NORM STR TUM. Ids are paths relative to the dataset folder.

    Parameters
    ----------
    val_fraction
        Share of NCT-CRC-HE-100K held out for validation (0.2 in the original study).
    train_folder
        ``"NCT-CRC-HE-100K"`` (Macenko-normalised, as in the original study) or ``"NCT-CRC-HE-100K-NONORM"``.
    allow_small
        Also accept a missing CRC-VAL-HE-7K folder (empty test split) and splits that miss a class,
        e.g. for the one-tile-per-class smoke sample.

    Other parameters are described in the module docstring.
    """
    advice = instructions("crc", root)
    layout = f"{train_folder}/<CLASS>/*.tif and CRC-VAL-HE-7K/<CLASS>/*.tif"
    folder = dataset_folder(root, "crc", train_folder, "crc", layout, advice)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    development = _class_folder_samples(folder, train_folder, CRC_CLASSES, TIFF_SUFFIXES, "crc", advice)
    development = development.sort_values("id", kind="stable").reset_index(drop=True)
    assignment = stratified_assignment(development["label"], (1 - val_fraction, val_fraction), seed)
    development["split"] = np.asarray(["train", "val"])[assignment]

    if (folder / "CRC-VAL-HE-7K").is_dir():
        test = _class_folder_samples(folder, "CRC-VAL-HE-7K", CRC_CLASSES, TIFF_SUFFIXES, "crc", advice)
    elif allow_small:
        test = pd.DataFrame(columns=["id", "label", "path"])
    else:
        raise FileNotFoundError(
            f"crc: the test set {folder / 'CRC-VAL-HE-7K'} is missing (Table 2 of Lamprou (2023) tests on "
            f"CRC-VAL-HE-7K). Get it with camfaith.data.download.download_crc(root, train=False), or pass "
            f"allow_small=True to load without a test split (smoke tests only)."
        )
    test["split"] = "test"
    samples = pd.concat([frame for frame in (development, test) if len(frame)] or [development],
                        ignore_index=True)
    samples["label"] = samples["label"].astype(np.int64)
    check_coverage(samples, CRC_CLASSES, "crc", allow_small, advice)
    return file_splits(samples, CRC_CLASSES, input_size, augment, "crc", skip_corrupt, rotation_degrees)


def covid19(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    classes: Sequence[str] | None = None,
    fractions: Sequence[float] = COVID19_FRACTIONS,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """COVID-19 Radiography Database (Chowdhury et al. 2020; Rahman et al. 2021; reference [62] of Lamprou 2023).

    Layout: ``<covid19_radiography>/COVID-19_Radiography_Dataset/<class>/images/*.png``; the
    ``masks/`` folders and metadata sheets are ignored. Split 80/10/10 stratified (Table 2 of Lamprou 2023).
    Grayscale X-rays become three identical channels. Ids are paths relative to the dataset folder.

    Parameters
    ----------
    classes
        Classes to use, a subset of COVID, Lung_Opacity, Normal, Viral Pneumonia; default every one
        whose ``images/`` folder exists (at least two). Labels follow that fixed order.
    fractions
        Train, val and test shares.

    Other parameters are described in the module docstring.
    """
    advice = instructions("covid19", root)
    layout = "COVID-19_Radiography_Dataset/{COVID,Lung_Opacity,Normal,Viral Pneumonia}/images/*.png"
    folder = dataset_folder(root, "covid19_radiography", "COVID-19_Radiography_Dataset", "covid19",
                            layout, advice)
    base = folder / "COVID-19_Radiography_Dataset"
    present = [name for name in COVID19_CLASSES if (base / name / "images").is_dir()]
    if classes is None:
        chosen = present
    else:
        unknown = [name for name in classes if name not in COVID19_CLASSES]
        if unknown:
            raise ValueError(f"covid19: {unknown} are not classes of the database ({', '.join(COVID19_CLASSES)})")
        absent = [name for name in classes if name not in present]
        if absent:
            raise ValueError(f"covid19: classes {absent} have no <class>/images/ folder under {base}")
        chosen = [name for name in COVID19_CLASSES if name in classes]
    if len(chosen) < 2:
        raise FileNotFoundError(
            f"covid19: found {len(chosen)} class folder(s) with images/ under {base}, need at least two. "
            f"Expected {layout}. {advice}"
        )
    rows = [
        (path.relative_to(folder).as_posix(), label, str(path))
        for label, name in enumerate(chosen)
        for path in image_files(base / name / "images", PHOTO_SUFFIXES)
    ]
    samples = pd.DataFrame(rows, columns=["id", "label", "path"]).sort_values("id", kind="stable")
    samples = samples.reset_index(drop=True)
    samples["split"] = np.asarray(SPLITS)[stratified_assignment(samples["label"], fractions, seed)]
    check_coverage(samples, chosen, "covid19", allow_small, advice)
    return file_splits(samples, chosen, input_size, augment, "covid19", skip_corrupt, rotation_degrees)


def _ham10000_images(folder: Path, image_folders: Sequence[str]) -> tuple[dict[str, Path], list[Path]]:
    """Map image_id (file stem) to file over the image folders that exist; the first folder wins."""
    found: dict[str, Path] = {}
    searched = [folder / name for name in image_folders if (folder / name).is_dir()]
    for image_folder in searched:
        for path in image_files(image_folder, PHOTO_SUFFIXES):
            found.setdefault(path.stem, path)
    return found, searched


def _ham10000_metadata(path: Path) -> pd.DataFrame:
    """The columns lesion_id, image_id and dx of the metadata table, checked."""
    metadata = pd.read_csv(path, dtype=str)
    absent_columns = [column for column in HAM10000_COLUMNS if column not in metadata.columns]
    if absent_columns:
        raise ValueError(
            f"ham10000: {path} lacks the columns {absent_columns} (it has {list(metadata.columns)}); "
            f"the official HAM10000_metadata.csv has lesion_id, image_id, dx, dx_type, age, sex, localization."
        )
    metadata = metadata.loc[:, list(HAM10000_COLUMNS)]
    if metadata.isna().any().any():
        raise ValueError(f"ham10000: {path} has empty lesion_id, image_id or dx cells")
    duplicated = metadata["image_id"][metadata["image_id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"ham10000: {path} lists image_id {duplicated[0]} more than once")
    unknown = sorted(set(metadata["dx"]) - set(HAM10000_CLASSES))
    if unknown:
        raise ValueError(f"ham10000: unknown dx values {unknown}; expected {', '.join(HAM10000_CLASSES)}")
    return metadata


def _ham10000_samples(
    metadata: pd.DataFrame, files: dict[str, Path], searched: list[Path], allow_missing: bool
) -> pd.DataFrame:
    """Samples (id, label, group = lesion, path) of the metadata rows, sorted by image_id."""
    has_image = metadata["image_id"].isin(files.keys())
    if not has_image.all():
        missing = metadata.loc[~has_image, "image_id"].tolist()
        message = (
            f"ham10000: {len(missing)} of {len(metadata)} metadata rows have no image file in "
            f"{', '.join(str(path) for path in searched)} (e.g. {', '.join(missing[:3])})"
        )
        if not allow_missing:
            raise FileNotFoundError(
                f"{message}. Unpack both HAM10000_images_part_1.zip and HAM10000_images_part_2.zip, or "
                f"pass allow_missing=True to drop these rows."
            )
        warnings.warn(f"{message}; these rows are dropped (allow_missing=True).", stacklevel=3)
        metadata = metadata[has_image]
    samples = metadata.sort_values("image_id", kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "id": samples["image_id"],
        "label": samples["dx"].map({name: label for label, name in enumerate(HAM10000_CLASSES)}).astype(np.int64),
        "group": samples["lesion_id"],
        "path": [str(files[image_id]) for image_id in samples["image_id"]],
    })


def ham10000(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    fractions: Sequence[float] = HAM10000_FRACTIONS,
    image_folders: Sequence[str] = HAM10000_IMAGE_FOLDERS,
    mask_folders: Sequence[str] = HAM10000_MASK_FOLDERS,
    allow_missing: bool = False,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """HAM10000 dermatoscopy (Tschandl, Rosendahl and Kittler, Sci. Data 5:180161, 2018; reference [63]).

    Layout: ``<ham10000>/HAM10000_metadata.csv`` plus the images ``<image_id>.jpg`` in one or more of
    ``image_folders`` (``HAM10000_images_part_1``, ``HAM10000_images_part_2``, ``images``, ...; an
    image found in two folders is taken from the first). Labels are the metadata column ``dx`` in
    the fixed order akiec, bcc, bkl, df, mel, nv, vasc. The 60/20/20 split is stratified by class and
    grouped by ``lesion_id``, so the rescaled copies of one lesion never straddle two splits (Lamprou
    2023, section 4.2 and Table 2); the manifest's ``group`` is the ``lesion_id``. Ids are the metadata
    ``image_id``; image files without a metadata row are ignored.

    Lesion masks ``<image_id>_segmentation.png`` in ``mask_folders`` are exposed by every split with a
    deterministic transform (val and test; train too if ``augment=False``; :mod:`camfaith.data.masks`):
    ``splits.test.mask(i)`` is a boolean ``(input_size, input_size)`` tensor aligned with image ``i``, or
    ``None``, and ``splits.test.mask_indices`` lists the images that have one.

    Parameters
    ----------
    fractions
        Train, val and test shares.
    image_folders
        Sub-folders of the dataset folder searched for images.
    mask_folders
        Sub-folders searched for lesion masks, in order (the first that has an image's mask wins; absent
        folders are skipped; ``()`` loads none): the official ``HAM10000_segmentations_lesion_tschandl``
        (all 10,015 images), then ``masks_subset`` (the 1,257 masks of the staged copy).
    allow_missing
        Drop metadata rows whose image file is absent (a warning gives their count) instead of
        raising :class:`FileNotFoundError`. Other parameters: see the module docstring.
    """
    advice = instructions("ham10000", root)
    layout = "HAM10000_metadata.csv and HAM10000_images_part_1/ISIC_*.jpg, HAM10000_images_part_2/ISIC_*.jpg"
    folder = dataset_folder(root, "ham10000", "HAM10000_metadata.csv", "ham10000", layout, advice)
    metadata = _ham10000_metadata(folder / "HAM10000_metadata.csv")
    files, searched = _ham10000_images(folder, image_folders)
    if not searched:
        raise FileNotFoundError(f"ham10000: none of the image folders {', '.join(image_folders)} exists in "
                                f"{folder}. Expected {layout}. {advice}")
    samples = _ham10000_samples(metadata, files, searched, allow_missing)
    assignment = grouped_stratified_assignment(samples["label"], samples["group"], fractions, seed)
    samples["split"] = np.asarray(SPLITS)[assignment]
    check_coverage(samples, HAM10000_CLASSES, "ham10000", allow_small, advice)
    splits = file_splits(samples, HAM10000_CLASSES, input_size, augment, "ham10000", skip_corrupt,
                         rotation_degrees)
    return attach_masks(splits, find_masks([folder / name for name in mask_folders], HAM10000_MASK_SUFFIX))
