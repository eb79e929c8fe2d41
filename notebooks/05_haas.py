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
# # HAAS: {run}
#
# HAAS feeds the model images whose pixels were emphasised where the map is positive and damped where
# it is negative (eq. 9 of Lamprou 2023), and divides the accuracy on these HA images by the accuracy
# on the originals (eq. 10). Above 1 the map helps the model: **higher is better**. How the map
# becomes an attribution in [-1, 1] is a choice the metric hides. Definition 6 of the original study
# scales it to [-1, 1] (`centered`: 2a - 1), our headline; its code used the CAM in [0, 1] as is
# (`unit`), which can only amplify pixels, never damp them; `signed` divides the raw map by its
# largest magnitude.

# %% tags=["parameters", "remove-cell"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images scored
scalings = "centered,unit,signed"  # the first is shown in the examples
n_examples = 4  # HA images shown

# %%
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from camfaith.cams import METHODS, explain
from camfaith.controls import control_maps
from camfaith.device import model_device
from camfaith.endpoints import discriminates, discrimination
from camfaith.metrics import ATTRIBUTION_SCALINGS, ha_attribution, ha_images
from camfaith.parameters import check_choice, check_positive_integers, parse_list
from camfaith.plots import METHOD_LABELS, image_rows
from camfaith.runs import Run
from camfaith.scoring import haas_scores, haas_table

check_positive_integers(n_images=n_images, n_examples=n_examples)
scaling_list = parse_list(scalings, str)
for scaling in scaling_list:
    check_choice("scaling", scaling, ATTRIBUTION_SCALINGS)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))

# %% [markdown]
# The maps explain the predicted class; the signed scaling needs the raw maps at the target layer,
# which come from the same single pass. The controls (random map, centred Gaussian, Sobel edges,
# 1 - HiResCAM) are scored like the CAMs; they have no raw form, so no signed score.

# %%
maps = explain(model, target_layer, images, raw=True)
maps = {key: maps[key] for key in (*METHODS, "raw_gradcam", "raw_hirescam")}
maps |= control_maps(images, maps["hirescam"], torch.Generator().manual_seed(run.seed))
per_image = haas_scores(model, images, labels, ids, maps, scaling_list)
run.save_scores("haas", per_image)
scores = haas_table(per_image)
glue("haas_table", scores.rename(columns=METHOD_LABELS).round(4), display=False)
for scaling in scores.index:
    for method in METHODS:
        glue(f"haas_{scaling}_{method}", float(scores.loc[scaling, method]), display=False)
scores.rename(columns=METHOD_LABELS).round(4)

# %% [markdown]
# ## Can HAAS tell an informative map from an uninformative one here?
#
# With the Definition-6 scaling: both CAMs must beat the random map and the inverted map with paired
# 95% intervals (images resampled, McNemar's test) that exclude zero. On a network that is right on
# nearly every image, HAAS can only stay at or fall below 1, and there is little room to discriminate.

# %%
controls = discrimination(run.comparer(per_image, "haas"))
glue("haas_discriminates", discriminates(controls), display=False)
print(f"HAAS discriminates on this run: {discriminates(controls)}")
glue("haas_controls", controls.replace(METHOD_LABELS).round(4), display=False)
controls.replace(METHOD_LABELS).round(4)

# %% [markdown]
# Examples of HA images (Figure 20 of the original study): the originals, then the images each
# method's map produces under the first scaling.

# %%
shown = slice(0, min(n_examples, len(images)))
rows = {"original": images[shown]}
for method in METHODS:
    source = maps[f"raw_{method}" if scaling_list[0] == "signed" else method]
    attribution = ha_attribution(source[shown], images.shape[-2:], scaling_list[0])
    rows[f"HA, {METHOD_LABELS[method]}"] = ha_images(images[shown], attribution)
fig = image_rows(rows, titles=[splits.classes[int(y)] for y in labels[shown]])
glue("haas_examples_fig", fig)
plt.close(fig)
