"""A quick look at the data root before a run: is every dataset a configuration needs in place?

:func:`missing_data` only looks at folders and file names (no image is decoded and no dataset is
loaded), the same places the loaders look, so a configuration can fail in seconds with one message
per missing dataset instead of deep inside a notebook. Each message says what is missing, the
expected layout and the command (or the manual steps) that fetches the data.
"""

from __future__ import annotations

import csv
import os
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

from camfaith.data.base import data_root
from camfaith.data.download.catalogue import CATALOGUE, download_command, instructions
from camfaith.data.medical import (
    BREAKHIS_CLASSES,
    COVID19_CLASSES,
    CRC_CLASSES,
    HAM10000_COLUMNS,
    HAM10000_IMAGE_FOLDERS,
    PHOTO_SUFFIXES,
    TIFF_SUFFIXES,
)
from camfaith.data.medmnist import find_npz
from camfaith.data.natural import CIFAR10_BATCHES, STL10_FILES, imagenette_versions, natural_folder
from camfaith.data.samples import find_dataset_folder
from camfaith.parameters import parse_list, parse_options

Root = str | os.PathLike | None
GENERATED = ("synthetic",)  # made on the fly, never read from disk


def _names(value) -> list[str]:
    """A list of names from a list or a comma-separated string."""
    return parse_list(value, str, allow_empty=True) if isinstance(value, str) else [str(name) for name in value]


def _has_files(folder: Path, suffixes: Iterable[str]) -> bool:
    """Whether ``folder`` holds a file with one of ``suffixes``; stops at the first one found."""
    suffixes = {suffix.lower() for suffix in suffixes}
    try:
        with os.scandir(folder) as entries:
            return any(entry.is_file() and Path(entry.name).suffix.lower() in suffixes for entry in entries)
    except OSError:
        return False


def _class_folders_problem(base: Path, classes: Iterable[str], suffixes: Iterable[str], kind: str) -> str | None:
    empty = [name for name in classes if not _has_files(base / name, suffixes)]
    return f"{base} has no {kind} in the class folders {', '.join(empty)}" if empty else None


def _crc(root: Root, options: Mapping) -> str | None:
    train_folder = options.get("train_folder", "NCT-CRC-HE-100K")
    folder = find_dataset_folder(root, "crc", train_folder)
    if folder is None:
        return f"no {train_folder}/ folder in {data_root(root) / 'crc'}"
    problem = _class_folders_problem(folder / train_folder, CRC_CLASSES, TIFF_SUFFIXES, ".tif tiles")
    if problem or options.get("allow_small"):
        return problem
    if not (folder / "CRC-VAL-HE-7K").is_dir():
        return f"the test set {folder / 'CRC-VAL-HE-7K'} is missing (allow_small=True loads without it)"
    return _class_folders_problem(folder / "CRC-VAL-HE-7K", CRC_CLASSES, TIFF_SUFFIXES, ".tif tiles")


def _covid19(root: Root, options: Mapping) -> str | None:
    folder = find_dataset_folder(root, "covid19_radiography", "COVID-19_Radiography_Dataset")
    if folder is None:
        return f"no COVID-19_Radiography_Dataset/ folder in {data_root(root) / 'covid19_radiography'}"
    base = folder / "COVID-19_Radiography_Dataset"
    present = [name for name in COVID19_CLASSES if _has_files(base / name / "images", PHOTO_SUFFIXES)]
    wanted = options.get("classes")
    if wanted is not None:
        absent = [name for name in _names(wanted) if name not in present]
        return f"{base} has no images of {', '.join(absent)} in <class>/images/" if absent else None
    if len(present) < 2:
        return f"{base} has images in {len(present)} <class>/images/ folder(s); at least two are needed"
    return None


def _ham10000(root: Root, options: Mapping) -> str | None:
    folder = find_dataset_folder(root, "ham10000", "HAM10000_metadata.csv")
    if folder is None:
        return f"no HAM10000_metadata.csv in {data_root(root) / 'ham10000'}"
    with open(folder / "HAM10000_metadata.csv", newline="") as handle:
        header = next(csv.reader(handle), [])
    absent = [column for column in HAM10000_COLUMNS if column not in header]
    if absent:
        return f"{folder / 'HAM10000_metadata.csv'} lacks the columns {', '.join(absent)}"
    image_folders = _names(options.get("image_folders", HAM10000_IMAGE_FOLDERS))
    if not any(_has_files(folder / name, PHOTO_SUFFIXES) for name in image_folders):
        return f"no images in any of {', '.join(image_folders)} under {folder}"
    return None


def _breakhis(root: Root, options: Mapping) -> str | None:
    folder = find_dataset_folder(root, "breakhis", "BreaKHis_v1")
    if folder is None:
        return f"no BreaKHis_v1/ folder in {data_root(root) / 'breakhis'}"
    breast = folder / "BreaKHis_v1" / "histology_slides" / "breast"
    absent = [f"{name}/SOB/" for name in BREAKHIS_CLASSES
              if not (breast / name / "SOB").is_dir() or not any((breast / name / "SOB").iterdir())]
    return f"{breast} has no tumour folders in {' and '.join(absent)}" if absent else None


