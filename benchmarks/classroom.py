"""How long the classroom configuration takes: the whole report, and each chapter on its own.

    python benchmarks/classroom.py          # configs/classroom.yaml -> benchmarks/results/classroom-cpu.json
    python benchmarks/classroom.py --config configs/classroom.yaml --jobs 2 --output /tmp/classroom.json

1. The report, as ``make book CONFIG=configs/classroom.yaml`` makes it, in a temporary folder (the checkout's
   ``results/``, ``book/generated/`` and ``_build/`` stay as they are): Snakemake runs the study's notebooks with
   ``--cores JOBS``; the classroom page (``notebooks/91_classroom.py``) runs on the timings taken so far; then the
   whole book is built from a copy of its sources.
2. Each chapter on its own, one after the other, as a student re-runs it with ``python -m camfaith.pipeline run``
   and the parameters that the pipeline gave it (read from the executed notebook). The training chapter trains
   into a new run folder; the metric chapters explain the network of step 1. Each runs with ``--threads``
   threads (``OMP_NUM_THREADS``): one by default, as the pipeline runs every notebook, since two threads on two
   cores that other work also uses can take three times as long; ``--threads 0`` leaves torch its default of
   one thread per core.

Every step records its wall-clock seconds and its CPU seconds (user and system time of the processes it started
and waited for), and the file records the machine's core count and load average before and after: a loaded
machine stretches the wall clock far more than the CPU time. The result is written atomically; the book shows
it through ``notebooks/91_classroom.py``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

from camfaith.io import save_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGE = ROOT / "notebooks/91_classroom.py"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def environment(threads: int = 0) -> dict:
    """This environment with the venv first on ``PATH``; ``threads`` per process, or torch's default for 0."""
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    env |= {name: str(threads) for name in THREAD_VARIABLES if threads}
    return env | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def timed(command: list, cwd: Path, threads: int = 0) -> dict:
    """Run ``command`` in ``cwd``; its wall-clock and CPU seconds. A failure raises with the command's output."""
    command = [str(part) for part in command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=environment(threads), capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(result.stdout + result.stderr).strip()[-4000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def machine() -> dict:
    """What the timings depend on: the cores, the system and the versions of Python and torch."""
    return {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": importlib.metadata.version("torch")}


def copy_book_sources(folder: Path) -> Path:
    """The book's prose and configuration without its generated pages, as a fresh clone has them."""
    shutil.copytree(ROOT / "book", folder / "book", ignore=shutil.ignore_patterns("generated", "_build"))
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, folder / name)
    return folder


def source_of(executed: Path) -> Path:
    """The chapter script behind an executed notebook: ``results/<run>_03_aopc.ipynb`` or ``summary.ipynb``."""
    numbered = re.search(r"(\d\d_[a-z_]+)\.ipynb$", executed.name)
    if numbered:
        return ROOT / "notebooks" / f"{numbered.group(1)}.py"
    (source,) = (ROOT / "notebooks").glob(f"[0-9][0-9]_{executed.stem}.py")
    return source


def load() -> list[float]:
    """The load average over the last 1, 5 and 15 minutes: how many processes wanted a core."""
    return [round(value, 2) for value in os.getloadavg()]


def pipeline(config: Path, work: Path, jobs: int) -> dict:
    """The study's notebooks through Snakemake, as ``make results`` runs them (without the classroom page)."""
    command = ["snakemake", "--snakefile", ROOT / "Snakefile", "--directory", work, "--configfile", config,
               "--cores", jobs, "--quiet", "--config", "classroom="]
    return {"step": "pipeline", "command": f"snakemake --cores {jobs}"} | timed(command, work)


def chapters(executed: Path, work: Path, threads: int) -> list[dict]:
    """Every chapter of the report again, alone, with the parameters the pipeline gave it.

    The pages numbered from 90 (the benchmark) only show results committed to the repository: a class has no
    reason to re-run them, and they are left out.
    """
    rows = []
    for notebook in sorted(executed.rglob("*.ipynb")):
        source = source_of(notebook)
        if int(source.stem[:2]) >= 90:
            continue
        cells = nbformat.read(notebook, as_version=4)
        title = next(cell.source for cell in cells.cells if cell.cell_type == "markdown").splitlines()[0]
        papermill = cells.metadata["papermill"]
        parameters = dict(papermill["parameters"])
        if source.stem.endswith("_train"):  # a fresh folder, or training would resume from the finished run
            parameters["run_dir"] = str(Path(parameters["run_dir"]).with_name("trained-alone"))
        command = [BIN / "python", "-m", "camfaith.pipeline", "run", source, work / "alone" / notebook.name]
        for name, value in parameters.items():
            command += ["-p", f"{name}={json.dumps(value)}"]
        rows.append({"chapter": source.stem[3:], "title": title.lstrip("# "), "notebook": f"notebooks/{source.name}"}
                    | timed(command, work, threads) | {"in_report_s": round(papermill["duration"], 2)})
    names = [row["chapter"] for row in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"the classroom configuration has one run, so each chapter once; got {names}")
    return rows


def book(timings: dict, executed: Path, work: Path) -> list[dict]:
    """The classroom page, run on the timings taken so far, and the whole book, as ``make html`` builds it."""
    so_far = save_json(timings | {"machine": timings["machine"] | {"load_after": load()}}, work / "so-far.json")
    page = [BIN / "python", "-m", "camfaith.pipeline", "run", PAGE, executed / "classroom.ipynb",
            "-p", f"results_file={so_far}"]
    steps = [{"step": "classroom page", "command": "python -m camfaith.pipeline run"} | timed(page, work)]
    html = [BIN / "python", "-m", "camfaith.pipeline", "book", executed, "--root", copy_book_sources(work / "book")]
    return steps + [{"step": "book", "command": "python -m camfaith.pipeline book"} | timed(html, work)]


def measure(config: Path, jobs: int, threads: int, work: Path) -> dict:
    """The timings of the report of ``config`` run in ``work``, and of each of its chapters alone."""
    work.mkdir(parents=True, exist_ok=True)
    executed = work / "results" / yaml.safe_load(config.read_text())["name"] / "notebooks"
    shown = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    timings = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "config": str(shown), "jobs": jobs,
               "chapter_threads": threads, "machine": machine() | {"load_before": load()}}
    timings["report"] = [pipeline(config, work, jobs)]
    timings["chapters"] = chapters(executed, work, threads)
    timings["report"] += book(timings, executed, work)
    timings["machine"]["load_after"] = load()
    return timings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs/classroom.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks side by side, as make book JOBS=...")
    parser.add_argument("--threads", type=int, default=1, help="threads of a chapter run on its own "
                        "(0: torch's default, one per core)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/classroom-cpu.json")
    parser.add_argument("--work", type=Path, help="an empty folder to run in, kept afterwards (default: a "
                        "temporary folder, removed)")
    args = parser.parse_args(argv)
    config = args.config.resolve()
    if not config.is_file():
        sys.exit(f"no configuration at {args.config}")
    if args.work and args.work.exists() and any(args.work.iterdir()):
        sys.exit(f"--work {args.work} is not empty: the report would not run from scratch")
    with tempfile.TemporaryDirectory(prefix="classroom-") as temporary:
        try:
            timings = measure(config, args.jobs, args.threads, (args.work or Path(temporary)).resolve())
        except (RuntimeError, ValueError) as error:
            sys.exit(str(error))
    save_json(timings, args.output)
    total = sum(step["wall_s"] for step in timings["report"])
    slowest = max(timings["chapters"], key=lambda row: row["wall_s"])
    print(f"whole report {total / 60:.1f} min; slowest chapter alone: {slowest['chapter']} {slowest['wall_s']:.0f} s "
          f"(load average {timings['machine']['load_before'][0]:.1f} before, "
          f"{timings['machine']['load_after'][0]:.1f} after) -> {args.output}")


if __name__ == "__main__":
    main()
