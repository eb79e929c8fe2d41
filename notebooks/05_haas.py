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
# largest magnitude. The three questions of this chapter, on the primary endpoint (the Definition-6
# scaling):

# %% [markdown]
# ```{glue} haas_answers
# ```
#
# ```{glue:figure} haas_examples_fig
# HA images (eq. 9; Figure 20 of the original study): test images with their true class, then the
# images each method's map produces under the first scaling.
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images scored
scalings = ["centered", "unit", "signed"]  # the first is shown in the examples
n_examples = 4  # HA images shown
occlusion_regions = 4  # cells per side of the occlusion map, the positive control
chunk_size = 128  # images per forward pass of the occlusion map
precision = "float32"  # float32, or bfloat16 (CUDA autocast) for the scoring passes; the CAMs stay float32
channels_last = False  # the channels_last memory format (faster convolutions on a GPU)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from camfaith.cams import METHODS, explain
from camfaith.controls import reference_maps
from camfaith.device import check_precision, model_device
from camfaith.endpoints import answer_table, run_answers, validity_table
from camfaith.metrics import ATTRIBUTION_SCALINGS, ha_attribution, ha_images, occlusion_maps
from camfaith.parameters import check_choice, check_positive_integers, parse_list
from camfaith.plots import METHOD_LABELS, format_table, image_rows, text_table
from camfaith.runs import Run
from camfaith.scoring import haas_scores, haas_table
from camfaith.seeds import stream_generator

check_positive_integers(n_images=n_images, n_examples=n_examples, occlusion_regions=occlusion_regions,
                        chunk_size=chunk_size)
scaling_list = parse_list(scalings, str)
for scaling in scaling_list:
    check_choice("scaling", scaling, ATTRIBUTION_SCALINGS)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device, bool(channels_last))
check_precision(precision, bool(channels_last), model_device(model))
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))

# %% [markdown]
# The maps explain the predicted class; the signed scaling needs the raw maps at the target layer,
# which come from the same single pass. Every other map is scored like the CAMs: each CAM's inversion;
# the positive control, an occlusion map (per cell of a coarse grid, the drop of the predicted class's
# probability when that cell alone is replaced by uniform noise: it uses the model but neither CAM) and
# its inversion; the object mask and its inversion where the data have masks; and the random map
# (from a random stream of its own), the centred Gaussian and the Sobel edges. They have no raw form, so
# no signed score.

# %% tags=["hide-input"]
explained = explain(model, target_layer, images, raw=True)
maps = reference_maps(images, {m: explained[m] for m in METHODS}, stream_generator(run.seed, "random map"),
                      run.test_masks(splits, n_images))
occlusion = occlusion_maps(model, images, occlusion_regions, "uniform", run.seed, chunk_size, explained["targets"],
                           precision)
maps |= {"occlusion": occlusion, "occlusion_inverted": 1 - occlusion}
maps |= {key: explained[key] for key in ("raw_gradcam", "raw_hirescam")}
per_image = haas_scores(model, images, labels, ids, maps, scaling_list, precision)
run.save_scores("haas", per_image)
answers = run_answers(run, per_image, "haas")
glue("haas_answers", text_table(answer_table(answers)), display=False)
scores = haas_table(per_image)
format_table(scores.rename(columns=METHOD_LABELS))

# %% [markdown]
# ## 1. Is HAAS valid on this run?
#
# With the Definition-6 scaling: HAAS is *valid* here when the occlusion control beats the random map and
# the random map beats the inverted occlusion control, with paired 95% BCa intervals (and sign-flip
# tests) that exclude zero. On a network that is right on nearly every image, HAAS can only stay at or fall
# below 1, and there is little room to tell any map from another.

# %% tags=["hide-input"]
if not (per_image["prediction"] == per_image["label"]).any():
    print(f"HAAS is undefined on this run: the network gets none of its {len(images)} test images right, so eq. 10 "
          "divides by zero. No verdict rests on it.")
format_table(validity_table(answers))

# %% [markdown]
# ## 2. Is each map informative?
#
# Each map's HAAS, its difference from the random map's with the interval, its normalised score
# (map - random) / (occlusion - random), and whether it beats its own inversion.

# %% tags=["hide-input"]
format_table(answers.maps.replace(METHOD_LABELS))

# %% tags=["hide-input"]
shown = slice(0, min(n_examples, len(images)))
rows = {"original": images[shown]}
for method in METHODS:
    source = maps[f"raw_{method}" if scaling_list[0] == "signed" else method]
    attribution = ha_attribution(source[shown], images.shape[-2:], scaling_list[0])
    rows[f"HA, {METHOD_LABELS[method]}"] = ha_images(images[shown], attribution)
fig = image_rows(rows, titles=[splits.classes[int(y)] for y in labels[shown]])
glue("haas_examples_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Exercise: the largest possible HAAS
#
# {ref}`ex-haas-ceiling` asks for the largest HAAS this run can show. Write down your prediction first. Then
# compute the network's accuracy on the scored (original) images as `accuracy`, and the largest possible HAAS
# as `ceiling` (infinite when no image is classified correctly).

# %% [markdown]
# ```{solution-start} ex-haas-ceiling
# :class: dropdown
# ```

# %%
### BEGIN SOLUTION
originals = per_image.drop_duplicates("id")  # the predictions on the originals are the same for every map
accuracy = float((originals["prediction"] == originals["label"]).mean())
ceiling = 1 / accuracy if accuracy > 0 else float("inf")
### END SOLUTION
print(f"Accuracy on the {len(images)} scored images: {accuracy:.4f}; HAAS can reach at most {ceiling:.4f}")
format_table(scores.rename(columns=METHOD_LABELS))

# %% [markdown]
# HAAS divides the accuracy on the HA images by the accuracy on the originals (eq. 10). The first is at most 1,
# so HAAS is at most 1 / accuracy. A network that is right on every scored image leaves a ceiling of 1: its maps
# can keep its accuracy or lose some, never show that they help. There is room above 1 only where the network
# errs, which is why the default study includes the `clutter` variant of the synthetic data.

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["autograder", "remove-cell"]
right = per_image.groupby("id")[["prediction", "label"]].first()
assert accuracy == float((right["prediction"] == right["label"]).mean()), "accuracy on the original images"
achieved = torch.tensor(scores.to_numpy(dtype=float))
# HAAS is computed in float32: a HAAS at the ceiling may exceed it by float32 rounding
assert bool((achieved[~achieved.isnan()] <= ceiling * (1 + 1e-6)).all()), "no HAAS exceeds the ceiling"
assert ceiling == float("inf") if accuracy == 0 else abs(ceiling * accuracy - 1) < 1e-12, "1 / accuracy"
