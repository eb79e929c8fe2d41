"""The report end to end: every notebook through papermill (via Snakemake) with tiny parameters, then
the Jupyter Book built from those outputs with warnings as errors."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from papermill.exceptions import PapermillExecutionError

from camfaith.pipeline import build_book, run_notebook

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "name": "tiny",
    "device": "cpu",
    "seed": 0,
    "data_root": "",
    "benchmark": "benchmarks/results/latest-cpu.json",
    "faithfulness": {"archs": "resnet18", "input_size": 32, "n_images": 2},
    "defaults": {
        "input_size": 32, "small_input": True, "stages": 3, "variant": "intact", "weights": "",
        "dataset_options": "n_train=96,n_val=48,n_test=48",
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.001, "weight_decay": 0, "scheduler_step": 0,
                  "scheduler_gamma": 0.5, "patience": 0, "trainable_layers": "all", "normal_classes": ""},
        "aopc": {"n_images": 6, "regions": "2", "perturbation": "uniform", "chunk_size": 8, "noise_seeds": 2},
        "max_sensitivity": {"n_images": 6, "radii": "0.1", "samples": "2", "chunk_size": 8, "noise_seeds": 2},
        "haas": {"n_images": 16, "scalings": "centered,unit"},
        "gallery": {"n_images": 2, "n_localisation": 8},
        "sanity": {"n_images": 4, "n_examples": 2},
    },
    "runs": [{"dataset": "synthetic", "arch": "vgg11"}],
    "summary": {"n_resamples": 200},
}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
               "--configfile", str(config), "--cores", "2", "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work


@pytest.mark.slow
def test_pipeline_executes_every_notebook_and_writes_results(tiny_study):
    executed = tiny_study / "results/tiny/notebooks"
    names = {p.name for p in executed.rglob("*.ipynb")}
    assert {"faithfulness.ipynb", "summary.ipynb", "benchmark.ipynb"} <= names
    topics = ("02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery", "08_sanity")
    assert {f"synthetic_vgg11_{t}.ipynb" for t in topics} <= names
    run = tiny_study / "results/tiny/synthetic_vgg11"
    for name in ("best.pt", "last.pt", "report.json", "manifest.csv", "aopc.csv", "aopc_removal.csv",
                 "max_sensitivity.csv", "haas.csv", "localisation.csv", "sanity.csv", "identity.csv"):
        assert (run / name).exists(), name
    # the chapter title names its run
    train = nbformat.read(executed / "results/synthetic_vgg11_02_train.ipynb", as_version=4)
    assert train.cells[0].source.startswith("# Training: synthetic_vgg11")


@pytest.mark.slow
def test_rerun_does_nothing_when_everything_is_up_to_date(tiny_study):
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tiny_study),
               "--configfile", str(tiny_study / "tiny.yaml"), "--cores", "1", "-n"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def words(page: Path) -> str:
    """The text of an HTML page, tags removed and white space folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", page.read_text()).split())


def glued(notebook: Path) -> dict:
    executed = nbformat.read(notebook, as_version=4)
    return {o["metadata"]["scrapbook"]["name"]: o["data"] for c in executed.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}


@pytest.fixture(scope="module")
def book_copy(tmp_path_factory):
    """The book's sources without its generated pages, as a fresh clone has them."""
    book = tmp_path_factory.mktemp("book")
    shutil.copytree(ROOT / "book", book / "book", ignore=shutil.ignore_patterns("generated", "_build"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, book / name)
    return book


@pytest.mark.slow
def test_book_builds_without_warnings_from_the_executed_notebooks(tiny_study, book_copy):
    html = build_book(tiny_study / "results/tiny/notebooks", book_copy)
    theory = (html / "book/theory.html").read_text()
    summary = (html / "book/summary.html").read_text()
    assert glued(tiny_study / "results/tiny/notebooks/summary.ipynb")["summary_n_runs"][
        "application/papermill.record/text/plain"] == "1"
    assert "prop-hirescam-flatten" in theory and "mathjax" in theory.lower()
    assert "summary_n_runs" not in summary and "{glue" not in summary  # every glue reference resolved
    assert "https://cdn" not in theory
    assert "Over the 1 runs" in words(html / "book/summary.html") and 'pasted-text">tiny<' in summary


@pytest.mark.slow
def test_a_second_configuration_replaces_every_number_of_the_first(tiny_study, book_copy, tmp_path):
    """The same book folder, rebuilt after another configuration (two runs), shows only the second one."""
    test_book_builds_without_warnings_from_the_executed_notebooks(tiny_study, book_copy)
    second = tmp_path / "results/second"
    shutil.copytree(tiny_study / "results/tiny", second)
    shutil.copytree(second / "synthetic_vgg11", second / "synthetic_vgg11_again")
    run_notebook(ROOT / "notebooks/07_summary.py", second / "notebooks/summary.ipynb",
                 {"results_dir": str(second), "runs": "synthetic_vgg11,synthetic_vgg11_again",
                  "configuration": "second", "n_resamples": 50})
    html = build_book(second / "notebooks", book_copy)
    for page in ("book/summary.html", "book/intro.html"):
        text = (html / page).read_text()
        assert 'pasted-text">second<' in text and 'pasted-text">tiny<' not in text, page
    assert "Over the 2 runs" in words(html / "book/summary.html")


def test_train_seeds_replicate_a_run_with_other_training_seeds(tmp_path):
    config = tmp_path / "replicated.yaml"
    config.write_text(yaml.safe_dump(TINY | {"runs": [{"dataset": "synthetic", "arch": "vgg11", "train_seeds": 3}]}))
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config), "--cores", "1", "-n", "-p"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    for name, seed in (("synthetic_vgg11", 0), ("synthetic_vgg11_t2", 1), ("synthetic_vgg11_t3", 2)):
        assert f"results/tiny/{name}/report.json" in log
        assert f"-p train_seed={seed} " in log and "-p replicate_of='\"synthetic_vgg11\"'" in log


@pytest.mark.parametrize("notebook, parameters, message", [
    ("02_train", {"dataset": "mnist"}, "dataset='mnist' is not known"),
    ("02_train", {"arch": "alexnet"}, "arch='alexnet' is not known"),
    ("03_aopc", {"n_images": "many"}, "n_images must be a positive integer"),
    ("03_aopc", {"run_dir": "nowhere"}, "not a run folder yet"),
])
def test_bad_parameters_fail_in_the_first_cell_with_a_clear_message(tmp_path, notebook, parameters, message):
    with pytest.raises(PapermillExecutionError, match=message):
        run_notebook(ROOT / f"notebooks/{notebook}.py", tmp_path / "out.ipynb", parameters)
    assert not (tmp_path / "out.ipynb").exists()
