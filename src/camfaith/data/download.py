"""Downloads with checksum, resume and atomic completion; instructions for the datasets behind a login.

:func:`download_file` fetches one URL into ``<file>.part`` (continuing a partial file with an HTTP
``Range`` request), verifies its MD5 and only then renames it to its final name, so a file under its
final name is always complete. :func:`extract_archive` unpacks zip and tar archives without letting a
member escape the target folder. The ``download_*`` functions place each dataset in the layout its
loader expects under the data root (:func:`camfaith.data.base.data_root`).

Checksums are the MD5s the publishers list: Zenodo record 1214456 for CRC (Kather, Halama and Marx,
2018), Zenodo record 10519652 for MedMNIST v2 (Yang et al., Scientific Data 10:41, 2023; the values
``medmnist`` 3.0.2 checks), and the archive MD5s torchvision checks for CIFAR-10, STL-10 and
Imagenette. COVID-19 Radiography (Kaggle), HAM10000 (Harvard Dataverse) and BreakHis (UFPR) have no
scriptable public link with a published checksum: :func:`require_manual_download` explains where to
get them and where to unpack them.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from camfaith.data.base import data_root

USER_AGENT = "camfaith-data/0.1"


class DownloadError(RuntimeError):
    """A transfer failed; a partial ``.part`` file is kept so that the next call resumes it."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published checksum."""


class ManualDownloadRequired(RuntimeError):
    """The dataset needs an account or a licence step; the message says what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where it is, its name on disk and its MD5 (``None`` when none is published)."""

    url: str
    filename: str
    md5: str | None = None
    size: int | None = None


