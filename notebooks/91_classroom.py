# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Classroom timings
#
# How long the classroom configuration, `configs/classroom.yaml`, takes on a CPU: the whole report, as
# `make book CONFIG=configs/classroom.yaml` runs it, and each chapter re-run on its own, as a student re-runs it
# in class. The numbers come from `benchmarks/classroom.py`; the page {doc}`../teachers` plans the sessions
# with them.

# %% tags=["parameters", "remove-cell"]
results_file = "benchmarks/results/classroom-cpu.json"  # written by `python benchmarks/classroom.py`

# %% tags=["hide-input"]
import json
from pathlib import Path

import pandas as pd
from myst_nb import glue

import camfaith

path = Path(results_file)
if not path.is_absolute() and not path.exists():  # relative to the repository root
    path = Path(camfaith.__file__).resolve().parents[2] / path
if not path.exists():
    raise FileNotFoundError(f"no classroom timings at {results_file}: run `python benchmarks/classroom.py`, "
                            "which writes benchmarks/results/classroom-cpu.json")
timings = json.loads(path.read_text())
machine = timings["machine"]
glue("classroom_cores", machine["cores"], display=False)
glue("classroom_load_before", machine["load_before"][0], display=False)  # 1-minute load averages
glue("classroom_load_after", machine["load_after"][0], display=False)
glue("classroom_jobs", timings["jobs"], display=False)
print(f"{timings['config']} on {machine['cores']} cores ({machine['platform']}), torch {machine['torch']}, "
      f"{timings['date']}; load average {machine['load_before'][0]:.1f} before, {machine['load_after'][0]:.1f} after")

# %% [markdown]
# ## The whole report
#
# The steps of `make book` with `JOBS` notebooks side by side: the study's notebooks (Snakemake), this page, and
# the book. *Wall* is the time one waits; *CPU* adds up the time of the processes each step started. Other work
# on the machine stretches the wall clock first: the load average above says how busy it was.

# %%
steps = pd.DataFrame(timings["report"])
glue("classroom_report_min", float(steps["wall_s"].sum() / 60), display=False)
COLUMNS = {"wall_s": "wall (s)", "cpu_s": "CPU (s)", "in_report_s": "in the report (s)"}
steps.set_index("step")[["command", "wall_s", "cpu_s"]].rename(columns=COLUMNS).round(1)

# %% [markdown]
# ## Each chapter on its own
#
# Each chapter re-run after the report, one at a time, with the parameters the pipeline gave it:
# `python -m camfaith.pipeline run notebooks/<chapter>.py out.ipynb -p ...`. The time includes starting Python
# and the notebook's kernel. The training chapter trains afresh, into a new run folder; the metric chapters
# explain the network that the report trained. *In the report* is the same chapter's run time inside the
# report, where it shared the machine with another notebook. The threads of each run (`OMP_NUM_THREADS`):

# %%
threads = timings["chapter_threads"]
threads = {0: "one thread per core", 1: "one thread"}.get(threads, f"{threads} threads")
glue("classroom_threads", threads, display=False)
print(threads)
chapters = pd.DataFrame(timings["chapters"])
seconds = chapters.set_index("chapter")["wall_s"]  # the exercise plan of the teaching page cites these
glue("classroom_faithfulness_s", float(seconds["faithfulness"]), display=False)
glue("classroom_train_s", float(seconds["train"]), display=False)
glue("classroom_aopc_s", float(seconds["aopc"]), display=False)
glue("classroom_max_sensitivity_s", float(seconds["max_sensitivity"]), display=False)
glue("classroom_haas_s", float(seconds["haas"]), display=False)
glue("classroom_gallery_s", float(seconds["gallery"]), display=False)
glue("classroom_sanity_s", float(seconds["sanity"]), display=False)
slowest = chapters.loc[chapters["wall_s"].idxmax()]
glue("classroom_slowest_s", float(slowest["wall_s"]), display=False)
glue("classroom_slowest", str(slowest["title"]), display=False)
chapters.set_index("title")[["notebook", "wall_s", "cpu_s", "in_report_s"]].rename(columns=COLUMNS).round(1)
