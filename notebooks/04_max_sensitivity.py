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
# # Max-Sensitivity: {run}
#
# Max-Sensitivity asks how much an explanation can change when the image moves by at most a radius
# r in every pixel (eq. 8 of Lamprou 2023). A robust map changes little, so **lower is better**. Both
# maps are compared after the same post-processing (ReLU, min-max, resize), as in the original study.

# %% tags=["parameters", "remove-cell"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images explained
radii = "0.05,0.1,0.2"  # Table 6 of the original study: 0.05,0.1,0.2,0.3,0.4,0.5
samples = "5,5,5"  # Monte-Carlo samples per radius; Table 6: 20,20,30,30,40,40
normalize = False  # divide by the norm of the clean map (Yeh et al.)
chunk_size = 32  # perturbed images explained per pass

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith import explainer, max_sensitivity
from camfaith.cams import METHODS, explain
from camfaith.device import model_device
from camfaith.parameters import check_positive_integers, parse_list
from camfaith.plots import method_table, metric_by_setting
from camfaith.runs import Run
from camfaith.stats import compare_methods

check_positive_integers(n_images=n_images, chunk_size=chunk_size)
radius_list, sample_list = parse_list(radii, float), parse_list(samples, int)
if len(radius_list) != len(sample_list):
    raise ValueError(f"radii and samples need the same length, got {radii!r} and {samples!r}")
if min(radius_list) <= 0 or min(sample_list) < 1:
    raise ValueError("radii must be positive and samples at least 1")
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
images, labels, ids = run.test_images(run.load_splits(), n_images, model_device(model))
targets = explain(model, target_layer, images)["targets"]

# %% [markdown]
# Each method sees the same perturbed images: the generator is re-seeded per radius and method.

# %%
rows = []
for radius, n_samples in zip(radius_list, sample_list):
    for method in METHODS:
        result = max_sensitivity(explainer(model, target_layer, method), images, radius, n_samples, targets,
                                 normalize=bool(normalize), generator=torch.Generator().manual_seed(run.seed),
                                 chunk_size=chunk_size)
        rows += [{"id": i, "method": method, "radius": radius, "samples": n_samples, "max_sensitivity": float(s)}
                 for i, s in zip(ids, result.scores)]
per_image = pd.DataFrame(rows)
run.save_scores("max_sensitivity", per_image)

comparison = compare_methods(per_image, "max_sensitivity", ["radius", "samples"], higher_is_better=False)
table = method_table(comparison)
glue("sens_table", table.round(4), display=False)
glue("sens_mean_gradcam", float(per_image.query("method == 'gradcam'")["max_sensitivity"].mean()), display=False)
glue("sens_mean_hirescam", float(per_image.query("method == 'hirescam'")["max_sensitivity"].mean()), display=False)
table.round(4)

# %% [markdown]
# `mean_difference` is HiResCAM minus Grad-CAM (negative favours HiResCAM), with its 95% bootstrap
# interval and the Wilcoxon p-value. The figure plays the role of Figure 15 of the original study.

# %%
summary = (per_image.groupby(["method", "radius"])["max_sensitivity"]
           .agg(["mean", "sem"]).reset_index())
summary["low"], summary["high"] = summary["mean"] - 1.96 * summary["sem"], summary["mean"] + 1.96 * summary["sem"]
fig = metric_by_setting(summary.rename(columns={"mean": "max_sensitivity"}), "radius", "max_sensitivity",
                        "mean Max-Sensitivity")
glue("sens_by_radius_fig", fig)
plt.close(fig)