def _medmnist_file(flag: str):
    def check(root: Root, options: Mapping) -> str | None:
        try:
            find_npz(root, flag, options.get("file"))
        except FileNotFoundError:
            return f"no {options.get('file') or flag + '*.npz'} in {data_root(root) / flag}"
        except ValueError as error:
            return str(error).removeprefix(f"{flag}: ")
        return None

    return check


def _medmnist(root: Root, options: Mapping) -> str | None:
    path = options.get("path", root)
    if path is None or not Path(path).is_file():
        return f"{path} is not a file; the medmnist loader needs the dataset option path=<file>.npz"
    return None


def _cifar10(root: Root, options: Mapping) -> str | None:
    folder = natural_folder(root, "cifar10", ["cifar-10-batches-py"])
    if folder is not None:
        batches = folder / "cifar-10-batches-py"
        absent = [name for name in (*CIFAR10_BATCHES, "test_batch") if not (batches / name).is_file()]
        return f"{batches} lacks {', '.join(absent)}" if absent else None
    if natural_folder(root, "cifar10", ["train", "test"]) is None:
        return f"no cifar-10-batches-py/ nor train/ and test/ image folders in {data_root(root) / 'cifar10'}"
    return None


def _stl10(root: Root, options: Mapping) -> str | None:
    folder = natural_folder(root, "stl10", ["stl10_binary"])
    if folder is not None:
        absent = [name for name in STL10_FILES if not (folder / "stl10_binary" / name).is_file()]
        return f"{folder / 'stl10_binary'} lacks {', '.join(absent)}" if absent else None
    if natural_folder(root, "stl10", ["train", "test"]) is None:
        return f"no stl10_binary/ nor train/ and test/ image folders in {data_root(root) / 'stl10'}"
    return None


def _imagenette(root: Root, options: Mapping) -> str | None:
    variant = options.get("variant")
    found = imagenette_versions(root, variant)
    if not found:
        return f"no {variant or 'imagenette2*'}/ folder with train/ and val/ in {data_root(root) / 'imagenette'}"
    if len(found) > 1:
        return f"several versions ({', '.join(path.name for path in found)}); choose one with variant=<folder name>"
    return None


_CHECKS = {
    "crc": _crc,
    "covid19": _covid19,
    "ham10000": _ham10000,
    "breakhis": _breakhis,
    "medmnist": _medmnist,
    "pathmnist": _medmnist_file("pathmnist"),
    "dermamnist": _medmnist_file("dermamnist"),
    "cifar10": _cifar10,
    "stl10": _stl10,
    "imagenette": _imagenette,
}
KNOWN = (*_CHECKS, *GENERATED)


def _message(name: str, problem: str, root: Root) -> str:
    """The report on one dataset: what is missing, the expected layout and how to get the data."""
    base = data_root(root)
    if name not in CATALOGUE:  # the generic MedMNIST loader reads any file it is given
        return f"{name}: {problem}. Use pathmnist or dermamnist, or name a MedMNIST-format file."
    info = CATALOGUE[name]
    layout = "\n".join(f"    {line}" for line in info.layout)
    if info.manual:  # long prose, wrapped; a command stays on one line so that it can be copied
        how = textwrap.fill(f"Get it by hand: {instructions(name, root)}", width=100, initial_indent="  ",
                            subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    else:
        how = f"  Download it with: {download_command(name, root)}"
    return f"{name}, {info.title}: {problem}.\n  Expected under the data root {base}:\n{layout}\n{how}"


def missing_data(
    datasets: Iterable[str] | str, root: Root = None, options: Mapping[str, Mapping | str] | None = None
) -> list[str]:
    """One message per dataset in ``datasets`` that is missing or not in its expected layout.

    Parameters
    ----------
    datasets
        Dataset names as :func:`camfaith.data.load_dataset` takes them (a list, or a comma-separated
        string); ``synthetic`` needs no data and is always fine.
    root
        The data root, as for the loaders (``$CAMFAITH_DATA`` or ``./data`` when ``None``).
    options
        Loader options per dataset name, as a mapping or a ``"name=value,..."`` string; those that
        change where the loader looks count: ``train_folder`` and ``allow_small`` (crc), ``classes``
        (covid19), ``image_folders`` (ham10000), ``file`` (pathmnist, dermamnist), ``path``
        (medmnist), ``variant`` (imagenette).

    Returns
    -------
    list of str
        Empty when every dataset is in place; otherwise one message per missing dataset naming what
        is missing, the expected layout and the download command or the manual steps.

    Raises
    ------
    ValueError
        For an unknown dataset name; the message lists the known ones.
    """
    names = list(dict.fromkeys(name.lower() for name in _names(datasets)))
    unknown = [name for name in names if name not in KNOWN]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(unknown)}; choose from: {', '.join(KNOWN)}")
    options = {str(key).lower(): value for key, value in (options or {}).items()}
    messages = []
    for name in names:
        if name in GENERATED:
            continue
        given = options.get(name) or {}
        problem = _CHECKS[name](root, parse_options(given))
        if problem:
            messages.append(_message(name, problem, root))
    return messages


__all__ = ["missing_data"]
