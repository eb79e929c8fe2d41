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


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the datasets: ``root`` if given, else ``$CAMFAITH_DATA``, else ``./data``."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(DATA_ROOT_VARIABLE, "data"))


@dataclass
class DatasetSplits:
    """Train, validation and test sets of one dataset, with their class names and split manifest.

    ``manifest`` has one row per sample and the columns ``id``, ``split`` (train/val/test) and
    ``label`` (int), so a run can be reproduced and audited.
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
