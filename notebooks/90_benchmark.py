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
# # What a replication costs
#
# The original study (Lamprou 2023) reports about 2.2 s per image for 14x14 AOPC and up to 1.2 s per
# image for Max-Sensitivity on a V100. Every one of these metrics is a fixed number of model passes
# per image, so the fairest yardstick is what those passes cost on their own. This page reads the
# results of `benchmarks/run.py` and compares camfaith's metrics with that yardstick, with a
# per-image loop written the way the original study's code ran, and with Quantus, Captum and
# pytorch-grad-cam. A second run at the original study's scale (its three networks at 224 px) times
# AOPC's incremental path, and from it this page projects what the full `thesis` configuration costs
# on this CPU and on one GPU.

# %% [markdown]
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
results_file = "benchmarks/results/latest-cpu.json"  # written by `make benchmark`
results_224_file = "benchmarks/results/latest-cpu-224.json"  # `benchmarks/run.py --setting full224 --threads 1`
gpu_results_file = "benchmarks/results/latest-cuda-224.json"  # `benchmarks/run.py --device cuda`; may not exist yet
thesis_config = "configs/thesis.yaml"  # the configuration whose cost is projected

# %% tags=["hide-input"]
import json
from pathlib import Path

import pandas as pd
import yaml
from IPython.display import display

import camfaith
from camfaith.costs import CHAPTERS, aopc_paths, project, replan, totals
from camfaith.incremental import AUTO_MIN_SPEEDUP
from camfaith.plots import format_table

ROOT = Path(camfaith.__file__).resolve().parents[2]  # the repository: the benchmark's result files


def located(name: str) -> Path:
    """``name`` as given, else relative to the repository root."""
    path = Path(name)
    return path if path.is_absolute() or path.exists() else ROOT / path


path = located(results_file)
if not path.exists():
    raise FileNotFoundError(f"no benchmark results at {results_file}: run `make benchmark` first "
                            "(or `python benchmarks/run.py`), which writes benchmarks/results/latest-cpu.json")
report = json.loads(path.read_text())
machine, config = report["machine"], report["config"]
print(f"{machine['device_name']} ({machine['device']}), {machine['cores']} cores, "
      f"{machine['torch_threads']} torch threads, torch {machine['versions']['torch']}, {report['date']}")

# %% [markdown]
# ## Time per image
#
# Each row is one implementation of one metric on one network. *Efficiency* is the time the model's
# own passes would take for the passes the metric needs, divided by the measured time; 1 means the
# metric costs its passes and nothing more. *camfaith faster by* is the other implementation's time
# over camfaith's, timed interleaved on the same setting.

# %% tags=["hide-input"]
rows = pd.DataFrame([row for arch in report["archs"] for row in arch["rows"]])
table = rows[["arch", "metric", "setting", "implementation", "path", "passes per image", "ms per image",
              "efficiency", "camfaith faster by", "agreement"]]
format_table(table, 2, {"ms per image": "{:.1f}", "efficiency": "{:.2f}", "camfaith faster by": "{:.2f}"})

# %% [markdown]
# The key ratios, over every network benchmarked (the worst case is quoted; for AOPC, its full-forward path):

# %% tags=["hide-input"]
ours = rows[(rows["implementation"] == "camfaith") & rows["path"].ne("incremental")]
others = rows[rows["camfaith faster by"].notna()]
cams = pd.DataFrame([{"arch": a["arch"], **{k: v for k, v in a["cams"].items() if k != "max_abs_difference"}}
                     for a in report["archs"]])
