"""Student copies of the report's notebooks: solutions removed, placeholders and autograder cells kept.

The notebooks in ``notebooks/`` are the teacher copies: the book runs their solutions, so a solution
cannot rot. Their exercise cells follow the conventions of nbgrader (https://nbgrader.readthedocs.io):

- a code cell with its solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is a
  solution cell; nbgrader replaces that part by ``raise NotImplementedError()`` and keeps the rest of
  the cell (the lines that name what to compute, and the prints that use it);
- a code cell tagged ``autograder`` checks a value the student computes; it stays, locked, and fails
  until the student's code defines that value correctly;
- prose solutions, between the book's gated ``solution-start`` and ``solution-end`` directives or in a
  ``solution`` directive, become answer cells ("YOUR ANSWER HERE"); the directive cells themselves go.

:func:`nbgrader_source` turns a jupytext notebook into the ``.ipynb`` that nbgrader reads, with cell
metadata from these conventions. :func:`generate` runs ``nbgrader generate_assignment`` on all of
them and collects the student copies and a zip (``make student``); it refuses a copy in which a line
of a solution survives (:func:`leaked_lines`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

__all__ = ["EXERCISE_NOTEBOOKS", "generate", "leaked_lines", "nbgrader_source", "solution_lines"]

#: the notebooks with exercises, in the order of the book
EXERCISE_NOTEBOOKS = ("01_faithfulness", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery")

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
AUTOGRADER = "autograder"
_GATE = re.compile(r"^[`:]{3,}\{solution-(start|end)\}[ \t]*(\S*)", re.MULTILINE)
_SOLUTION = re.compile(r"^[`:]{3,}\{solution\}[ \t]+(\S+)", re.MULTILINE)
_LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
_EXERCISE = re.compile(r"^([`:]{3,})\{exercise\}[ \t]*(.*)\n:label:[ \t]*(\S+)\n(.*?)^\1[ \t]*$",
                       re.MULTILINE | re.DOTALL)
_ROLE = re.compile(r"\{[a-z:-]+\}`([^`]+)`")


def _metadata(grade_id: str, *, solution: bool, grade: bool) -> dict:
    """nbgrader's cell metadata (schema 3): solution cells are editable, test cells locked and worth a point."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3, "solution": solution}
    return meta | ({"points": 1} if grade else {})


def _plain(source: str) -> str:
    """Markdown for Jupyter: an ``exercise`` directive as a bold heading, MyST roles as code spans."""
    source = _EXERCISE.sub(lambda m: f"**Exercise {m.group(3)}: {m.group(2).strip()}**\n\n{m.group(4).strip()}\n",
                           source)
    return _ROLE.sub(r"`\1`", source)


def nbgrader_source(path: str | os.PathLike) -> nbformat.NotebookNode:
    """The jupytext notebook at ``path`` as nbgrader's source notebook (see the module docstring).

    Each exercise cell gets a ``grade_id`` from the label of its exercise (``ex-...``) and its role:
    ``<label>-solution``, ``<label>-answer`` or ``<label>-check``, numbered when there are several.
    Raises ``ValueError`` for a code cell inside a gated solution without solution markers, whose
    code would otherwise reach the student copy.
    """
    import jupytext

    notebook = jupytext.read(path)
    notebook.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}
    cells, label, gated, used = [], None, False, set()

    def grade_id(role: str) -> str:
        base = f"{label or Path(path).stem}-{role}"
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{base}{number}"
        used.add(name)
        return name

    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            gate = _GATE.search(cell.source)
            if gate:  # the book's markers of a folded solution: not for the student
                gated = gate.group(1) == "start"
                label = gate.group(2) or label
                continue
            found = _SOLUTION.search(cell.source) or _LABEL.search(cell.source)
            label = found.group(1) if found else label
            if gated or _SOLUTION.search(cell.source):
                cell.metadata["nbgrader"] = _metadata(grade_id("answer"), solution=True, grade=True)
            else:
                cell.source = _plain(cell.source)
        elif cell.cell_type == "code":
            if BEGIN in cell.source:
                cell.metadata["nbgrader"] = _metadata(grade_id("solution"), solution=True, grade=False)
            elif AUTOGRADER in cell.metadata.get("tags", []):
                cell.metadata["nbgrader"] = _metadata(grade_id("check"), solution=False, grade=True)
            elif gated:
                raise ValueError(f"{path}: a code cell in the solution of {label} has no {BEGIN!r} marker, so its "
                                 f"code would reach the student copy; mark the solution lines:\n{cell.source}")
        cells.append(cell)
    if gated:
        raise ValueError(f"{path}: the solution of {label} has no solution-end directive")
    notebook.cells = cells
    return notebook


