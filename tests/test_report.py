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

from camfaith.pipeline import _parameter, build_book, run_notebook

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The tiny study (tiny_config, tiny_study), its built book (tiny_book) and a copy of the book's sources
# (book_copy) are fixtures of conftest.py, shared with test_browser.py: one Snakemake run and one book
# build per session.


@pytest.mark.slow
def test_pipeline_executes_every_notebook_and_writes_results(tiny_study):
    executed = tiny_study / "results/tiny/notebooks"
    names = {p.name for p in executed.rglob("*.ipynb")}
    assert {"faithfulness.ipynb", "summary.ipynb", "benchmark.ipynb"} <= names
    topics = ("02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery", "08_sanity", "09_family",
          "10_reliability")
    assert {f"synthetic_vgg11_{t}.ipynb" for t in topics} <= names
    run = tiny_study / "results/tiny/synthetic_vgg11"
    for name in ("best.pt", "last.pt", "report.json", "manifest.csv", "aopc.csv", "aopc_removal.csv",
                 "max_sensitivity.csv", "haas.csv", "localisation.csv", "sanity.csv", "identity.csv",
                 "family_aopc.csv", "feature_deletion.csv", "family_stages.csv", "reliability.csv", "multiverse.csv"):
        assert (run / name).exists(), name
    # the chapter title names its run
    train = nbformat.read(executed / "results/synthetic_vgg11_02_train.ipynb", as_version=4)
    assert train.cells[0].source.startswith("# Training: synthetic_vgg11")


@pytest.mark.slow
def test_the_summary_names_the_choice_that_flips_each_multiverse_verdict(tiny_study):
    """The summary's line per metric agrees with the run's own multiverse; metrics without one stay blank."""
    from camfaith.endpoints import ENDPOINTS
    from camfaith.multiverse import primary_specification, robustness
    from camfaith.runs import Run
    from camfaith.summary import reliability_table

    run = Run.open(tiny_study / "results/tiny/synthetic_vgg11")
    table = reliability_table([run]).set_index("metric")
    for metric, part in run.scores("multiverse").groupby("metric"):
        held, flips = robustness(part.dropna(axis=1, how="all"), primary_specification(metric))
        worst = flips.loc[flips["flipped"].idxmax()]
        expected = "no choice" if worst["flipped"] == 0 else \
            f"{worst['choice']} = {worst['value']} ({worst['flipped']:.0%})"
        assert table.loc[ENDPOINTS[metric].label, "flipped most by"] == expected
        assert table.loc[ENDPOINTS[metric].label, "specifications agreeing"] == held["agree"]
    assert table.loc[ENDPOINTS["feature_deletion"].label, "flipped most by"] == ""


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


# Citations of glued values: the roles {glue:text}`doc::key:format` (the doc optional) and the directives
# ```{glue:figure} key, whose doc may come as a :doc: option on the lines that follow
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`(?:([^`]+?)::)?(\w+)[^`]*`")
GLUE_DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::\w+)?\}[ \t]+(?:(\S+?)::)?(\w+)[ \t]*\n((?:[ \t]*:\w+:.*\n)*)", re.M)


def citations(text: str, doc: str | None) -> set[tuple[str | None, str]]:
    """The (document, key) pairs that ``text`` cites; a citation without a document is one of ``doc``."""
    found = {(cited or doc, key) for cited, key in GLUE_ROLE.findall(text)}
    for cited, key, options in GLUE_DIRECTIVE.findall(text):
        option = re.search(r":doc:\s*(\S+)", options)
        found.add((option.group(1) if option else cited or doc, key))
    return {(name.removesuffix(".ipynb") if name else name, key) for name, key in found}


@pytest.mark.slow
def test_every_glued_value_is_cited_and_every_cited_value_is_glued(tiny_study):
    """A value is glued only where prose cites it (the chapter's own text or a page of the book), and every
    citation finds its value, in the documents the book gets from the executed notebooks."""
    executed = tiny_study / "results/tiny/notebooks"
    glued_keys, cited = set(), set()
    for path in executed.rglob("*.ipynb"):
        doc = "generated/" + path.relative_to(executed).with_suffix("").as_posix()
        glued_keys |= {(doc, key) for key in glued(path)}
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                cited |= citations(cell.source, doc)
    for page in (ROOT / "book").glob("*.md"):
        cited |= citations(page.read_text(), None)
    documents = {doc for doc, _ in glued_keys}
    assert len(documents) > 10 and not sorted(glued_keys - cited), sorted(glued_keys - cited)
    assert not sorted(pair for pair in cited - glued_keys if pair[0] in documents or pair[0] is None)