ZENODO_CRC = "https://zenodo.org/records/1214456/files"
CRC_FILES = {
    # Macenko-normalised training tiles, the version the seed uses (seed section 4.1, reference [61]).
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

# Sub-folder of the data root that holds each dataset, as the loaders expect it.
DATASET_FOLDERS = {
    "crc": "crc",
    "covid19": "covid19_radiography",
    "ham10000": "ham10000",
    "breakhis": "breakhis",
    "pathmnist": "pathmnist",
    "dermamnist": "dermamnist",
    "cifar10": "cifar10",
    "stl10": "stl10",
    "imagenette": "imagenette",
}

_INSTRUCTIONS = {
    "crc": (
        "Get NCT-CRC-HE-100K.zip and CRC-VAL-HE-7K.zip from Zenodo record 1214456 "
        "(https://zenodo.org/records/1214456, CC BY 4.0), e.g. with "
        "camfaith.data.download.download_crc(root), and unzip both into {folder}/ so that "
        "{folder}/NCT-CRC-HE-100K/ADI/*.tif and {folder}/CRC-VAL-HE-7K/ADI/*.tif exist."
    ),
    "covid19": (
        "The COVID-19 Radiography Database is on Kaggle and needs a (free) Kaggle account: "
        "https://www.kaggle.com/datasets/tawsifurrahman/covid19-radiography-database . Download the "
        "archive from that page (or run `kaggle datasets download -d "
        "tawsifurrahman/covid19-radiography-database` with an API token) and unzip it into {folder}/ so "
        "that {folder}/COVID-19_Radiography_Dataset/COVID/images/COVID-1.png exists (the masks/ folders "
        "are not used). Cite Chowdhury et al., IEEE Access 8:132665 (2020) and Rahman et al., Computers "
        "in Biology and Medicine 132:104319 (2021)."
    ),
    "ham10000": (
        "HAM10000 is on Harvard Dataverse, doi:10.7910/DVN/DBW86T (https://doi.org/10.7910/DVN/DBW86T, "
        "CC BY-NC 4.0; accept the terms on the page). Download HAM10000_images_part_1.zip, "
        "HAM10000_images_part_2.zip and HAM10000_metadata (original CSV format), or the Kaggle mirror "
        "kmader/skin-cancer-mnist-ham10000, and unpack into {folder}/ so that "
        "{folder}/HAM10000_metadata.csv and {folder}/HAM10000_images_part_1/ISIC_*.jpg exist (images in "
        "{folder}/images/ are found too). The ISIC 2018 Task 3 copy lacks lesion_id and cannot be split "
        "by lesion."
    ),
    "breakhis": (
        "BreakHis is distributed by the VRI lab of UFPR: "
        "https://web.inf.ufpr.br/vri/databases/breast-cancer-histopathological-database-breakhis/ . "
        "Download BreaKHis_v1.tar.gz linked there (no checksum is published; read the terms on the page) "
        "and unpack it into {folder}/ (camfaith.data.download.extract_archive can do it) so that "
        "{folder}/BreaKHis_v1/histology_slides/breast/benign/SOB/ exists. Cite Spanhol et al., IEEE "
        "Trans. Biomed. Eng. 63(7):1455 (2016)."
    ),
    "pathmnist": (
        "Get pathmnist.npz (or pathmnist_64/_128/_224.npz) from Zenodo record 10519652, e.g. with "
        "camfaith.data.download.download_medmnist('pathmnist', root=root), into {folder}/."
    ),
    "dermamnist": (
        "Get dermamnist.npz (or dermamnist_64/_128/_224.npz) from Zenodo record 10519652, e.g. with "
        "camfaith.data.download.download_medmnist('dermamnist', root=root), into {folder}/."
    ),
    "cifar10": (
        "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, e.g. with "
        "camfaith.data.download.download_cifar10(root) or torchvision.datasets.CIFAR10('{folder}', "
        "download=True), so that {folder}/cifar-10-batches-py/data_batch_1 exists."
    ),
    "stl10": (
        "Get stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/, e.g. with "
        "camfaith.data.download.download_stl10(root) or torchvision.datasets.STL10('{folder}', "
        "download=True), so that {folder}/stl10_binary/train_X.bin exists."
    ),
    "imagenette": (
        "Get imagenette2-320.tgz (or imagenette2.tgz, imagenette2-160.tgz) from "
        "https://github.com/fastai/imagenette, e.g. with camfaith.data.download.download_imagenette(root), "
        "so that {folder}/imagenette2-320/train/n01440764/*.JPEG exists."
    ),
}

MANUAL_DATASETS = ("covid19", "ham10000", "breakhis")


def instructions(name: str, root: str | os.PathLike | None = None) -> str:
    """Where to get dataset ``name`` and where to put it under the data root."""
    if name not in _INSTRUCTIONS:
        raise ValueError(f"no instructions for {name!r}; known: {', '.join(sorted(_INSTRUCTIONS))}")
    folder = data_root(root) / DATASET_FOLDERS[name]
    return _INSTRUCTIONS[name].format(folder=folder)


def require_manual_download(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise :class:`ManualDownloadRequired` with the exact steps for a dataset behind a login."""
    if name not in MANUAL_DATASETS:
        raise ValueError(f"{name!r} can be downloaded with download_dataset(); manual ones: {MANUAL_DATASETS}")
    raise ManualDownloadRequired(f"{name} cannot be downloaded automatically. {instructions(name, root)}")


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left after ``offset``: the partial file is complete
            return None
        raise DownloadError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot reach {url}: {reason}. Check the connection and call again.") from error


def download_file(
    url: str,
    destination: str | os.PathLike,
    md5: str | None = None,
    *,
    size: int | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``destination``, resuming and verifying; return the final path.

    Parameters
    ----------
    url
        HTTP(S) address.
    destination
        Final file path. A file already there is checked and kept (nothing is downloaded).
    md5
        Expected hex MD5, or ``None`` to skip the check (only where no checksum is published).
    size
        Expected size in bytes, checked when given.
    progress
        Show a tqdm progress bar.
    chunk_size, timeout
        Read size in bytes and socket timeout in seconds.

    Raises
    ------
    DownloadError
        Network failure or interrupted transfer; ``<destination>.part`` is kept, call again to resume.
    ChecksumError
        The completed file has the wrong MD5 or size; the ``.part`` file is deleted.
    """
    destination = Path(destination)
    expected_md5 = md5.lower() if md5 else None
    if destination.exists():
        actual = md5sum(destination) if expected_md5 else None
        if actual != expected_md5:
            raise ChecksumError(
                f"{destination} exists but its MD5 is {actual}, expected {expected_md5}; "
                f"delete it and call again to download a fresh copy."
            )
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0

    response = _open(url, offset, timeout)
    if response is not None:
        with response:
            resumed = offset > 0 and response.status == 206
            if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise DownloadError(
                    f"{url} answered the resume request with the wrong range "
                    f"({response.headers.get('Content-Range')!r}); delete {partial} and call again."
                )
            if not resumed:
                offset = 0  # the server sent the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else size
            received = 0
            with (
                open(partial, "ab" if resumed else "wb") as out,
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=destination.name, disable=not progress, leave=False) as bar,
            ):
                try:
                    while chunk := response.read(chunk_size):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (OSError, HTTPException) as error:
                    raise DownloadError(
                        f"transfer of {url} broke off after {offset + received} bytes ({error}); "
                        f"call again to resume from {partial}."
                    ) from error
            if length is not None and received < int(length):
                raise DownloadError(
                    f"transfer of {url} ended after {offset + received} of {total} bytes; "
                    f"call again to resume from {partial}."
                )

    actual_size = partial.stat().st_size
    if size is not None and actual_size != size:
        if actual_size < size:
            raise DownloadError(f"{partial} has {actual_size} of {size} bytes; call again to resume.")
        partial.unlink()
        raise ChecksumError(f"{url} gave {actual_size} bytes, expected {size}; the partial file was deleted.")
    if expected_md5 is not None:
        actual = md5sum(partial)
        if actual != expected_md5:
            partial.unlink()
            raise ChecksumError(
                f"{url} downloaded with MD5 {actual}, expected {expected_md5}; the file was deleted. "
                f"Call again; if it keeps failing the published file may have changed."
            )
    os.replace(partial, destination)
    return destination


def _member_target(destination: Path, name: str) -> Path:
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"archive member {name!r} would be written outside {destination}; refusing to extract")
    return destination.joinpath(*relative.parts)


