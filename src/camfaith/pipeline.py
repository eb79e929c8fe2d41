"""Run the report's jupytext notebooks with papermill, and publish them into the book.

Used by the Snakefile and the tests; also a command line::

    python -m camfaith.pipeline run notebooks/03_aopc.py out.ipynb -p run_dir=runs/mine -p regions=4,8
    python -m camfaith.pipeline publish results/default/notebooks book/generated
    python -m camfaith.pipeline book results/default/notebooks     (publish, then build the whole book)

Parameter values on the command line are parsed as YAML scalars (``-p regions=4,8`` stays a string,
``-p seed=3`` becomes an int). The notebook's first heading may name parameters in braces
(``# AOPC: {dataset} / {arch}``), or ``{run}``, the name of the ``run_dir`` folder; they are filled in so
that each executed chapter has its own title.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

import yaml

from camfaith.io import atomic_path


class _KeepUnknown(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _fill_title(notebook, parameters: dict) -> None:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            source = cell.source
            fields = {name for _, name, _, _ in string.Formatter().parse(source) if name}
            if fields and fields <= set(parameters):
                cell.source = source.format_map(_KeepUnknown(parameters))
            return


def run_notebook(source: str | os.PathLike, output: str | os.PathLike, parameters: dict | None = None,
                 cwd: str | os.PathLike | None = None, progress: bool = False):
    """Execute a jupytext notebook with papermill and write the executed ``.ipynb`` atomically.

    A failing notebook raises papermill's ``PapermillExecutionError`` (which names the cell and the
    error) and leaves no output behind, so a re-run starts it again. The kernel gets a fixed hash seed
    (``PYTHONHASHSEED``, 0 unless set): a figure drawn by iterating over a set of strings, as
    scikit-posthocs' critical-difference diagram does, then comes out the same on every run.
    """
    import jupytext
    import papermill

    os.environ.setdefault("PYTHONHASHSEED", "0")  # the kernel inherits it
    parameters = dict(parameters or {})
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    run = {"run": Path(str(parameters["run_dir"])).name} if "run_dir" in parameters else {}
    _fill_title(notebook, parameters | run)
    with atomic_path(output) as tmp:
        executed = tmp.with_suffix(".ipynb")  # papermill wants the extension
        try:
            papermill.execute_notebook(
                notebook, str(executed), parameters=parameters, kernel_name="python3",
                cwd=str(cwd or Path.cwd()), progress_bar=progress, language="python",
                # the kernel listens on localhost only; its start-up warnings are not the reader's concern
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
            os.replace(executed, tmp)
        finally:
            executed.unlink(missing_ok=True)
    return Path(output)


def publish(executed: str | os.PathLike, book_folder: str | os.PathLike) -> Path:
    """Make ``book_folder`` a copy of the folder of executed notebooks (the book's input).

    Hidden files, such as the temporary file of a notebook whose run was killed, are left out.
    """
    executed, book_folder = Path(executed), Path(book_folder)
    if not executed.is_dir():
        raise FileNotFoundError(f"no executed notebooks in {executed}: run the pipeline first (make results)")
    staging = book_folder.with_name(book_folder.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(executed, staging, ignore=shutil.ignore_patterns(".*"))
    shutil.rmtree(book_folder, ignore_errors=True)
    os.replace(staging, book_folder)
    return book_folder


def build_book(executed: str | os.PathLike, root: str | os.PathLike = ".") -> Path:
    """Publish the executed notebooks into ``<root>/book/generated`` and build the whole book.

    Every page is rebuilt (``--all``): a prose page that pastes numbers from a notebook does not
    know it depends on it, so an incremental build after another configuration would keep its
    stale numbers. Warnings are errors. Returns the HTML folder.
    """
    root = Path(root)
    publish(executed, root / "book" / "generated")
    # through this interpreter, not a jupyter-book script beside it: an installation into another prefix
    # (pip --target, a user site) puts the script elsewhere
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(root), "-W", "-n",
               "--keep-going", "--all", "-q"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"the book did not build:\n{(result.stdout + result.stderr).strip()[-6000:]}")
    return root / "_build" / "html"


def _parameter(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"parameters are name=value, got {text!r}")
    if not value:
        return name, ""
    try:  # the Snakefile writes JSON; YAML alone would read 1e-05 as a string
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, yaml.safe_load(value)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m camfaith.pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute one notebook")
    run.add_argument("source")
    run.add_argument("output")
    run.add_argument("-p", "--parameter", type=_parameter, action="append", default=[])
    run.add_argument("--progress", action="store_true")
    pub = commands.add_parser("publish", help="copy executed notebooks into the book")
    pub.add_argument("executed")
    pub.add_argument("book_folder")
    book = commands.add_parser("book", help="publish executed notebooks, then build the whole book")
    book.add_argument("executed")
    book.add_argument("--root", default=".", help="the book's folder (holds _config.yml)")
    args = parser.parse_args(argv)
    if args.command == "publish":
        publish(args.executed, args.book_folder)
        return
    if args.command == "book":
        try:
            html = build_book(args.executed, args.root)
        except (FileNotFoundError, RuntimeError) as error:
            sys.exit(str(error))
        print(f"The book is ready: open {(html / 'index.html').resolve()}")
        return
    parameters = dict(args.parameter)
    what = Path(args.source).stem + (f" for {Path(str(parameters['run_dir'])).name}" if "run_dir" in parameters else "")
    started = time.perf_counter()
    from papermill.exceptions import PapermillExecutionError

    try:
        run_notebook(args.source, args.output, parameters, progress=args.progress)
    except PapermillExecutionError as error:  # the error itself, not the kernel's traceback
        sys.exit(f"{what}: failed in cell {error.exec_count} after {time.perf_counter() - started:.0f} s\n"
                 f"{error.ename}: {error.evalue}")
    print(f"{what}: {time.perf_counter() - started:.0f} s -> {args.output}", flush=True)


if __name__ == "__main__":
    main()
