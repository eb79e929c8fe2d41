"""Exercises and student copies (make student): every exercise labelled and defined once, no solution
left in a student copy, the teacher copy run end to end, and the autograder checks failing on the
placeholders and passing on the solutions."""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from camfaith.pipeline import run_notebook
from camfaith.student import EXERCISE_NOTEBOOKS, generate, nbgrader_source

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {name: ROOT / f"notebooks/{name}.py" for name in EXERCISE_NOTEBOOKS}
PAGES = [ROOT / "book/theory.md", ROOT / "book/metrics.md"]
# the exercises' chapter at its smallest: one map per level of the hierarchy (Score-CAM passes once per channel)
TINY_FAITHFULNESS = {"archs": "resnet18", "input_size": 32, "n_images": 2,
                     "methods": ["gradcam", "hirescam", "xgradcam"]}
LABEL = re.compile(r"^(?:# )?:label: (ex-\S+)", re.MULTILINE)


def exercise_labels() -> list[str]:
    """Every exercise label of the book's pages and notebooks, in order (with repeats, if any)."""
    labels = []
    for path in [*PAGES, *SOURCES.values()]:
        for block in re.split(r"\{exercise\}", path.read_text())[1:]:
            labels += LABEL.findall(block)[:1]
    return labels


def test_at_least_twelve_labelled_exercises_of_three_kinds():
    labels = exercise_labels()
    assert len(labels) >= 12 and len(set(labels)) == len(labels), labels
    assert all(re.fullmatch(r"ex-[a-z]+-[a-z0-9-]+", label) for label in labels), labels
    text = "".join(path.read_text() for path in [*PAGES, *SOURCES.values()])
    assert text.count("*Predict, then run.*") >= 3 and text.count("*Modify and re-run.*") >= 3
    referenced = set(re.findall(r"\{(?:ref|solution(?:-start)?)\}`?\s*(ex-[a-z0-9-]+)", text))
    assert referenced <= set(labels), referenced - set(labels)  # every solution and reference has its exercise


def assigned(code: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Store)}


def solution_parts(cell) -> tuple[str, str]:
    """(the code between the solution markers, the rest of the cell)."""
    inside, parts = False, ([], [])
    for line in cell.source.splitlines():
        if line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
            inside = line.strip() == "### BEGIN SOLUTION"
        else:
            parts[0 if inside else 1].append(line)
    return "\n".join(parts[0]), "\n".join(parts[1])


@pytest.mark.parametrize("name", EXERCISE_NOTEBOOKS)
def test_every_check_needs_a_value_only_the_solution_computes(name):
    """So each autograder cell fails while the student's placeholder stands (NameError), whatever the rest."""
    notebook = nbgrader_source(SOURCES[name])
    roles = [(cell, cell.metadata.get("nbgrader", {})) for cell in notebook.cells]
    solutions = [solution_parts(cell) for cell, meta in roles if meta.get("solution") and cell.cell_type == "code"]
    checks = [cell for cell, meta in roles if meta.get("grade") and cell.cell_type == "code"]
    assert solutions and len(checks) == len(solutions)
    elsewhere = set().union(*(assigned(cell.source) for cell, meta in roles
                              if cell.cell_type == "code" and not meta.get("solution")))
    elsewhere |= set().union(*(assigned(rest) for _, rest in solutions))
    only_in_solutions = set().union(*(assigned(code) for code, _ in solutions)) - elsewhere
    for check in checks:
        loaded = {node.id for node in ast.walk(ast.parse(check.source)) if isinstance(node, ast.Name)}
        assert loaded & only_in_solutions, check.source


def test_solution_code_without_markers_is_refused(tmp_path):
    source = tmp_path / "exercise.py"
    source.write_text("# %% [markdown]\n# ```{solution-start} ex-test-leak\n# ```\n\n"
                      "# %%\nanswer = 42\n\n# %% [markdown]\n# ```{solution-end}\n# ```\n")
    with pytest.raises(ValueError, match="ex-test-leak.*BEGIN SOLUTION"):
        nbgrader_source(source)


def secret_lines(path: Path) -> set[str]:
    """Read straight from the jupytext text: the lines only solutions hold (code between the markers, prose
    between the gated directives or in a solution directive)."""
    hidden, shown = set(), set()
    gated = False
    parts = re.split(r"^(# %%.*)$", path.read_text(), flags=re.MULTILINE)
    for header, cell in zip(["# %% preamble", *parts[1::2]], parts[::2]):
        if "{solution-start}" in cell or "{solution-end}" in cell:
            gated = "{solution-start}" in cell
            continue
        prose = "[markdown]" in header and (gated or "{solution}" in cell)
        inside = False
        for raw in cell.splitlines():
            line = raw.removeprefix("#").strip()
            if raw.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
                inside = raw.strip() == "### BEGIN SOLUTION"
            elif line:
                (hidden if inside or prose else shown).update({line, raw.strip()})
    return hidden - shown


@pytest.fixture(scope="module")
def student_copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "copies"
    archive = generate(out)
    return out, archive


@pytest.mark.slow
def test_no_solution_survives_in_the_student_copies(student_copies):
    out, archive = student_copies
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(f"{name}.ipynb" for name in EXERCISE_NOTEBOOKS)
    for name in EXERCISE_NOTEBOOKS:
        student = nbformat.read(out / f"{name}.ipynb", as_version=4)
        text = "\n".join(cell.source for cell in student.cells)
        lines = {line.strip() for line in text.splitlines()}
        assert not secret_lines(SOURCES[name]) & lines, name
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "{solution", "solution-start"):
            assert marker not in text, (name, marker)
        assert not any(cell.get("outputs") for cell in student.cells if cell.cell_type == "code")
        solutions = [cell for cell in student.cells if cell.metadata.get("nbgrader", {}).get("solution")]
        assert solutions and all("raise NotImplementedError()" in cell.source or cell.source == "YOUR ANSWER HERE"
                                 for cell in solutions)
        checks = [cell for cell in student.cells if cell.metadata.get("nbgrader", {}).get("grade")
                  and cell.cell_type == "code"]
        assert checks and all(cell.metadata.get("editable") is False for cell in checks)


def check_errors(notebook) -> list[bool]:
    """For each autograder cell of an executed notebook: did it raise?"""
    return [any(output.get("output_type") == "error" for output in cell.get("outputs", []))
            for cell in notebook.cells if "autograder" in cell.metadata.get("tags", [])]


@pytest.mark.slow
def test_checks_pass_on_the_solutions_and_fail_on_the_placeholders(student_copies, tmp_path):
    teacher = run_notebook(SOURCES["01_faithfulness"], tmp_path / "teacher.ipynb", TINY_FAITHFULNESS, cwd=tmp_path)
    ran = nbformat.read(teacher, as_version=4)
    assert check_errors(ran) and not any(check_errors(ran))  # papermill stops at an error; all checks ran
    student = nbformat.read(student_copies[0] / "01_faithfulness.ipynb", as_version=4)
    after = next(i for i, cell in enumerate(student.cells) if "parameters" in cell.metadata.get("tags", [])) + 1
    student.cells.insert(after, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in
                                                                      TINY_FAITHFULNESS.items())))
    NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert check_errors(student) and all(check_errors(student))
    placeholders = [cell for cell in student.cells if "raise NotImplementedError()" in cell.source]
    assert placeholders and all(output.get("ename") == "NotImplementedError"
                                for cell in placeholders for output in cell.outputs if output.output_type == "error")