@pytest.mark.slow
def test_book_builds_without_warnings_from_the_executed_notebooks(tiny_study, tiny_book):
    html = tiny_book
    theory = (html / "book/theory.html").read_text()
    summary = (html / "book/summary.html").read_text()
    assert glued(tiny_study / "results/tiny/notebooks/summary.ipynb")["summary_n_runs"][
        "application/papermill.record/text/plain"] == "1"
    assert "prop-hirescam-flatten" in theory and "mathjax" in theory.lower()
    assert "summary_n_runs" not in summary and "{glue" not in summary  # every glue reference resolved
    assert "https://cdn" not in theory
    assert "runs: 1 , networks: 1" in words(html / "book/summary.html") and 'pasted-text">tiny<' in summary


@pytest.mark.slow
def test_a_second_configuration_replaces_every_number_of_the_first(tiny_study, book_copy, tmp_path):
    """The same book folder, rebuilt after another configuration (two runs), shows only the second one."""
    first = build_book(tiny_study / "results/tiny/notebooks", book_copy)
    test_book_builds_without_warnings_from_the_executed_notebooks(tiny_study, first)
    second = tmp_path / "results/second"
    shutil.copytree(tiny_study / "results/tiny", second)
    shutil.copytree(second / "synthetic_vgg11", second / "synthetic_vgg11_again")
    run_notebook(ROOT / "notebooks/07_summary.py", second / "notebooks/summary.ipynb",
                 {"results_dir": str(second), "runs": "synthetic_vgg11,synthetic_vgg11_again",
                  "configuration": "second"})
    html = build_book(second / "notebooks", book_copy)
    for page in ("book/summary.html", "book/intro.html"):
        text = (html / page).read_text()
        assert 'pasted-text">second<' in text and 'pasted-text">tiny<' not in text, page
    assert "runs: 2 , networks: 1" in words(html / "book/summary.html")


def test_train_seeds_replicate_a_run_with_other_training_seeds(tmp_path, tiny_config):
    config = tmp_path / "replicated.yaml"
    replicated = tiny_config | {"runs": [{"dataset": "synthetic", "arch": "vgg11", "train_seeds": 3}]}
    config.write_text(yaml.safe_dump(replicated))
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
    ("01_faithfulness", {"methods": ["gradcm"]}, "method='gradcm' is not known"),
    ("02_train", {"dataset": "mnist"}, "dataset='mnist' is not known"),
    ("02_train", {"arch": "alexnet"}, "arch='alexnet' is not known"),
    ("03_aopc", {"n_images": "many"}, "n_images must be a positive integer"),
    ("03_aopc", {"run_dir": "nowhere"}, "not a run folder yet"),
])
def test_bad_parameters_fail_in_the_first_cell_with_a_clear_message(tmp_path, notebook, parameters, message):
    with pytest.raises(PapermillExecutionError, match=message):
        run_notebook(ROOT / f"notebooks/{notebook}.py", tmp_path / "out.ipynb", parameters)
    assert not (tmp_path / "out.ipynb").exists()


@pytest.mark.parametrize("argument, value", [("lr=1e-05", 1e-05), ("regions=[4, 8]", [4, 8]), ("name=tiny", "tiny"),
                                              ("methods=", ""), ("flag=true", True)])
def test_a_command_line_parameter_keeps_its_type(argument, value):
    """The Snakefile passes each parameter as JSON; 1e-05 must reach the notebook as a float (YAML reads a string)."""
    name, parsed = _parameter(argument)
    assert name == argument.partition("=")[0] and parsed == value and type(parsed) is type(value)


def test_a_notebook_hashes_strings_the_same_on_every_run(tmp_path):
    """The kernel's hash seed is fixed, so a figure drawn in the order of a set of names is the same each run."""
    source = tmp_path / "hashes.py"
    source.write_text('# %%\nprint(hash("HiResCAM"))\n')
    printed = []
    for number in range(2):
        executed = run_notebook(source, tmp_path / f"run{number}.ipynb", cwd=tmp_path)
        printed.append(nbformat.read(executed, as_version=4).cells[0].outputs[0]["text"])
    assert printed[0] == printed[1]
