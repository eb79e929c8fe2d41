"""``make lab``: JupyterLab opens the chapters (jupytext percent scripts) as notebooks and saves them as scripts.

The server is started by the Makefile's own target, headless, on a free port with a token, in a temporary folder
that holds a copy of one chapter; the test talks to it through Jupyter's REST contents API, as the browser does.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
CHAPTER = "notebooks/03_aopc.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """A running ``make lab`` server and a small client for its REST API."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.token = folder, free_port(), secrets.token_hex(16)
        options = (f"--no-browser --allow-root --ServerApp.ip=127.0.0.1 --port={self.port} "
                   f"--ServerApp.port_retries=0 --IdentityProvider.token={self.token}")
        # the Makefile of the repository, run in the temporary folder with this venv; -o: never reinstall it
        command = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(folder),
                   f"VENV={VENV}", "-o", f"{VENV}/.installed", "lab", f"LAB_ARGS={options}"]
        env = os.environ | {"JUPYTER_RUNTIME_DIR": str(folder / "runtime"), "JUPYTER_CONFIG_DIR": str(folder / "user")}
        self.log = (folder / "lab.log").open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def request(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as response:
            text = response.read()
            return json.loads(text) if text else None

    def wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make lab exited with {self.process.returncode}:\n{self.output()}")
            try:
                self.request("GET", "api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.folder / "lab.log").read_text()[-4000:]

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.request("POST", "api/shutdown")
                self.process.wait(timeout=20)
        except (urllib.error.URLError, ConnectionError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.process.poll() is None:  # the whole group: make, its shell and the server
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    (folder / "notebooks").mkdir()
    shutil.copy(ROOT / CHAPTER, folder / CHAPTER)
    server = Lab(folder)
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_make_lab_opens_a_chapter_as_a_notebook_and_saves_it_as_a_script(lab):
    original = (lab.folder / CHAPTER).read_text()
    model = lab.request("GET", f"api/contents/{CHAPTER}?type=notebook&content=1")
    assert model["type"] == "notebook" and model["name"] == "03_aopc.py"
    cells = model["content"]["cells"]
    # the cells of the script, in its order: the title first, the parameters cell where the script has it
    expected = jupytext.reads(original, fmt="py:percent").cells
    assert [(c["cell_type"], c["source"]) for c in cells] == [(c.cell_type, c.source) for c in expected]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# AOPC")
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code" and "run_dir = " in tagged[0]["source"]

    # saved unchanged, the script keeps every line; jupytext only stamps its version into the header
    lab.request("PUT", f"api/contents/{CHAPTER}", {"type": "notebook", "format": "json", "content": model["content"]})
    saved = (lab.folder / CHAPTER).read_text().splitlines()
    stamps = [line for line in saved if line.startswith(("#       format_version:", "#       jupytext_version:"))]
    assert [line for line in saved if line not in stamps] == original.splitlines() and len(stamps) <= 2

    # an edit saved under a new name is a percent script too, with the edit in it
    edited = model["content"] | {"cells": cells + [{"cell_type": "markdown", "metadata": {},
                                                    "source": "A note added in JupyterLab."}]}
    saved = lab.request("PUT", "api/contents/notebooks/03_aopc_copy.py",
                        {"type": "notebook", "format": "json", "content": edited})
    assert saved["type"] == "notebook"
    copy = (lab.folder / "notebooks/03_aopc_copy.py").read_text()
    assert copy.startswith("# ---\n# jupyter:")
    assert copy.rstrip().endswith("# %% [markdown]\n# A note added in JupyterLab.")
    assert not list(lab.folder.rglob("*.ipynb"))


@pytest.mark.slow
def test_make_lab_opens_scripts_as_notebooks_on_a_double_click(lab):
    """The lab setting of ``make lab`` (not the user's own settings) makes jupytext's editor the default for .py."""
    plugin = lab.request("GET", "lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert plugin["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"
    assert "defaultViewers" not in plugin["settings"]
