"""BreakHis breast histology as benign versus malignant, split by patient case (Spanhol et al. 2016).

Table 2 of Lamprou (2023) splits BreakHis into "tissue image independent sets". The release stores each
slide in a folder ``SOB_<B|M>_<tumour type>_<slide id>``, and the slide id starts with the case number
(``14-22549`` in ``14-22549AB``, ``14-22549CD`` and ``14-22549G``). The 82 folders of the full release carry
70 case numbers: 10 appear in several folders, under different letter suffixes, and two of them under two
tumour types (``14-21998`` as fibroadenoma and phyllodes tumour, ``14-13412`` as ductal and lobular
carcinoma). The split is therefore grouped by case number, not by folder: whether such folders are one
patient or several, keeping them together can never leak a patient into two splits, and costs only a
little balance.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from camfaith.data.base import DatasetSplits
from camfaith.data.download import instructions
from camfaith.data.samples import check_coverage, dataset_folder, file_splits, image_files, subfolders
from camfaith.data.splits import SPLITS, grouped_stratified_assignment
from camfaith.data.transforms import DEFAULT_ROTATION_DEGREES

BREAKHIS_CLASSES = ("benign", "malignant")
BREAKHIS_MAGNIFICATIONS = ("40X", "100X", "200X", "400X")
BREAKHIS_FRACTIONS = MappingProxyType({0: (0.58, 0.20, 0.22), 1: (0.63, 0.18, 0.19)})  # read-only
BREAKHIS_SLIDE = re.compile(r"^SOB_(?P<kind>[BM])_(?P<tumour>[A-Z]+)_(?P<slide>(?P<case>\d+-\d+)[A-Za-z]*)$")
BREAKHIS_LAYOUT = ("BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<tumour type>/<slide>/"
                   "<40X|100X|200X|400X>/*.png")


def _match_slide(folder_name: str) -> re.Match:
    match = BREAKHIS_SLIDE.match(folder_name)
    if match is None:
        raise ValueError(
            f"breakhis: slide folder {folder_name!r} does not follow the BreakHis naming "
            f"SOB_<B|M>_<tumour type>_<case number><letters> (e.g. SOB_B_A_14-22549AB)"
        )
    return match


def breakhis_slide(folder_name: str) -> tuple[str, str]:
    """Parse a BreakHis slide folder name ``SOB_<B|M>_<tumour type>_<slide id>``.

    Returns
    -------
    tuple of str
        ``("benign" | "malignant", slide id)``, e.g. ``("benign", "14-22549AB")``.
    """
    match = _match_slide(folder_name)
    return ("benign" if match["kind"] == "B" else "malignant"), match["slide"]


def breakhis_case(folder_name: str) -> str:
    """The patient case number of a slide folder: the digits of its slide id, without the letter suffix.

    ``SOB_B_A_14-22549AB``, ``SOB_B_A_14-22549CD`` and ``SOB_B_A_14-22549G`` are all case ``14-22549``;
    the split keeps every folder of one case together (module docstring).
    """
    return _match_slide(folder_name)["case"]


def _slide_rows(slide: Path, label: int, magnifications: Sequence[str], folder: Path) -> list[tuple]:
    """Rows (id, label, group = case number, path) of one slide folder's chosen magnifications."""
    rows = []
    for magnification in subfolders(slide):
        if magnification.name not in BREAKHIS_MAGNIFICATIONS:
            raise ValueError(
                f"breakhis: unexpected folder {magnification}; slide folders hold only "
                f"{', '.join(BREAKHIS_MAGNIFICATIONS)}"
            )
        if magnification.name in magnifications:
            rows += [(path.relative_to(folder).as_posix(), label, breakhis_case(slide.name), str(path))
                     for path in image_files(magnification, (".png",))]
    return rows


def _breakhis_samples(folder: Path, magnifications: Sequence[str], advice: str) -> pd.DataFrame:
    """Samples (id, label, group = case number, path) of the BreakHis tree, checked for its naming."""
    breast = folder / "BreaKHis_v1" / "histology_slides" / "breast"
    rows = []
    for label, name in enumerate(BREAKHIS_CLASSES):
        tumour_root = breast / name / "SOB"
        if not tumour_root.is_dir():
            raise FileNotFoundError(f"breakhis: {tumour_root} is missing. Expected {BREAKHIS_LAYOUT}. {advice}")
        for tumour in subfolders(tumour_root):
            for slide in subfolders(tumour):
                kind, _ = breakhis_slide(slide.name)
                if kind != name:
                    raise ValueError(f"breakhis: slide folder {slide} is named {kind} but lies under {name}/")
                rows += _slide_rows(slide, label, magnifications, folder)
    return pd.DataFrame(rows, columns=["id", "label", "group", "path"])


def breakhis(
    root: str | os.PathLike | None = None,
    input_size: int = 224,
    seed: int = 0,
    augment: bool = True,
    *,
    magnifications: Sequence[str] = BREAKHIS_MAGNIFICATIONS,
    fractions: Sequence[float] | Mapping[int, Sequence[float]] = BREAKHIS_FRACTIONS,
    allow_small: bool = False,
    skip_corrupt: bool | None = None,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> DatasetSplits:
    """BreakHis breast histology as benign versus malignant (Spanhol et al. 2016; reference [64]).

    Layout: ``<breakhis>/BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<tumour type>/
    <slide>/<magnification>/*.png``. The split is grouped by patient case number (:func:`breakhis_case`),
    across magnifications, letter suffixes and tumour types, so no case has images in two splits (Table 2
    of Lamprou 2023, "tissue image independent sets"); the manifest's ``group`` is the case number.
    Per-class targets are benign 58/20/22 and malignant 63/18/19. The original study allocated slides by
    hand; here the cases are allocated by :func:`~camfaith.data.splits.grouped_stratified_assignment` with
    ``seed``. Ids are paths relative to the dataset folder.

    Parameters
    ----------
    magnifications
        Magnification folders to read (40X, 100X, 200X, 400X).
    fractions
        Train, val and test shares, for both classes or per label ``{0: benign, 1: malignant}``.

    Other parameters are described in :mod:`camfaith.data.medical`.
    """
    advice = instructions("breakhis", root)
    folder = dataset_folder(root, "breakhis", "BreaKHis_v1", "breakhis", BREAKHIS_LAYOUT, advice)
    unknown = [name for name in magnifications if name not in BREAKHIS_MAGNIFICATIONS]
    if unknown:
        raise ValueError(f"breakhis: unknown magnifications {unknown}; choose from {BREAKHIS_MAGNIFICATIONS}")
    samples = _breakhis_samples(folder, magnifications, advice)
    samples = samples.sort_values("id", kind="stable").reset_index(drop=True)
    assignment = grouped_stratified_assignment(samples["label"], samples["group"], fractions, seed)
    samples["split"] = np.asarray(SPLITS)[assignment]
    check_coverage(samples, BREAKHIS_CLASSES, "breakhis", allow_small, advice)
    return file_splits(samples, BREAKHIS_CLASSES, input_size, augment, "breakhis", skip_corrupt,
                       rotation_degrees)
