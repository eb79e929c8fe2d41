"""The datasets of the report: where each one is published, how it sits on disk and how to get it.

Checksums are the MD5s the publishers list: Zenodo record 1214456 for CRC (Kather, Halama and Marx,
2018), Zenodo record 10519652 for MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023; the values
``medmnist`` 3.0.2 checks), and the archive MD5s torchvision checks for CIFAR-10, STL-10 and
Imagenette. COVID-19 Radiography (Kaggle), HAM10000 (Harvard Dataverse) and BreakHis (UFPR) have no
scriptable public link with a published checksum: :func:`require_manual_download` explains where to
get them and where to unpack them. The ``download_*`` functions place each dataset in the layout its
loader expects under the data root (:func:`camfaith.data.base.data_root`).

Sizes and licences come from the publishers' pages as recorded in each staged folder's
``SOURCE.md``; where they are not known here they are left out rather than guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from camfaith.data.base import data_root
from camfaith.data.download.archives import extract_archive, extraction_marker
from camfaith.data.download.http import download_file

COMMAND = "python -m camfaith.data.download"


class ManualDownloadRequired(RuntimeError):
    """The dataset needs an account or a licence step; the message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where it is, its name on disk and its MD5 (``None`` when none is published)."""

    url: str
    filename: str
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset as the loaders expect it: its folder under the data root and how to fill it.

    ``layout`` lists paths relative to the data root; ``how`` is a template of the download steps
    with the fields ``{folder}`` (the dataset folder) and ``{command}`` (the download command).
    ``size`` and ``licence`` are ``None`` where they are not known.
    """

    title: str
    folder: str
    layout: tuple[str, ...]
    how: str
    manual: bool = False
    size: str | None = None
    licence: str | None = None


ZENODO_CRC = "https://zenodo.org/records/1214456/files"
CRC_FILES = {
    # Macenko-normalised training tiles, the version Lamprou (2023) uses (section 4.1, reference [61]).
    "NCT-CRC-HE-100K": RemoteFile(
        f"{ZENODO_CRC}/NCT-CRC-HE-100K.zip?download=1", "NCT-CRC-HE-100K.zip",
        "6fd702d11df6292bc054397ae038a464", 11_690_284_003,
    ),
    "NCT-CRC-HE-100K-NONORM": RemoteFile(
        f"{ZENODO_CRC}/NCT-CRC-HE-100K-NONORM.zip?download=1", "NCT-CRC-HE-100K-NONORM.zip",
        "035777cf327776a71a05c95da6d6325f",
    ),
    "CRC-VAL-HE-7K": RemoteFile(
        f"{ZENODO_CRC}/CRC-VAL-HE-7K.zip?download=1", "CRC-VAL-HE-7K.zip",
        "2fd1651b4f94ebd818ebf90ad2b6ce06", 800_276_929,
    ),
}

ZENODO_MEDMNIST = "https://zenodo.org/records/10519652/files"
MEDMNIST_MD5 = {
    ("pathmnist", 28): "a8b06965200029087d5bd730944a56c1",
    ("pathmnist", 64): "55aa9c1e0525abe5a6b9d8343a507616",
    ("pathmnist", 128): "ac42d08fb904d92c244187169d1fd1d9",
    ("pathmnist", 224): "2c51a510bcdc9cf8ddb2af93af1eadec",
    ("dermamnist", 28): "0744692d530f8e62ec473284d019b0c7",
    ("dermamnist", 64): "b70a2f5635c6199aeaa28c31d7202e1f",
    ("dermamnist", 128): "2defd784463fa5243564e855ed717de1",
    ("dermamnist", 224): "8974907d8e169bef5f5b96bc506ae45d",
}

CIFAR10_FILE = RemoteFile(
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)
STL10_FILE = RemoteFile(
    "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
    "91f7769df0f17e558f3565bffb0c7dfb",
)
IMAGENETTE_FILES = {
    "full": RemoteFile("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz", "imagenette2.tgz",
                       "fe2fc210e6bb7c5664d602c3cd71e612"),
    "320px": RemoteFile("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
                        "imagenette2-320.tgz", "3df6f0d01a2c9592104656642f5e78a3"),
    "160px": RemoteFile("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
                        "imagenette2-160.tgz", "e793b78cc4c9e9a4ccc0c1155377a412"),
}

_MEDMNIST_HOW = (
    "Get {name}.npz (or {name}_64/_128/_224.npz) from Zenodo record 10519652, e.g. with `{{command}}`, "
    "into {{folder}}/."
)

