"""Datasets of the report, each loaded into a :class:`~camfaith.data.base.DatasetSplits`.

``load_dataset(name, ...)`` is the single entry point used by the pipeline and the notebooks:

======================  =====================================================================
name                    data (Lamprou 2023, section 4.1 and Tables 2, 8, 9)
======================  =====================================================================
``crc``                 NCT-CRC-HE-100K (train/val 80/20) and CRC-VAL-HE-7K (test)
``covid19``             COVID-19 Radiography Database, 80/10/10 stratified
``ham10000``            HAM10000, 60/20/20, grouped by lesion; lesion masks where present
``breakhis``            BreakHis benign/malignant, grouped by patient case
``medmnist``            any MedMNIST ``.npz`` (``path=...``)
``pathmnist``           PathMNIST ``.npz`` under ``<root>/pathmnist``
``dermamnist``          DermaMNIST ``.npz`` under ``<root>/dermamnist``
``cifar10``             CIFAR-10 (HAAS study)
``stl10``               STL-10 (HAAS study)
``imagenette``          Imagenette (HAAS study)
``synthetic``           generated shapes with ground-truth masks (:mod:`camfaith.data.synthetic`)
======================  =====================================================================

Every manifest has the columns id, split, label and group (:class:`DatasetSplits`; read a written one
back with :func:`read_manifest`). ``missing_data(names, root)`` checks in seconds, before a run, that
those datasets are in place, and ``python -m camfaith.data.download NAME`` fetches one (:mod:`camfaith.data.download`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from camfaith.data.base import DatasetSplits, data_root, read_manifest
from camfaith.data.check import missing_data
from camfaith.data.masks import MaskedImageFileDataset, MaskError
from camfaith.data.medical import breakhis, covid19, crc, ham10000
from camfaith.data.medmnist import dermamnist, medmnist, pathmnist
from camfaith.data.natural import cifar10, imagenette, stl10
from camfaith.data.samples import ImageArrayDataset, ImageFileDataset
from camfaith.data.transforms import CorruptImageError, image_transform


def _synthetic(*args, **kwargs) -> DatasetSplits:
    from camfaith.data.synthetic import synthetic  # imported on use: it is generated, not read from disk

    return synthetic(*args, **kwargs)


_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "crc": crc,
    "covid19": covid19,
    "ham10000": ham10000,
    "breakhis": breakhis,
    "medmnist": medmnist,
    "pathmnist": pathmnist,
    "dermamnist": dermamnist,
    "cifar10": cifar10,
    "stl10": stl10,
    "imagenette": imagenette,
    "synthetic": _synthetic,
}

DATASETS: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    **options,
) -> DatasetSplits:
    """Load dataset ``name`` with its seeded split.

    Parameters
    ----------
    name
        One of :data:`DATASETS`.
    root
        Data root (``$CAMFAITH_DATA`` or ``./data`` when ``None``) or the dataset's own folder.
    input_size
        Side of the square model input (224 in Lamprou 2023, section 4.2). CIFAR-10 and STL-10 are
        used at their native 32 and 96 px in its HAAS study: pass those sizes explicitly.
    seed
        Random seed of the split; it is recorded with the split in ``manifest``.
    augment
        Flips and random rotations on the training split (Lamprou 2023, section 4.2).
    **options
        Loader-specific keywords, e.g. ``allow_small``, ``skip_corrupt``, ``fractions``, ``path``.

    Raises
    ------
    ValueError
        For an unknown ``name``; the message lists the valid names.
    """
    loader = _LOADERS.get(str(name).lower())
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return loader(root=root, input_size=input_size, seed=seed, augment=augment, **options)


__all__ = [
    "DATASETS",
    "CorruptImageError",
    "DatasetSplits",
    "ImageArrayDataset",
    "ImageFileDataset",
    "MaskError",
    "MaskedImageFileDataset",
    "breakhis",
    "cifar10",
    "covid19",
    "crc",
    "data_root",
    "dermamnist",
    "ham10000",
    "image_transform",
    "imagenette",
    "load_dataset",
    "medmnist",
    "missing_data",
    "pathmnist",
    "read_manifest",
    "stl10",
]
