"""The common shape of every dataset in the report.

Every loader returns a :class:`DatasetSplits`: three ``torch`` datasets whose items are
``(image, label, id)`` with ``image`` a float tensor ``(3, H, W)`` in ``[-1, 1]`` (Lamprou 2023, section 4.2),
``label`` an ``int`` and ``id`` a string that names the sample in the split manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from torch.utils.data import Dataset

from camfaith.io import save_csv

DATA_ROOT_VARIABLE = "CAMFAITH_DATA"
MANIFEST_COLUMNS = ("id", "split", "label", "group")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the datasets: ``root`` if given, else ``$CAMFAITH_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(DATA_ROOT_VARIABLE, "data"))


@dataclass
class DatasetSplits:
    """Train, validation and test sets of one dataset, with their class names and split manifest.

    ``manifest`` has one row per sample and the columns ``id``, ``split`` (train/val/test), ``label``
    (int) and ``group`` (str), so a run can be reproduced and audited. ``group`` names the unit that
    the split keeps together and that repeated measurements share: the ``lesion_id`` for HAM10000 (several
    images of one lesion), the patient's case number for BreakHis (e.g. ``14-22549`` for the slide folders
    ``14-22549AB``, ``14-22549CD`` and ``14-22549G``), and the empty string where a data set has no such
    unit (CRC, COVID-19 Radiography, MedMNIST, the natural images, the synthetic set): there every
    sample counts as its own group. Read a written manifest back with :func:`read_manifest`, which keeps the
    empty groups as ``""`` rather than NaN.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    manifest: pd.DataFrame = field(repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def write_manifest(self, path: str | os.PathLike) -> Path:
        """Write the manifest CSV atomically."""
        return save_csv(self.manifest, path)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest written by :meth:`DatasetSplits.write_manifest`: ids and groups as strings, ``""`` kept.

    An older manifest without the ``group`` column gets one of empty strings.
    """
    manifest = pd.read_csv(path, dtype={"id": str, "split": str, "group": str}, keep_default_na=False)
    if "group" not in manifest.columns:
        manifest["group"] = ""
    manifest["label"] = manifest["label"].astype("int64")
    return manifest
