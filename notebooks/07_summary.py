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
# # Summary of the study
#
# This chapter gathers every run of the configuration: the test scores of each model, the mean of
# each metric for Grad-CAM and HiResCAM (the counterpart of the seed's Table 10), and for every run a
# paired verdict: does the image-by-image comparison favour HiResCAM, Grad-CAM, or neither?

# %% tags=["parameters", "remove-cell"]
results_dir = "results/default"  # the folder of one configuration's runs
runs = "synthetic_vgg11"  # comma-separated run names, by default dataset_arch
haas_scaling = "unit"  # attribution scaling whose HAAS enters the summary
n_resamples = 2000  # bootstrap resamples
seed = 0

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from camfaith.plots import accuracy_scatter
from camfaith.stats import haas_comparison, paired_comparison
from camfaith.study import reference_table

run_names = [r.strip() for r in runs.split(",") if r.strip()]
missing = [r for r in run_names if not (Path(results_dir) / r / "report.json").exists()]
if missing or not run_names:
    raise FileNotFoundError(f"no finished runs {missing or runs!r} in {results_dir}: run the pipeline first (make results)")

# %% [markdown]
# Per image, AOPC is averaged over the heatmap sizes and Max-Sensitivity over the radii, as the seed
# does for its Table 10; the paired comparisons then use these per-image means.

