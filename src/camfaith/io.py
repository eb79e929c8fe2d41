"""Atomic writes: a result or checkpoint is either complete on disk or absent, never half-written.

The file gets the permissions any new file of the user gets (``0o666`` less the umask), so that the
results of a run on a shared machine are as readable as the user intends.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_safe(value):
    """NaN and infinities become ``null``: JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def save_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    return _write(path, lambda tmp: frame.to_csv(tmp, index=False))


def save_json(obj, path: str | os.PathLike) -> Path:
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=True, default=str)
    return _write(path, lambda tmp: tmp.write_text(text))


def save_torch(obj, path: str | os.PathLike) -> Path:
    return _write(path, lambda tmp: torch.save(obj, tmp))