def _marker(destination: Path, archive: Path) -> Path:
    return destination / f".{archive.name}.extracted"


def extract_archive(archive: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Unpack a ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz`` archive into ``destination``.

    The archive is unpacked into a temporary folder inside ``destination`` and its top-level entries
    are then renamed into place, and a marker file ``.<archive name>.extracted`` records completion
    (a second call returns at once). Members with absolute paths or ``..`` are refused.

    Raises
    ------
    FileExistsError
        A top-level entry of the archive already exists in ``destination``.
    ValueError
        Unknown archive type, or a member that would escape ``destination``.
    """
    archive, destination = Path(archive), Path(destination)
    marker = _marker(destination, archive)
    if marker.exists():
        return destination
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=destination) as scratch:
        scratch = Path(scratch)
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    _member_target(scratch, name)
                bundle.extractall(scratch)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    _member_target(scratch, member.name)
                    if member.issym() or member.islnk():
                        raise ValueError(f"archive member {member.name!r} is a link; refusing to extract")
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                    bundle.extractall(scratch, filter="data")
                else:
                    bundle.extractall(scratch)
        else:
            raise ValueError(f"{archive} is neither a zip nor a tar archive")
        entries = sorted(scratch.iterdir())
        clashes = [entry.name for entry in entries if (destination / entry.name).exists()]
        if clashes:
            raise FileExistsError(
                f"cannot extract {archive.name}: {', '.join(clashes)} already exist in {destination}; "
                f"delete them to extract again."
            )
        for entry in entries:
            os.replace(entry, destination / entry.name)
    marker.write_text(f"{archive.name}\n")
    return destination


def fetch_and_extract(
    remote: RemoteFile, folder: Path, *, keep_archive: bool = False, progress: bool = True
) -> Path:
    """Download ``remote`` into ``folder`` (resuming, verified) and unpack it there once."""
    archive = folder / remote.filename
    if _marker(folder, archive).exists():
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

    ``normalized`` selects NCT-CRC-HE-100K (Macenko-normalised, used by the seed) rather than
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

    Raises
    ------
    ManualDownloadRequired
        For COVID-19 Radiography, HAM10000 and BreakHis.
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
    known = sorted(set(DATASET_FOLDERS))
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known)}")


__all__ = [
    "CRC_FILES",
    "ChecksumError",
    "DownloadError",
    "ManualDownloadRequired",
    "RemoteFile",
    "download_cifar10",
    "download_crc",
    "download_dataset",
    "download_file",
    "download_imagenette",
    "download_medmnist",
    "download_stl10",
    "extract_archive",
    "fetch_and_extract",
    "instructions",
    "md5sum",
    "medmnist_file",
    "require_manual_download",
]
