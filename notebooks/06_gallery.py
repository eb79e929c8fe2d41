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
# # Gallery: {dataset} / {arch}
#
# Grad-CAM and HiResCAM on the same test images (the seed's Figure 19). On a Flatten head HiResCAM
# keeps each location's own gradient, so its maps are sharper; Grad-CAM averages the gradient over
# the map and spreads the attention.

# %% tags=["parameters"]
dataset = "synthetic"
arch = "resnet18"
input_size = 48
data_root = ""
dataset_options = ""
run_dir = "results/scratch/synthetic_resnet18"
device = "auto"
seed = 0
n_images = 6

# %%
import matplotlib.pyplot as plt
from myst_nb import glue

from camfaith.cams import METHODS
from camfaith.plots import map_gallery
from camfaith.study import check_parameters, explain, load_splits, load_trained, test_sample

check_parameters(dataset, arch, input_size=input_size, n_images=n_images)
model, target_layer, spec = load_trained(run_dir, None if device == "auto" else device)
splits = load_splits(dataset, input_size, seed, data_root, dataset_options, augment=False)
images, labels, ids = test_sample(splits, n_images, seed, next(model.parameters()).device)
maps = explain(model, target_layer, images)
titles = [f"{splits.classes[int(y)]} → {splits.classes[int(p)]}" for y, p in zip(labels, maps["targets"])]
fig = map_gallery(images, {m: maps[m] for m in METHODS}, titles)
glue("gallery_fig", fig)
plt.close(fig)

# %% [markdown]
# Each row: the image (true class → predicted class), then the two maps of the predicted class.
