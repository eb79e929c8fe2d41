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
# pytorch-grad-cam.

# %% tags=["parameters", "remove-cell"]
results_file = "benchmarks/results/latest-cpu.json"  # written by `make benchmark`

# %%
import json
from pathlib import Path

import pandas as pd
from myst_nb import glue

import camfaith

path = Path(results_file)
if not path.is_absolute() and not path.exists():  # relative to the repository root
    path = Path(camfaith.__file__).resolve().parents[2] / path
if not path.exists():
    raise FileNotFoundError(f"no benchmark results at {results_file}: run `make benchmark` first "
                            "(or `python benchmarks/run.py`), which writes benchmarks/results/latest-<device>.json")
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

# %%
rows = pd.DataFrame([row for arch in report["archs"] for row in arch["rows"]])
table = rows[["arch", "metric", "setting", "implementation", "passes per image", "ms per image",
              "efficiency", "camfaith faster by", "agreement"]]
glue("bench_table", table.style.format({"ms per image": "{:.1f}", "efficiency": "{:.2f}",
                                        "camfaith faster by": "{:.2f}"}, na_rep="").hide(axis="index"))

# %% [markdown]
# The key ratios, over every network benchmarked (the worst case is quoted):

# %%
ours = rows[rows["implementation"] == "camfaith"]
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
for key, value in ratios.items():
    glue(key, float(value), display=False)
pd.Series(ratios).round(2).to_frame("value")

# %% [markdown]
# ## Both CAMs from one pass
#
# camfaith computes Grad-CAM and HiResCAM from the same activations and gradients, and its backward
# pass stops at the target layer. pytorch-grad-cam runs a full backward pass per method.

# %%
glue("bench_cams", cams.round(3).style.hide(axis="index"))

# %% [markdown]
# ## Memory
#
# Peak memory grows with the chunk size, the number of perturbed images that go through the model at
# once, and not with the number of removal steps or samples.

# %%
estimate = report.get("memory_estimate") or {}
memory = pd.DataFrame([{"metric": name, "MiB per image in a chunk": value["per_image_bytes"] / 2**20,
                        "default chunk": value["default_chunk"],
                        "GiB at default chunk": value["estimated_bytes_at_default_chunk"] / 2**30,
                        "largest chunk for 16 GB": value["largest_chunk_for_16gb"]}
                       for name, value in estimate.items() if isinstance(value, dict)])
if len(memory):
    glue("bench_vgg19_largest_chunk", int(memory.loc[memory["metric"] == "aopc", "largest chunk for 16 GB"].iloc[0]),
         display=False)
memory.round(2)

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

# %%
for note in report.get("notes", []):
    print("-", note)