CATALOGUE: dict[str, DatasetInfo] = {
    "crc": DatasetInfo(
        "CRC histology tiles (NCT-CRC-HE-100K and CRC-VAL-HE-7K)", "crc",
        ("crc/NCT-CRC-HE-100K/<CLASS>/*.tif", "crc/CRC-VAL-HE-7K/<CLASS>/*.tif",
         "  with CLASS in ADI BACK DEB LYM MUC MUS NORM STR TUM"),
        "Get NCT-CRC-HE-100K.zip and CRC-VAL-HE-7K.zip from Zenodo record 1214456 "
        "(https://zenodo.org/records/1214456, CC BY 4.0), e.g. with `{command}`, and unzip both into "
        "{folder}/ so that {folder}/NCT-CRC-HE-100K/ADI/*.tif and {folder}/CRC-VAL-HE-7K/ADI/*.tif exist.",
        size="NCT-CRC-HE-100K.zip 11.7 GB (100,000 tiles), CRC-VAL-HE-7K.zip 0.8 GB (7,180 tiles)",
        licence="CC BY 4.0",
    ),
    "covid19": DatasetInfo(
        "COVID-19 Radiography Database", "covid19_radiography",
        ("covid19_radiography/COVID-19_Radiography_Dataset/<class>/images/*.png",
         "  with at least two classes of COVID, Lung_Opacity, Normal, Viral Pneumonia"),
        "The COVID-19 Radiography Database is on Kaggle and needs a (free) Kaggle account: "
        "https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database . Download the "
        "archive from that page (or run `kaggle datasets download -d "
        "tawsifurrahman/covid19-radiography-database` with an API token) and unzip it into {folder}/ so "
        "that {folder}/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png exists (the masks/ folders "
        "are not used). Cite Chowdhury et al., IEEE Access 8:132665 (2020) and Rahman et al., Computers "
        "in Biology and Medicine 132:104319 (2021).",
        manual=True,
        size="21,165 PNG images of 299x299 px (COVID 3,616, Lung_Opacity 6,012, Normal 10,192, "
             "Viral Pneumonia 1,345)",
        licence="the terms of the Kaggle dataset page",
    ),
    "ham10000": DatasetInfo(
        "HAM10000 dermatoscopy", "ham10000",
        ("ham10000/HAM10000_metadata.csv",
         "ham10000/HAM10000_images_part_1/ISIC_*.jpg and ham10000/HAM10000_images_part_2/ISIC_*.jpg",
         "  (or all images in ham10000/images/)"),
        "HAM10000 is on Harvard Dataverse, doi:10.7910/DVN/DBW86T (https://doi.org/10.7910/DVN/DBW86T, "
        "CC BY-NC 4.0; accept the terms on the page). Download HAM10000_images_part_1.zip, "
        "HAM10000_images_part_2.zip and HAM10000_metadata (original CSV format), or the Kaggle mirror "
        "kmader/skin-cancer-mnist-ham10000, and unpack into {folder}/ so that "
        "{folder}/HAM10000_metadata.csv and {folder}/HAM10000_images_part_1/ISIC_*.jpg exist (images in "
        "{folder}/images/ are found too). The ISIC 2018 Task 3 copy lacks lesion_id and cannot be split "
        "by lesion.",
        manual=True,
        size="10,015 JPEG images of 600x450 px",
        licence="CC BY-NC 4.0 (non-commercial use only)",
    ),
    "breakhis": DatasetInfo(
        "BreakHis breast histology", "breakhis",
        ("breakhis/BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/",
         "  <tumour type>/<slide>/<40X|100X|200X|400X>/*.png"),
        "BreakHis is distributed by the VRI lab of UFPR: "
        "https://web.inf.ufpr.br/vri/databases/breast-cancer-histopathological-database-breakhis/ . "
        "Download BreaKHis_v1.tar.gz linked there (no checksum is published; read the terms on the page) "
        "and unpack it into {folder}/ (camfaith.data.download.extract_archive can do it) so that "
        "{folder}/BreaKHis_v1/histology_slides/breast/benign/SOB/ exists. Cite Spanhol et al., IEEE "
        "Trans. Biomed. Eng. 63(7):1455 (2016).",
        manual=True,
        size="7,909 PNG images of 700x460 px from 82 patients",
        licence="the terms on the UFPR VRI page",
    ),
    "pathmnist": DatasetInfo(
        "PathMNIST (MedMNIST v2, from CRC)", "pathmnist",
        ("pathmnist/pathmnist.npz (or pathmnist_64/_128/_224.npz)",),
        _MEDMNIST_HOW.format(name="pathmnist"),
        size="107,180 images (89,996 train, 10,004 val, 7,180 test), 28 px and larger versions",
        licence="CC BY 4.0",
    ),
    "dermamnist": DatasetInfo(
        "DermaMNIST (MedMNIST v2, from HAM10000)", "dermamnist",
        ("dermamnist/dermamnist.npz (or dermamnist_64/_128/_224.npz)",),
        _MEDMNIST_HOW.format(name="dermamnist"),
        size="10,015 images (7,007 train, 1,003 val, 2,005 test), 28 px and larger versions",
        licence="CC BY-NC 4.0 (non-commercial use only)",
    ),
    "cifar10": DatasetInfo(
        "CIFAR-10", "cifar10",
        ("cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
         "  or cifar10/{train,test}/<class>/*.png"),
        "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, e.g. with "
        "`{command}` or torchvision.datasets.CIFAR10('{folder}', download=True), so that "
        "{folder}/cifar-10-batches-py/data_batch_1 exists.",
        size="60,000 images of 32 px (50,000 train, 10,000 test)",
    ),
    "stl10": DatasetInfo(
        "STL-10", "stl10",
        ("stl10/stl10_binary/{train,test}_{X,y}.bin", "  or stl10/{train,test}/<class>/*.png"),
        "Get stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/, e.g. with `{command}` or "
        "torchvision.datasets.STL10('{folder}', download=True), so that {folder}/stl10_binary/train_X.bin "
        "exists.",
        size="2.6 GB; 13,000 labelled images of 96 px (5,000 train, 8,000 test)",
    ),
    "imagenette": DatasetInfo(
        "Imagenette (10 ImageNet classes)", "imagenette",
        ("imagenette/imagenette2-320/{train,val}/<wnid>/*.JPEG", "  (or imagenette2/, imagenette2-160/)"),
        "Get imagenette2-320.tgz (or imagenette2.tgz, imagenette2-160.tgz) from "
        "https://github.com/fastai/imagenette, e.g. with `{command}`, so that "
        "{folder}/imagenette2-320/train/n01440764/*.JPEG exists.",
    ),
}

