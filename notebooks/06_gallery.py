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

# %% [markdown]
# ```{glue:figure} gallery_fig
# Grad-CAM and HiResCAM on test images. Each row: the image (true class → predicted class), then the
# two maps of the predicted class.
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 6  # images shown
n_localisation = 300  # images scored against the true object masks, when the data set has them

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

from camfaith.cams import METHODS, explain
from camfaith.controls import reference_maps
from camfaith.device import model_device
from camfaith.endpoints import answer_table, run_answers, run_comparison
from camfaith.parameters import check_positive_integers
from camfaith.plots import METHOD_LABELS, format_table, map_gallery, method_table, text_table
from camfaith.runs import Run
from camfaith.scoring import localisation_scores
from camfaith.seeds import stream_generator

check_positive_integers(n_images=n_images, n_localisation=n_localisation)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))
maps = explain(model, target_layer, images)
titles = [f"{splits.classes[int(y)]} → {splits.classes[int(p)]}" for y, p in zip(labels, maps["targets"])]
fig = map_gallery(images, {m: maps[m] for m in METHODS}, titles)
glue("gallery_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Do the maps find the object?
#
# On data with known object locations (the synthetic set, and the HAM10000 images with a lesion
# segmentation) we can ask the question the metrics only approximate: does the map lie on the object
# that decides the class? Relevance mass (the share of the map's mass on the mask) and relevance rank
# (the share of its top pixels on the mask; Arras et al. 2022), and the energy-based pointing game
# (the share of its mass in the mask's bounding box; Wang et al. 2020): higher is better for all
# three. Their chance level is fixed by the masks: a map that knows nothing puts the mask's share of
# its mass on the mask. So relevance mass needs no control to be valid; each map is compared with that
# chance level (the row `chance level`), the mask itself is the best possible map (the oracle), and its
# normalised score (map - chance) / (mask - chance) says how far from chance towards the object it
# lies. Relevance-rank ties are broken at random. Other data sets have no masks and skip this step.

# %% tags=["hide-input"]
sample = run.masked_test_images(splits, n_localisation, model_device(model))
if sample is None:
    print(f"{run.dataset} has no ground-truth masks; localisation is not measured.")
else:
    images, labels, ids, masks = sample
    explained = explain(model, target_layer, images)
    maps = reference_maps(images, {m: explained[m] for m in METHODS}, stream_generator(run.seed, "random map"),
                          masks)
    per_image = localisation_scores(maps, masks, ids, labels, explained["targets"], run.seed)
    run.save_scores("localisation", per_image)
    answers = run_answers(run, per_image, "relevance_mass")
    display(text_table(answer_table(answers)), format_table(answers.maps.replace(METHOD_LABELS)))
    table = pd.concat([method_table(run_comparison(run, per_image.assign(all="all"), score, ["all"],
                                                        higher_is_better=True)).assign(score=score)
                       for score in ("relevance_mass", "relevance_rank", "energy_pointing_game")])
    display(format_table(table))
    means = per_image.groupby("method")[["relevance_mass", "relevance_rank", "energy_pointing_game"]].mean()
    display(format_table(means.loc[list(maps)].rename(index=METHOD_LABELS)))

# %% [markdown]
# ## Exercise: the chance level of relevance mass
#
# {ref}`ex-gallery-chance` asks what relevance mass the uniform random map scores. Write down your prediction
# first. Then compute, from the masks alone, the share of each image that its mask covers, as a tensor
# `mask_share` with one value per image (None when the data set has no masks).

# %% [markdown]
# ```{solution-start} ex-gallery-chance
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
mask_share = None if sample is None else masks.float().mean(dim=(1, 2))
### END SOLUTION
if mask_share is None:
    print(f"{run.dataset} has no ground-truth masks, so there is no chance level to compute.")
else:
    random_map = per_image[per_image["method"] == "random"]
    print(f"Mean share of an image covered by its mask: {float(mask_share.mean()):.4f}")
    print(f"The random map's mean relevance mass: {random_map['relevance_mass'].mean():.4f}, "
          f"mean relevance rank: {random_map['relevance_rank'].mean():.4f}")

# %% [markdown]
# Every pixel of the random map has the same expected value, so its expected mass on the object is the object's
# share of the image: the random map's relevance mass is close to the mean mask share, and the closer the more
# pixels an image has. So is its relevance rank, since pixels ranked at random fall on the mask in that share.
# This is the chance level of the localisation table: a map shows that it finds the object only where it beats
# it, and a map below it puts its mass off the object more than chance would.

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["autograder", "remove-cell"]
if sample is None:
    assert mask_share is None, "without masks there is no share to compute"
else:
    assert tuple(mask_share.shape) == (len(masks),), "one share per image"
    random_mass = per_image.loc[per_image["method"] == "random", "relevance_mass"].mean()
    assert abs(float(mask_share.mean()) - random_mass) < 0.05, "the random map's relevance mass is the mask share"