# %%
rows, verdicts = [], []
for name in run_names:
    folder = Path(results_dir) / name
    report = json.loads((folder / "report.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    dataset, arch = run["dataset"], run["arch"]
    options = dict(n_resamples=n_resamples, seed=seed)
    comparisons = {}
    if (folder / "aopc.csv").exists():
        aopc = pd.read_csv(folder / "aopc.csv").groupby(["id", "method"])["aopc"].mean().unstack()
        comparisons["AOPC"] = paired_comparison(aopc["gradcam"], aopc["hirescam"], higher_is_better=True, **options)
    if (folder / "max_sensitivity.csv").exists():
        sens = pd.read_csv(folder / "max_sensitivity.csv").groupby(["id", "method"])["max_sensitivity"].mean().unstack()
        comparisons["Max-Sensitivity"] = paired_comparison(sens["gradcam"], sens["hirescam"], higher_is_better=False,
                                                           **options)
    if (folder / "haas.csv").exists():
        haas = pd.read_csv(folder / "haas.csv").query("scaling == @haas_scaling")
        haas = haas.pivot(index="id", columns="method", values=["label", "prediction", "ha_prediction"])
        comparisons["HAAS"] = haas_comparison(haas["label"]["gradcam"], haas["ha_prediction"]["gradcam"],
                                              haas["ha_prediction"]["hirescam"], haas["prediction"]["gradcam"],
                                              **options)
    rows.append({"run": name, "dataset": dataset, "arch": arch, "options": run.get("dataset_options", ""),
                 "balanced_accuracy": report["balanced_accuracy"],
                 "mean_auc": report["mean_auc"]}
                | {f"{key}_{method}": comparisons[metric][f"mean_{which}"] if metric in comparisons else float("nan")
                   for metric, key in (("AOPC", "mean_aopc"), ("Max-Sensitivity", "mean_maxsens"), ("HAAS", "haas"))
                   for method, which in (("gradcam", "first"), ("hirescam", "second"))})
    if (folder / "localisation.csv").exists():
        mass = pd.read_csv(folder / "localisation.csv").pivot(index="id", columns="method", values="relevance_mass")
        comparisons["Relevance mass"] = paired_comparison(mass["gradcam"], mass["hirescam"], higher_is_better=True,
                                                          **options)
    for metric, result in comparisons.items():
        favoured = {"second": "HiResCAM", "first": "Grad-CAM", "neither": "neither"}[result["better"]]
        verdicts.append({"run": name, "dataset": dataset, "arch": arch, "metric": metric, "HiResCAM - Grad-CAM": result["mean_difference"],
                         "low": result["low"], "high": result["high"], "p": result["p_value"], "favours": favoured,
                         "images": result["n"]})
ours = pd.DataFrame(rows)
verdicts = pd.DataFrame(verdicts)
glue("summary_table", ours.round(3), display=False)
ours.round(3)

# %% [markdown]
# ## Paired verdicts
#
# Differences are HiResCAM minus Grad-CAM, with 95% bootstrap intervals; `p` is the Wilcoxon
# signed-rank test for AOPC, Max-Sensitivity and relevance mass (on data with object masks),
# McNemar's exact test for HAAS. A metric favours a
# method only when the interval excludes zero, in that metric's direction.

# %%
glue("summary_verdicts", verdicts.round(4), display=False)
counts = verdicts.groupby(["metric", "favours"]).size().unstack(fill_value=0)
for metric in ("AOPC", "Max-Sensitivity", "HAAS", "Relevance mass"):
    key = metric.lower().replace("-", "_").replace(" ", "_")
    for side in ("HiResCAM", "Grad-CAM", "neither"):
        value = int(counts.loc[metric, side]) if metric in counts.index and side in counts else 0
        glue(f"summary_{key}_{side.lower().replace('-', '')}", value, display=False)
glue("summary_n_runs", len(run_names), display=False)
glue("summary_n_localised", int((verdicts["metric"] == "Relevance mass").sum()), display=False)
verdicts.round(4)

# %% [markdown]
# ## Beside the published study
#
# The seed's Table 10 (Lamprou 2023), computed on four medical datasets with 224 px ImageNet-pretrained
# models; our runs are those of this configuration. Where our datasets differ, compare directions,
# not values.

# %%
thesis = reference_table("table10_summary")
thesis_directions = pd.Series({
    "AOPC": int((thesis["mean_aopc_hirescam"] > thesis["mean_aopc_gradcam"]).sum()),
    "Max-Sensitivity": int((thesis["mean_maxsens_hirescam"] < thesis["mean_maxsens_gradcam"]).sum()),
    "HAAS": int((thesis["haas_hirescam"] > thesis["haas_gradcam"]).sum()),
})
glue("summary_thesis_n_models", len(thesis), display=False)
for metric, count in thesis_directions.items():
    glue(f"summary_thesis_{metric.lower().replace('-', '_')}_hirescam", count, display=False)
both = pd.concat([ours.drop(columns="options").assign(source="ours"), thesis.assign(source="thesis")],
                 ignore_index=True)
glue("summary_side_by_side", both.round(3), display=False)
both.round(3)

# %% [markdown]
# Where a data set has several runs (the hyper-parameter loops of the seed's Table 8), the best and
# worst HiResCAM HAAS among them, with the models' mean AUC, as in its Table 9.

# %%
same_data = ["dataset", "arch", "options"]
looped = ours.groupby(same_data).filter(lambda group: len(group) > 1 and group["haas_hirescam"].notna().any())
if looped.empty:
    print("No data set has several runs in this configuration.")
else:
    extremes = pd.concat([
        looped.loc[looped.groupby(same_data)["haas_hirescam"].idxmax()].assign(case="max_haas"),
        looped.loc[looped.groupby(same_data)["haas_hirescam"].idxmin()].assign(case="min_haas"),
    ])[["dataset", "arch", "case", "run", "haas_hirescam", "mean_auc"]]
    thesis9 = reference_table("table9_haas_nonmedical").rename(columns={"hirescam_haas": "haas_hirescam"})
    table9 = pd.concat([extremes.assign(source="ours"), thesis9.assign(source="thesis")], ignore_index=True)
    glue("summary_table9", table9.round(3))

# %% [markdown]
# ## Accuracy against the metrics (the seed's Figures 16-18)

# %%
for metric, label in (("mean_aopc_hirescam", "mean AOPC (HiResCAM)"),
                      ("mean_maxsens_hirescam", "mean Max-Sensitivity (HiResCAM)"),
                      ("haas_hirescam", "HAAS (HiResCAM)")):
    fig = accuracy_scatter(both, metric, label)
    glue(f"summary_{metric}_fig", fig)
    plt.close(fig)
