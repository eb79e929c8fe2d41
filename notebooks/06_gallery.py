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
# # Gallery: {run}
#
# Grad-CAM and HiResCAM on the same test images (the seed's Figure 19). On a Flatten head HiResCAM
# keeps each location's own gradient, so its maps are sharper; Grad-CAM averages the gradient over
# the map and spreads the attention.

# %% tags=["parameters", "remove-cell"]
dataset = "synthetic"
arch = "vgg11"
input_size = 32
data_root = ""
dataset_options = ""
run_dir = "results/scratch/synthetic_vgg11"
device = "auto"
seed = 0
n_images = 6  # images shown
n_localisation = 300  # images scored against the true object masks, when the data set has them

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from camfaith.metrics import relevance_mass

from camfaith.cams import METHODS
from camfaith.plots import map_gallery
from camfaith.stats import compare_methods
from camfaith.study import check_parameters, explain, open_run, sample_indices, sample_test, save_results

check_parameters(dataset, arch, input_size=input_size, n_images=n_images, n_localisation=n_localisation)
model, target_layer, splits, images, labels, ids = open_run(run_dir, dataset, input_size, seed, n_images, data_root,
                                                            dataset_options, device)
maps = explain(model, target_layer, images)
titles = [f"{splits.classes[int(y)]} → {splits.classes[int(p)]}" for y, p in zip(labels, maps["targets"])]
fig = map_gallery(images, {m: maps[m] for m in METHODS}, titles)
glue("gallery_fig", fig)
plt.close(fig)

# %% [markdown]
# Each row: the image (true class → predicted class), then the two maps of the predicted class.

# %% [markdown]
# ## Do the maps find the object?
#
# On data with known object locations (the synthetic set) we can ask the question the metrics only
# approximate: how much of each map's mass lies on the object that decides the class (relevance mass,
# Arras et al. 2022; higher is better)? Other data sets have no masks and skip this step.

# %%
masks = getattr(splits.test, "masks", None)
if masks is None:
    print(f"{dataset} has no ground-truth masks; localisation is not measured.")
else:
    indices = sample_indices(splits, n_localisation, seed)
    images, labels, ids = sample_test(splits, n_localisation, seed, next(model.parameters()).device)
    maps = explain(model, target_layer, images)
    rows = [{"id": i, "method": m, "correct": bool(p == y), "relevance_mass": float(r)}
            for m in METHODS for i, y, p, r in zip(ids, labels, maps["targets"], relevance_mass(maps[m], masks[indices]))]
    per_image = pd.DataFrame(rows)
    save_results(per_image, run_dir, "localisation")
    table = compare_methods(per_image.assign(all="all"), "relevance_mass", ["all"], higher_is_better=True)
    glue("gallery_localisation", table.round(4))
