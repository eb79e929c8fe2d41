"""Safe unpacking of zip and tar archives, recorded by a marker file so that it happens once.

:func:`extract_archive` unpacks into a scratch folder inside the target, refuses members that would
land outside it (absolute paths, ``..``, links), then renames the top-level entries into place and
writes the marker ``.<archive name>.extracted``.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath


def extraction_marker(destination: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """The file whose presence says that ``archive`` has been unpacked into ``destination``."""
    return Path(destination) / f".{Path(archive).name}.extracted"


def _member_target(destination: Path, name: str) -> Path:
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"archive member {name!r} would be written outside {destination}; refusing to extract")
    return destination.joinpath(*relative.parts)


def _unpack(archive: Path, scratch: Path) -> None:
    """Unpack every member of ``archive`` into ``scratch`` after checking all of them."""
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
    marker = extraction_marker(destination, archive)
    if marker.exists():
        return destination
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=destination) as scratch:
        scratch = Path(scratch)
        _unpack(archive, scratch)
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


__all__ = ["extract_archive", "extraction_marker"]
