import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The staged real data (``$CAMFAITH_DATA``, else ``./data``): fails under CI when missing, else skips."""
    root = Path(os.environ.get("CAMFAITH_DATA", "data"))
    if not root.is_dir() or not any(root.iterdir()):
        message = f"real data not found at {root.resolve()}; set CAMFAITH_DATA to the staged data folder"
        if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
            pytest.fail(message)
        pytest.skip(message)
    return root