# Sub-folder of the data root that holds each dataset, as the loaders expect it.
DATASET_FOLDERS = {name: info.folder for name, info in CATALOGUE.items()}
MANUAL_DATASETS = tuple(name for name, info in CATALOGUE.items() if info.manual)


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of dataset ``name``; a clear error lists the known names."""
    if name not in CATALOGUE:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def download_command(name: str, root: str | os.PathLike | None = None) -> str:
    """The shell command that downloads ``name`` into the data root."""
    return f"{COMMAND} {name} --root {data_root(root)}"


def instructions(name: str, root: str | os.PathLike | None = None) -> str:
    """Where to get dataset ``name`` and where to put it under the data root."""
    if name not in CATALOGUE:
        raise ValueError(f"no instructions for {name!r}; known: {', '.join(sorted(CATALOGUE))}")
    folder = data_root(root) / CATALOGUE[name].folder
    return CATALOGUE[name].how.format(folder=folder, command=download_command(name, root))


def require_manual_download(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise :class:`ManualDownloadRequired` with the exact steps for a dataset behind a login."""
    if name not in MANUAL_DATASETS:
        raise ValueError(f"{name!r} can be downloaded with download_dataset(); manual ones: {MANUAL_DATASETS}")
    raise ManualDownloadRequired(f"{name} cannot be downloaded automatically. {instructions(name, root)}")


def fetch_and_extract(
    remote: RemoteFile, folder: Path, *, keep_archive: bool = False, progress: bool = True
) -> Path:
    """Download ``remote`` into ``folder`` (resuming, verified) and unpack it there once."""
    archive = folder / remote.filename
    if extraction_marker(folder, archive).exists():
        return folder
    download_file(remote.url, archive, remote.md5, size=remote.size, progress=progress)
    extract_archive(archive, folder)
    if not keep_archive:
        archive.unlink()
    return folder


