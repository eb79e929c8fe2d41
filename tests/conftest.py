import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from camfaith.pipeline import build_book

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: the smallest study that runs every notebook: one synthetic run, one epoch, a handful of images
TINY = {
    "name": "tiny",
    "device": "cpu",
    "seed": 0,
    "data_root": "",
    "benchmark": "benchmarks/results/latest-cpu.json",
    "faithfulness": {"archs": ["resnet18"], "input_size": 32, "n_images": 2},
    "defaults": {
        "input_size": 32, "small_input": True, "stages": 3, "variant": "intact", "weights": "",
        "dataset_options": {"n_train": 96, "n_val": 48, "n_test": 48},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.001, "weight_decay": 0, "scheduler_step": 0,
                  "scheduler_gamma": 0.5, "patience": 0, "trainable_layers": "all", "normal_classes": []},
        "aopc": {"n_images": 6, "regions": [2], "perturbation": "uniform", "chunk_size": 8, "noise_seeds": 2},
        "max_sensitivity": {"n_images": 6, "radii": [0.1], "samples": [2], "chunk_size": 8, "noise_seeds": 2},
        "haas": {"n_images": 16, "scalings": ["centered", "unit"]},
        "gallery": {"n_images": 2, "n_localisation": 8},
        "family": {"n_images": 4, "regions": [2], "perturbation": "uniform", "chunk_size": 64, "n_gallery": 1,
                   "methods": [], "gap_stages": True},
        "reliability": {"n_images": 6, "regions": [2], "perturbations": ["uniform", 0.0], "radii": [0.1],
                        "samples": [2], "n_perturbations": 1, "chunk_size": 64},
        "sanity": {"n_images": 4, "n_examples": 2},
    },
    "runs": [{"dataset": "synthetic", "arch": "vgg11"}],
    "summary": {"primary": {}},
}


def in_ci() -> bool:
    """Whether the tests run under CI (``$CI`` set), where a missing resource fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The staged real data (``$CAMFAITH_DATA``, else ``./data``): fails under CI when missing, else skips."""
    root = Path(os.environ.get("CAMFAITH_DATA", "data"))
    if not root.is_dir() or not any(root.iterdir()):
        message = f"real data not found at {root.resolve()}; set CAMFAITH_DATA to the staged data folder"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """The configuration of the tiny study (a copy: a test may vary it)."""
    return yaml.safe_load(yaml.safe_dump(TINY))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The tiny study run once by Snakemake (every notebook through papermill), shared by all test modules."""
    work = tmp_path_factory.mktemp("study")
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
               "--configfile", str(config), "--cores", "2", "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work


def copy_book_sources(folder: Path) -> Path:
    """The book's sources without its generated pages, as a fresh clone has them, copied into ``folder``."""
    shutil.copytree(ROOT / "book", folder / "book", ignore=shutil.ignore_patterns("generated", "_build"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def book_copy(tmp_path_factory) -> Path:
    """The book's sources without its generated pages, as a fresh clone has them (a folder to build in)."""
    return copy_book_sources(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def tiny_book(tiny_study, tmp_path_factory) -> Path:
    """The HTML folder of the book built (warnings as errors) from the tiny study, built once per session."""
    book = copy_book_sources(tmp_path_factory.mktemp("tiny_book"))
    return build_book(tiny_study / "results/tiny/notebooks", book)