def solution_lines(notebook: nbformat.NotebookNode) -> set[str]:
    """The lines of a teacher notebook that only its solutions hold (stripped, blank lines left out)."""
    hidden, shown = set(), set()
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        inside = False
        for line in cell.source.splitlines():
            text = line.strip()
            if text in (BEGIN, END):
                inside = text == BEGIN
            elif text:
                secret = (meta.get("solution") and cell.cell_type == "markdown") or inside
                (hidden if secret else shown).add(text)
    return hidden - shown


def leaked_lines(teacher: nbformat.NotebookNode, student: nbformat.NotebookNode) -> list[str]:
    """Lines of the teacher's solutions (and solution markers) that appear in the student copy."""
    secret = solution_lines(teacher) | {BEGIN, END}
    text = {line.strip() for cell in student.cells for line in cell.source.splitlines()}
    return sorted(secret & text)


def _generate_assignment(course: Path, assignment: str) -> None:
    """``nbgrader generate_assignment``: clears solutions and outputs, locks the checks, adds checksums."""
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "nbgrader"), "generate_assignment", assignment, f"--CourseDirectory.root={course}",
               "--force", "--no-db", "--log-level=WARN"]
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(command, cwd=course, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{(result.stdout + result.stderr)[-4000:]}")


def generate(out: str | os.PathLike = "_build/student", notebooks: list[str | os.PathLike] | None = None,
             assignment: str = "camfaith") -> Path:
    """Write the student copies of ``notebooks`` (by default :data:`EXERCISE_NOTEBOOKS`) into ``out``.

    ``out`` is replaced by the ``.ipynb`` student copies and ``<assignment>.zip`` holding them. Raises
    ``RuntimeError`` when a line of a solution survives in a copy. Returns the zip.
    """
    root = Path(__file__).resolve().parents[2]
    paths = [Path(p) for p in notebooks] if notebooks else [root / f"notebooks/{n}.py" for n in EXERCISE_NOTEBOOKS]
    out = Path(out)
    with tempfile.TemporaryDirectory() as folder:
        course = Path(folder)
        source, release = course / "source" / assignment, course / "release" / assignment
        source.mkdir(parents=True)
        teachers = {path.stem: nbgrader_source(path) for path in paths}
        for name, teacher in teachers.items():
            nbformat.write(teacher, source / f"{name}.ipynb")
        _generate_assignment(course, assignment)
        for name, teacher in teachers.items():
            leaked = leaked_lines(teacher, nbformat.read(release / f"{name}.ipynb", as_version=4))
            if leaked:
                raise RuntimeError(f"the student copy of {name} still holds solution lines: {leaked}")
        staging = out.with_name(out.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(release, staging)
        shutil.make_archive(str(staging / assignment), "zip", root_dir=release)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return out / f"{assignment}.zip"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m camfaith.student", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="jupytext notebooks (default: those with exercises)")
    parser.add_argument("--out", default="_build/student", help="folder of the student copies (replaced)")
    args = parser.parse_args(argv)
    try:
        archive = generate(args.out, args.notebooks or None)
    except (RuntimeError, ValueError) as error:
        sys.exit(str(error))
    print(f"Student copies in {archive.parent}/ and {archive}")


if __name__ == "__main__":
    main()