def download_crc(
    root: str | os.PathLike | None = None,
    *,
    normalized: bool = True,
    train: bool = True,
    test: bool = True,
    keep_archives: bool = False,
    progress: bool = True,
) -> Path:
    """Download and unpack CRC (Kather et al., Zenodo record 1214456) into ``<data root>/crc``.

    ``normalized`` selects NCT-CRC-HE-100K (Macenko-normalised, used by Lamprou 2023) rather than
    NCT-CRC-HE-100K-NONORM. The archives are 11.7 GB and 0.8 GB; ``train=False`` fetches the test set
    CRC-VAL-HE-7K only. Returns the dataset folder.
    """
    folder = data_root(root) / DATASET_FOLDERS["crc"]
    names = []
    if train:
        names.append("NCT-CRC-HE-100K" if normalized else "NCT-CRC-HE-100K-NONORM")
    if test:
        names.append("CRC-VAL-HE-7K")
    for name in names:
        fetch_and_extract(CRC_FILES[name], folder, keep_archive=keep_archives, progress=progress)
    return folder


def medmnist_file(name: str, size: int = 28) -> RemoteFile:
    """The Zenodo file of MedMNIST v2 dataset ``name`` at ``size`` pixels (28, 64, 128 or 224)."""
    if (name, size) not in MEDMNIST_MD5:
        known = sorted({flag for flag, _ in MEDMNIST_MD5})
        raise ValueError(f"unknown MedMNIST file {name!r} at {size} px; known: {known} x (28, 64, 128, 224)")
    filename = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
    return RemoteFile(f"{ZENODO_MEDMNIST}/{filename}?download=1", filename, MEDMNIST_MD5[name, size])


def download_medmnist(
    name: str = "pathmnist", size: int = 28, root: str | os.PathLike | None = None, *, progress: bool = True
) -> Path:
    """Download a MedMNIST v2 ``.npz`` (Yang et al. 2023) into ``<data root>/<name>/``; return its path."""
    remote = medmnist_file(name, size)
    folder = data_root(root) / DATASET_FOLDERS[name]
    return download_file(remote.url, folder / remote.filename, remote.md5, progress=progress)


def download_cifar10(root: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """Download CIFAR-10 (Krizhevsky 2009) into ``<data root>/cifar10/cifar-10-batches-py``."""
    folder = data_root(root) / DATASET_FOLDERS["cifar10"]
    return fetch_and_extract(CIFAR10_FILE, folder, progress=progress)


def download_stl10(root: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """Download STL-10 (Coates, Ng and Lee 2011; 2.6 GB) into ``<data root>/stl10/stl10_binary``."""
    folder = data_root(root) / DATASET_FOLDERS["stl10"]
    return fetch_and_extract(STL10_FILE, folder, progress=progress)


def download_imagenette(
    root: str | os.PathLike | None = None, variant: str = "320px", *, progress: bool = True
) -> Path:
    """Download Imagenette (``"full"``, ``"320px"`` or ``"160px"``) into ``<data root>/imagenette``."""
    if variant not in IMAGENETTE_FILES:
        raise ValueError(f"unknown Imagenette variant {variant!r}; choose one of {sorted(IMAGENETTE_FILES)}")
    folder = data_root(root) / DATASET_FOLDERS["imagenette"]
    return fetch_and_extract(IMAGENETTE_FILES[variant], folder, progress=progress)


def download_dataset(name: str, root: str | os.PathLike | None = None, **options) -> Path:
    """Download dataset ``name`` into its folder under the data root, or explain the manual steps.

    ``options`` go to the dataset's ``download_*`` function (e.g. ``size=64`` for MedMNIST).

    Raises
    ------
    ManualDownloadRequired
        For COVID-19 Radiography, HAM10000 and BreakHis.
    ValueError
        For an unknown ``name``; the message lists the known ones.
    """
    if name in MANUAL_DATASETS:
        require_manual_download(name, root)
    if name == "crc":
        return download_crc(root, **options)
    if name in {"pathmnist", "dermamnist"}:
        return download_medmnist(name, root=root, **options)
    downloaders = {"cifar10": download_cifar10, "stl10": download_stl10, "imagenette": download_imagenette}
    if name in downloaders:
        return downloaders[name](root, **options)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOGUE))}")


__all__ = [
    "CATALOGUE",
    "CRC_FILES",
    "DATASET_FOLDERS",
    "MANUAL_DATASETS",
    "DatasetInfo",
    "ManualDownloadRequired",
    "RemoteFile",
    "dataset_info",
    "download_cifar10",
    "download_command",
    "download_crc",
    "download_dataset",
    "download_imagenette",
    "download_medmnist",
    "download_stl10",
    "fetch_and_extract",
    "instructions",
    "medmnist_file",
    "require_manual_download",
]