ratios = {
    "bench_cam_speedup": cams["two_library_over_camfaith"].min(),
    "bench_cam_over_one": cams["camfaith_over_one_library"].max(),
    "bench_aopc_efficiency": ours.loc[ours["metric"] == "AOPC", "efficiency"].min(),
    "bench_sens_efficiency": ours.loc[ours["metric"] == "Max-Sensitivity", "efficiency"].min(),
    "bench_haas_efficiency": ours.loc[ours["metric"] == "HAAS", "efficiency"].min(),
    "bench_loop_speedup": others.loc[others["implementation"].str.startswith("per-image"), "camfaith faster by"].min(),
    "bench_anchor_speedup": others.loc[~others["implementation"].str.startswith("per-image"),
                                       "camfaith faster by"].min(),
}
format_table(pd.Series(ratios).to_frame("value"), 2)

# %% [markdown]
# ## Both CAMs from one pass
#
# camfaith computes Grad-CAM and HiResCAM from the same activations and gradients, and its backward
# pass stops at the target layer. pytorch-grad-cam runs a full backward pass per method.

# %% tags=["hide-input"]
format_table(cams, 3)

# %% [markdown]
# ## Memory
#
# Peak memory grows with the chunk size, the number of perturbed images that go through the model at
# once, and not with the number of removal steps or samples.

# %% tags=["hide-input"]
estimate = report.get("memory_estimate") or {}
memory = pd.DataFrame([{"metric": name, "MiB per image in a chunk": value["per_image_bytes"] / 2**20,
                        "default chunk": value["default_chunk"],
                        "GiB at default chunk": value["estimated_bytes_at_default_chunk"] / 2**30,
                        "largest chunk for 16 GB": value["largest_chunk_for_16gb"]}
                       for name, value in estimate.items() if isinstance(value, dict)])
format_table(memory, 2)

# %% [markdown]
# ## What the numbers mean
#
# An efficiency near 1 for AOPC says that building the perturbed images costs next to nothing
# beside the forward passes: all removal steps of all images are masks over one noise draw, fed to
# the model in full chunks. Max-Sensitivity and HAAS land above 1 because the bound charges each
# explanation a full backward pass, while camfaith's stops at the target layer.
#
# The per-image loop pays twice: small batches use the hardware poorly, and pytorch-grad-cam's
# backward runs through every parameter and copies maps to NumPy. Captum's `sensitivity_max` is
# batched like camfaith's, so given the same explanation function the two should be close; what
# separates them is bookkeeping, not passes. The notes of the run follow.

# %% tags=["hide-input"]
for note in report.get("notes", []):
    print("-", note)

# %% [markdown]
# ## Incremental AOPC at 64 px and at 224 px
#
# Each removal step of AOPC changes the image in one cell only. The incremental path keeps the
# activations of the previous step and recomputes, layer by layer, only the windows that cell reaches;
# its scores are those of the full forward path up to float rounding. Per network and heatmap size:
# the time per image on each path, the path `incremental="auto"` takes, and the incremental path's
# speed-up over the bound (the full forward passes it replaces), over the full path as timed, and over
# Quantus RegionPerturbation (timed interleaved with both paths). The 224 px run on the CPU times the
# full path at the smallest size only, where it costs what the bound says.

# %% tags=["hide-input"]
def load(name: str) -> dict | None:
    path = located(name)
    return json.loads(path.read_text()) if path.exists() else None


report_224, report_gpu = load(results_224_file), load(gpu_results_file)
if report_224 is None:
    raise FileNotFoundError(f"no 224 px benchmark results at {results_224_file}: run "
                            "`python benchmarks/run.py --setting full224 --threads 1` first")
# The timings as measured; the path "auto" takes and its estimate from today's cost model.
measured = [replan(r) for r in (report, report_224, report_gpu) if r is not None]
paths = pd.concat([pd.DataFrame(aopc_paths(arch)).assign(input=f"{r['config']['input_size']} px, "
                                                                f"{r['machine']['device']}")
                   for r in measured for arch in r["archs"]], ignore_index=True)
paths = paths[["input", *paths.columns.drop("input")]]
milliseconds = ["incremental ms", "full forward ms", "Quantus ms"]
paths[milliseconds] = paths[milliseconds].astype(float).round().astype("Int64")  # whole milliseconds
format_table(paths, 2)

