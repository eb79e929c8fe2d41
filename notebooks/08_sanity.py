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
# # Sanity checks: {run}
#
# Does each map depend on the model's parameters? A map that looks the same whatever the network has
# learnt explains the image, not the decision. The model-parameter randomisation test (Adebayo et al.
# 2018) re-initialises the layers one by one, from the class scores towards the input, and measures how
# similar each map stays to the trained network's map, so **lower similarity is better**.

# %% [markdown]
# ```{glue:figure} sanity_curves_fig
# Similarity of each map to the trained network's map as the layers are re-initialised, from the class
# scores towards the input: mean Spearman rank correlation and SSIM with a band of one standard error
# (lower is better).
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images explained
n_examples = 3  # images shown as the layers are randomised

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from camfaith.device import model_device
from camfaith.parameters import check_positive_integers
from camfaith.plots import format_table
from camfaith.runs import Run
from camfaith.sanity import cascade_grid, cascade_maps, randomisation_test, similarity_curves, trained_identity

check_positive_integers(n_images=n_images, n_examples=n_examples)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
images, labels, ids = run.test_images(run.load_splits(), n_images, model_device(model))

# %% [markdown]
# Every step re-initialises one more layer and keeps the earlier ones random; the maps explain the class
# the *trained* network predicts. Similarity per image: Spearman rank correlation and SSIM of the maps as
# shown (in [0, 1]). The weights are drawn from a generator seeded with the run's seed.

# %% tags=["hide-input"]
per_image = randomisation_test(model, target_layer, images, torch.Generator().manual_seed(run.seed), ids=ids)
run.save_scores("sanity", per_image)

fig = similarity_curves(per_image)
glue("sanity_curves_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# After the last step every layer is random. A map that is constant (all zero after the ReLU) has no
# ranking: its Spearman correlation is undefined, left out of the means and counted in `constant`.

# %% tags=["hide-input"]
last = per_image[per_image["step"] == per_image["step"].max()]
table = last.groupby("method").agg(spearman=("spearman", "mean"), ssim=("ssim", "mean"),
                                   constant=("spearman", lambda s: int(s.isna().sum())))
format_table(table)

# %% [markdown]
# ```{glue:figure} sanity_grid_fig
# The same randomised networks (same seed) on a few images: one row per image and method, one column per
# step, the trained network first.
# ```

# %% tags=["hide-input"]
examples = images[:n_examples]
steps = list(cascade_maps(model, target_layer, examples, torch.Generator().manual_seed(run.seed)))
fig = cascade_grid(examples, steps)
glue("sanity_grid_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Proposition 4 on the trained network
#
# On a Flatten head, the raw HiResCAM map sums to the class score minus the bias (eq. 20 of Lamprou
# 2023); Grad-CAM's need not. Per image: |sum(map) - (score - bias)| / |score - bias|.

# %% tags=["hide-input"]
identity = trained_identity(model, target_layer, images, ids=ids)
run.save_scores("identity", identity)
print(model.theory)
format_table(identity[["hirescam_residual", "gradcam_residual"]].describe(), 6)
