"""One file over HTTP(S): resumed when interrupted, verified before it gets its final name.

:func:`download_file` fetches a URL into ``<file>.part`` (continuing a partial file with an HTTP
``Range`` request), checks its size and MD5 and only then renames it, so a file under its final
name is always complete.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

USER_AGENT = "camfaith-data/0.1"


class DownloadError(RuntimeError):
    """A transfer failed; a partial ``.part`` file is kept so that the next call resumes it."""


class ChecksumError(DownloadError):
    """A downloaded file does not match its published checksum."""


def md5sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout: float):
    """The response to a GET of ``url`` from byte ``offset`` on, or ``None`` if nothing is left."""
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


def _receive(response, url: str, partial: Path, offset: int, size: int | None, progress: bool,
             chunk_size: int) -> None:
    """Append the body of ``response`` to ``partial`` (or rewrite it when the server ignored the range)."""
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
             desc=partial.name.removesuffix(".part"), disable=not progress, leave=False) as bar,
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


def _verify(partial: Path, url: str, size: int | None, expected_md5: str | None) -> None:
    """Check the finished ``partial`` file; delete it when it can never become right."""
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
            _receive(response, url, partial, offset, size, progress, chunk_size)
    _verify(partial, url, size, expected_md5)
    os.replace(partial, destination)
    return destination


__all__ = ["USER_AGENT", "ChecksumError", "DownloadError", "download_file", "md5sum"]
