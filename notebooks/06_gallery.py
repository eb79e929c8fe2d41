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
from camfaith.parameters import check_positive_integers
from camfaith.plots import METHOD_LABELS, map_gallery, method_table
from camfaith.runs import Run
from camfaith.scoring import localisation_scores

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
# On data with known object locations (the synthetic set, and the HAM10000 images with a lesion
# segmentation) we can ask the question the metrics only approximate: does the map lie on the object
# that decides the class? Relevance mass (the share of the map's mass on the mask) and relevance rank
# (the share of its top pixels on the mask; Arras et al. 2022), and the energy-based pointing game
# (the share of its mass in the mask's bounding box; Wang et al. 2020): higher is better for all
# three. The controls of the metric chapters are scored too; a map that knows where the object is
# must beat the random map and the inverted HiResCAM map. Other data sets have no masks and skip
# this step.

# %%
sample = run.masked_test_images(splits, n_localisation, model_device(model))
if sample is None:
    print(f"{run.dataset} has no ground-truth masks; localisation is not measured.")
else:
    images, labels, ids, masks = sample
    explained = explain(model, target_layer, images)
    maps = {m: explained[m] for m in METHODS} | control_maps(images, explained["hirescam"],
                                                             torch.Generator().manual_seed(run.seed))
    per_image = localisation_scores(maps, masks, ids, labels, explained["targets"])
    run.save_scores("localisation", per_image)
    table = pd.concat([method_table(run.compare_methods(per_image.assign(all="all"), score, ["all"],
                                                        higher_is_better=True)).assign(score=score)
                       for score in ("relevance_mass", "relevance_rank", "energy_pointing_game")])
    glue("gallery_localisation", table.round(4))
    means = per_image.groupby("method")[["relevance_mass", "relevance_rank", "energy_pointing_game"]].mean()
    glue("gallery_localisation_means", means.loc[list(maps)].rename(index=METHOD_LABELS).round(4))
