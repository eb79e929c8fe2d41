"""Dataset downloads: checksummed and resumable where a public link exists, instructions elsewhere.

- :mod:`~camfaith.data.download.http`: one file over HTTP(S), resumed and verified (:func:`download_file`);
- :mod:`~camfaith.data.download.archives`: safe, once-only unpacking (:func:`extract_archive`);
- :mod:`~camfaith.data.download.catalogue`: every dataset's source, layout, size, licence and its
  ``download_*`` function, or the manual steps (:func:`instructions`).

From a shell: ``python -m camfaith.data.download NAME [--root DIR]``; ``--list`` lists the datasets.
"""

from camfaith.data.download.archives import extract_archive, extraction_marker
from camfaith.data.download.catalogue import (
    CATALOGUE,
    CIFAR10_FILE,
    CRC_FILES,
    DATASET_FOLDERS,
    IMAGENETTE_FILES,
    MANUAL_DATASETS,
    MEDMNIST_MD5,
    STL10_FILE,
    DatasetInfo,
    ManualDownloadRequired,
    RemoteFile,
    dataset_info,
    download_cifar10,
    download_command,
    download_crc,
    download_dataset,
    download_imagenette,
    download_medmnist,
    download_stl10,
    fetch_and_extract,
    instructions,
    medmnist_file,
    require_manual_download,
)
from camfaith.data.download.http import ChecksumError, DownloadError, download_file, md5sum

__all__ = [
    "CATALOGUE",
    "CIFAR10_FILE",
    "CRC_FILES",
    "DATASET_FOLDERS",
    "IMAGENETTE_FILES",
    "MANUAL_DATASETS",
    "MEDMNIST_MD5",
    "STL10_FILE",
    "ChecksumError",
    "DatasetInfo",
    "DownloadError",
    "ManualDownloadRequired",
    "RemoteFile",
    "dataset_info",
    "download_cifar10",
    "download_command",
    "download_crc",
    "download_dataset",
    "download_file",
    "download_imagenette",
    "download_medmnist",
    "download_stl10",
    "extract_archive",
    "extraction_marker",
    "fetch_and_extract",
    "instructions",
    "md5sum",
    "medmnist_file",
    "require_manual_download",
]
