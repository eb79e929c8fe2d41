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
# Grad-CAM and HiResCAM on the same test images (Figure 19 of Lamprou 2023). On a Flatten head
# HiResCAM keeps each location's own gradient, so its maps are sharper; Grad-CAM averages the
# gradient over the map and spreads the attention.

# %% tags=["parameters", "remove-cell"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 6  # images shown
n_localisation = 300  # images scored against the true object masks, when the data set has them

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from myst_nb import glue

from camfaith.cams import METHODS, explain
from camfaith.controls import control_maps
from camfaith.device import model_device
from camfaith.metrics import relevance_mass
from camfaith.parameters import check_positive_integers
from camfaith.plots import METHOD_LABELS, map_gallery, method_table
from camfaith.runs import Run

check_positive_integers(n_images=n_images, n_localisation=n_localisation)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))
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
# Arras et al. 2022; higher is better)? The controls of the metric chapters are scored too; a map
# that knows where the object is must beat the random map and the inverted HiResCAM map. Other data
# sets have no masks and skip this step.

# %%
masks = getattr(splits.test, "masks", None)
if masks is None:
    print(f"{run.dataset} has no ground-truth masks; localisation is not measured.")
else:
    indices = run.test_indices(splits, n_localisation)
    images, labels, ids = run.test_images(splits, n_localisation, model_device(model))
    explained = explain(model, target_layer, images)
    maps = {m: explained[m] for m in METHODS} | control_maps(images, explained["hirescam"],
                                                             torch.Generator().manual_seed(run.seed))
    rows = [{"id": i, "method": m, "correct": bool(p == y), "relevance_mass": float(r)}
            for m in maps
            for i, y, p, r in zip(ids, labels, explained["targets"], relevance_mass(maps[m], masks[indices]))]
    per_image = pd.DataFrame(rows)
    run.save_scores("localisation", per_image)
    table = method_table(run.compare_methods(per_image.assign(all="all"), "relevance_mass", ["all"],
                                             higher_is_better=True))
    glue("gallery_localisation", table.round(4))
    means = per_image.groupby("method")["relevance_mass"].mean()[list(maps)].rename(METHOD_LABELS)
    glue("gallery_localisation_means", means.round(4).to_frame("mean relevance mass").T)