# %% [markdown]
# The incremental path holds every activation of its images up to its cut, where the full path holds
# one chunk of perturbed images at a time. Peak memory of one call of each path at 224 px (AOPC with
# enough regions to fill a chunk; the other metrics for comparison):

# %% tags=["hide-input"]
memory_224 = pd.DataFrame([{"arch": a["arch"], "metric": name, "chunk": value["chunk"], "MiB": value["bytes"] / 2**20}
                           for a in report_224["archs"] for name, value in a.get("memory", {}).items()])
format_table(memory_224, 1)

# %% [markdown]
# ## Where incremental AOPC pays off
#
# The deeper a layer, the larger the window one cell reaches; once the windows cover most of a map,
# recomputing them saves little, and on small images they do so early. `incremental_plan` estimates
# both costs and `"auto"` takes the incremental path when it expects a gain of at least
# `AUTO_MIN_SPEEDUP` (on a CPU only: on a GPU the many small windows are bound by kernel launches). The
# measured speed-up comes from short runs: a forward pass of a chunk against a seeding pass plus a few
# incremental steps.

# %% tags=["hide-input"]
crossover = pd.DataFrame([{**cell, "device": r["machine"]["device"]} for r in measured for a in r["archs"]
                          for cell in a.get("crossover", [])])
cross_cols = ["device", "arch", "input_size", "regions", "auto", "estimated_speedup", "measured_speedup",
              "faster_measured"]
crossover = crossover[[c for c in cross_cols if c in crossover]]
agrees = (crossover["auto"] == crossover["faster_measured"]) | (
    (crossover["auto"] == "full forward") & (crossover["measured_speedup"] < AUTO_MIN_SPEEDUP))
display(format_table(crossover, 2))
print(f"AUTO_MIN_SPEEDUP = {AUTO_MIN_SPEEDUP}; auto's choice matches the measured faster path (or forgoes a "
      f"smaller gain) in {agrees.sum()} of {len(crossover)} cells")

# %% [markdown]
# ## The full replication, projected
#
# Every chapter of a run is a fixed number of model passes per image on a known number of images: the
# test splits of Table 2 of the original study, capped by each chapter's `n_images` in
# `configs/thesis.yaml`. Multiplying them by the per-image costs measured at 224 px gives the hours of
# each chapter, summed over the eight runs (`benchmarks/projection.py` states what each chapter counts).
# Training is an upper bound: it counts a full backward pass and every epoch, while most runs freeze
# layers and stop early. The CPU column is one thread of the machine above, on which other jobs ran. The GPU
# column comes from `benchmarks/gpu.sh` on the GPU named below, with the same two images per batch: so small a
# batch leaves a large GPU waiting on kernel launches, so that column is an upper bound.

# %% tags=["hide-input"]
thesis = yaml.safe_load(located(thesis_config).read_text())
cpu_runs = project(report_224, thesis)
hours = totals(cpu_runs).rename(columns={"hours": "this CPU, one thread (h)"})
gpu_name = report_gpu["machine"]["device_name"] if report_gpu else None
hours["one GPU (h)"] = totals(project(report_gpu, thesis))["hours"] if report_gpu else "not measured yet"
missing = sorted(set(cpu_runs.loc[cpu_runs["seconds"].isna(), "arch"]))
display(format_table(hours, 1))
gpu_status = f"measured on {gpu_name}" if report_gpu else f"not measured yet (no {gpu_results_file})"
print(f"GPU projection: {gpu_status}." + (f" Networks not benchmarked at 224 px: {', '.join(missing)}." if missing
                                           else ""))

# %% [markdown]
# Per run, on this CPU (hours, one thread):

# %% tags=["hide-input"]
per_run = (cpu_runs.assign(hours=cpu_runs["seconds"] / 3600).groupby(["dataset", "arch", "chapter"], sort=False)
           ["hours"].sum(min_count=1).unstack("chapter")[list(CHAPTERS)])
format_table(per_run, 1)
