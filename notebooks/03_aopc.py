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
# probability of the predicted class falls (seed eq. 6-7). A better map finds the decisive cells
# first, so **higher is better**. We compare Grad-CAM and HiResCAM on the same test images, for each
# heatmap size, image by image.

# %% tags=["parameters", "remove-cell"]
dataset = "synthetic"
arch = "vgg11"
input_size = 32
data_root = ""
dataset_options = ""
run_dir = "results/scratch/synthetic_vgg11"
device = "auto"
seed = 0
n_images = 32  # test images explained
regions = "4,8"  # heatmap sizes (cells per side); the seed used 4,8,11,14 at 224 px
perturbation = "uniform"  # uniform noise in [-1, 1], image_range, or a constant such as 0.0
chunk_size = 64  # perturbed images per forward pass (bounds the memory)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith import aopc
from camfaith.cams import METHODS
from camfaith.plots import METHOD_LABELS, metric_by_setting, morf_curves
from camfaith.stats import compare_methods
from camfaith.study import check_parameters, explain, open_run, parse_list, save_results

check_parameters(dataset, arch, input_size=input_size, n_images=n_images, chunk_size=chunk_size)
region_list = parse_list(regions, int)
if isinstance(perturbation, str) and perturbation not in ("uniform", "image_range"):
    perturbation = float(perturbation)
model, target_layer, splits, images, labels, ids = open_run(run_dir, dataset, input_size, seed, n_images, data_root,
                                                            dataset_options, device)
maps = explain(model, target_layer, images)

# %% [markdown]
# Every method, heatmap size and image gets its own AOPC; the noise generator is re-seeded for each
# method so that both maps are scored against the same random draws.

# %%
rows, curves = [], {}
for size in region_list:
    for method in METHODS:
        generator = torch.Generator().manual_seed(seed)
        result = aopc(model, images, maps[method], regions=size, perturbation=perturbation,
                      generator=generator, chunk_size=chunk_size, targets=maps["targets"])
        curves[(size, method)] = result.curves
        rows += [{"id": i, "method": method, "regions": size, "aopc": float(s)} for i, s in zip(ids, result.scores)]
per_image = pd.DataFrame(rows)
save_results(per_image, run_dir, "aopc")

comparison = compare_methods(per_image, "aopc", ["regions"], higher_is_better=True)
table = comparison.rename(columns={f"mean_{m}": label for m, label in METHOD_LABELS.items()})
table["better"] = table["better"].replace(METHOD_LABELS)
glue("aopc_table", table.round(4), display=False)
glue("aopc_mean_gradcam", float(per_image.query("method == 'gradcam'")["aopc"].mean()), display=False)
glue("aopc_mean_hirescam", float(per_image.query("method == 'hirescam'")["aopc"].mean()), display=False)
table.round(4)

# %% [markdown]
# The table pairs the two methods image by image: `mean_difference` is HiResCAM minus Grad-CAM with a
# 95% bootstrap interval (`low`, `high`) and a Wilcoxon signed-rank p-value. Below, the mean MoRF
# curves (the seed's Figure 14 shows the 8x8 ones).

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
