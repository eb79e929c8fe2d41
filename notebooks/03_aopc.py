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
# # AOPC: {run}
#
# AOPC removes the cells of a heatmap from the most to the least relevant and tracks how fast the
# probability of the predicted class falls (eq. 6-7 of Lamprou 2023). A better map finds the decisive
# cells first, so **higher is better**. We compare Grad-CAM and HiResCAM on the same test images, for
# each heatmap size, image by image.

# %% tags=["parameters", "remove-cell"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images explained
regions = "4,8"  # heatmap sizes (cells per side); the original study used 4,8,11,14 at 224 px
perturbation = "uniform"  # uniform noise in [-1, 1], image_range, or a constant such as 0.0
chunk_size = 64  # perturbed images per forward pass (bounds the memory)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith import aopc
from camfaith.cams import METHODS, explain
from camfaith.device import model_device
from camfaith.parameters import check_positive_integers, parse_list
from camfaith.plots import method_table, metric_by_setting, morf_curves
from camfaith.runs import Run
from camfaith.stats import compare_methods

check_positive_integers(n_images=n_images, chunk_size=chunk_size)
region_list = parse_list(regions, int)
if isinstance(perturbation, str) and perturbation not in ("uniform", "image_range"):
    perturbation = float(perturbation)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
images, labels, ids = run.test_images(run.load_splits(), n_images, model_device(model))
maps = explain(model, target_layer, images)

# %% [markdown]
# Every method, heatmap size and image gets its own AOPC; the noise generator is re-seeded for each
# method so that both maps are scored against the same random draws.

# %%
rows, curves = [], {}
for size in region_list:
    for method in METHODS:
        generator = torch.Generator().manual_seed(run.seed)
        result = aopc(model, images, maps[method], regions=size, perturbation=perturbation,
                      generator=generator, chunk_size=chunk_size, targets=maps["targets"])
        curves[(size, method)] = result.curves
        rows += [{"id": i, "method": method, "regions": size, "aopc": float(s)} for i, s in zip(ids, result.scores)]
per_image = pd.DataFrame(rows)
run.save_scores("aopc", per_image)

comparison = compare_methods(per_image, "aopc", ["regions"], higher_is_better=True)
table = method_table(comparison)
glue("aopc_table", table.round(4), display=False)
glue("aopc_mean_gradcam", float(per_image.query("method == 'gradcam'")["aopc"].mean()), display=False)
glue("aopc_mean_hirescam", float(per_image.query("method == 'hirescam'")["aopc"].mean()), display=False)
table.round(4)

# %% [markdown]
# The table pairs the two methods image by image: `mean_difference` is HiResCAM minus Grad-CAM with a
# 95% bootstrap interval (`low`, `high`) and a Wilcoxon signed-rank p-value. Below, the mean MoRF
# curves (Figure 14 of the original study shows the 8x8 ones).

# %%
for size in region_list:
    fig = morf_curves({m: curves[(size, m)] for m in METHODS}, size)
    glue(f"aopc_curves_{size}", fig)
    plt.close(fig)

# %%
means = comparison.melt(id_vars=["regions"], value_vars=["mean_gradcam", "mean_hirescam"], var_name="method",
                        value_name="aopc")
means["method"] = means["method"].str.removeprefix("mean_")
fig = metric_by_setting(means, "regions", "aopc", "mean AOPC")
glue("aopc_by_size_fig", fig)
plt.close(fig)
