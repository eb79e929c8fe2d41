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
# cells first, so **higher is better**. Three questions are answered separately, on the primary endpoint
# (MoRF removal averaged over the heatmap sizes, ties between equal cells broken at random):

# %% [markdown]
# ```{glue} aopc_answers
# ```
#
# ```{glue:figure} aopc_curves_fig
# Mean MoRF curves of the CAMs, the occlusion control and the random map at each heatmap size: the
# probability of the predicted class as cells are removed from the most to the least relevant, with a
# band of one standard error. The faster a curve falls, the higher the map's AOPC; dotted, each map's
# inversion (the least relevant first).
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images explained
regions = [4, 8]  # heatmap sizes (cells per side); the original study used 4, 8, 11, 14 at 224 px
perturbation = "uniform"  # uniform noise in [-1, 1], image_range, road, blur, or a constant such as 0.0
chunk_size = 64  # perturbed images per forward pass (bounds the memory)
noise_seeds = 1  # repeats of the removal noise with seeds run seed, run seed + 1, ...
precision = "float32"  # float32, or bfloat16 (CUDA autocast) for the scoring passes; the CAMs stay float32
channels_last = False  # the channels_last memory format (faster convolutions on a GPU)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

from camfaith.cams import METHODS, explain
from camfaith.controls import reference_maps
from camfaith.device import check_precision, model_device
from camfaith.endpoints import METRICS, answer_table, ordered, run_answers, run_comparison, validity_table
from camfaith.metrics import PERTURBATIONS
from camfaith.parameters import check_positive_integers, parse_list, parse_removal
from camfaith.plots import METHOD_LABELS, format_table, method_table, metric_by_setting, morf_panels, text_table
from camfaith.runs import Run
from camfaith.scoring import aopc_scores, morf_minus_lerf, tie_table
from camfaith.seeds import stream_generator

check_positive_integers(n_images=n_images, chunk_size=chunk_size, noise_seeds=noise_seeds)
region_list = parse_list(regions, int)
perturbation = parse_removal(perturbation, PERTURBATIONS)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device, bool(channels_last))
check_precision(precision, bool(channels_last), model_device(model))
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))
explained = explain(model, target_layer, images)
targets = explained["targets"]
maps = reference_maps(images, {m: explained[m] for m in METHODS}, stream_generator(run.seed, "random map"),
                      run.test_masks(splits, n_images))

# %% [markdown]
# Every map is scored on the same images against the same noise. Beside the two CAMs and their
# inversions (1 - map: the least relevant cells first, whose MoRF curve is the map's own LeRF curve):
# the **positive control**, an occlusion map on the same grid (for each cell, the drop of the tracked
# probability when that cell alone is removed by the same noise: it uses the model but neither CAM) and
# its inversion; the **oracle**, the object mask and its inversion, where the data have masks; and three
# reference maps that know nothing of the model's decision: a uniform random map (drawn from a random
# stream of its own), a centred Gaussian and the Sobel edges of the image.

# %% tags=["hide-input"]
per_image, curves = aopc_scores(model, images, ids, maps, region_list, targets, run.seed, perturbation,
                                chunk_size=chunk_size, noise_seeds=noise_seeds, occlusion=True, precision=precision)
stable_ties, _ = aopc_scores(model, images, ids, {m: maps[m] for m in METHODS}, region_list[:1], targets, run.seed,
                             perturbation, tie_break="stable", chunk_size=chunk_size, precision=precision)
run.save_scores("aopc", pd.concat([per_image, stable_ties], ignore_index=True))
answers = run_answers(run, per_image, "aopc")
glue("aopc_answers", text_table(answer_table(answers)), display=False)
map_order = ordered(per_image["method"].unique())
means = per_image.groupby(["regions", "method"])["aopc"].mean().unstack()[map_order]
format_table(means.rename(columns=METHOD_LABELS))

# %% [markdown]
# ## 1. Is AOPC valid on this run?
#
# Per image AOPC is averaged over the heatmap sizes. AOPC is *valid* here when the occlusion control beats
# the random map and the random map beats the inverted occlusion control, with paired 95% intervals that
# exclude zero: then it can tell a good ranking from a bad one on these images, with maps that know nothing
# of the CAMs. Where the data have masks, the oracle's row says whether the object mask ranks cells better
# than chance too.

# %% tags=["hide-input"]
format_table(validity_table(answers).replace(METHOD_LABELS))

# %% [markdown]
# ## 2. Is each map informative?
#
# Each map against the random map (`minus random`, with its interval, and where that leaves it), its
# normalised score, (map - random) / (occlusion - random), with its interval (0 is chance, 1 the occlusion
# control), whether it beats its own inversion (MoRF against LeRF), and on how many images the map is
# degenerate (all zero, or constant: no order of its own, so its cells go in the random tie order).

# %% tags=["hide-input"]
ties = tie_table(maps, region_list[0])
degenerate = ties.rename(columns={"method": "map"}).drop(columns="tied cells")
informative = answers.maps.merge(degenerate, on="map", how="left")
format_table(informative.replace(METHOD_LABELS))

# %% [markdown]
# ## 3. HiResCAM against Grad-CAM
#
# `mean_difference` is HiResCAM minus Grad-CAM with a 95% BCa bootstrap interval (`low`, `high`) and a
# sign-flip permutation p-value, per heatmap size; the opening table gives it on the primary endpoint,
# and the summary adjusts its p-value over every primary test of the configuration. Below, the mean MoRF
# curves (Figure 14 of the original study shows the CAMs' 8x8 ones).

# %% tags=["hide-input"]
primary = per_image[per_image["tie_break"] == "random"]
table = method_table(run_comparison(run, primary, "aopc", ["regions"], METRICS["aopc"].higher_is_better))
format_table(table)

# %% tags=["hide-input"]
if answers.noise is not None:  # the same comparison (averaged over the sizes) for each noise seed
    display(format_table(answers.noise))

# %% tags=["hide-input"]
shown = [*METHODS, "occlusion", "random", *(f"{m}_inverted" for m in (*METHODS, "occlusion"))]
fig = morf_panels({size: {m: curves[(size, m, "morf")] for m in shown} for size in region_list})
glue("aopc_curves_fig", fig, display=False)
plt.close(fig)

# %% tags=["hide-input"]
fig = metric_by_setting(means.stack().rename("aopc").reset_index(), "regions", "aopc", "mean AOPC")
glue("aopc_by_size_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} aopc_by_size_fig
# Mean AOPC of every map at each heatmap size (higher is better).
# ```
#
# ## Does the verdict depend on how cells are removed, and in which order?
#
# At the smallest heatmap size, the two CAMs again, with three removals (uniform noise, the constant
# 0, and noisy linear imputation, ROAD, which keeps the removed image closer to the data) and three
# orders: MoRF (higher is better), LeRF (least relevant first; lower is better) and the area between
# the two curves, MoRF - LeRF (higher is better).

# %% tags=["hide-input"]
cams_only = {m: maps[m] for m in METHODS}
removal = []
for fill in ("uniform", 0.0, "road"):
    frame, _ = aopc_scores(model, images, ids, cams_only, region_list[:1], targets, run.seed, fill,
                           orders=("morf", "lerf"), chunk_size=chunk_size, precision=precision)
    removal.append(pd.concat([frame, morf_minus_lerf(frame)]).assign(removal=str(fill)))
removal = pd.concat(removal, ignore_index=True)
run.save_scores("aopc_removal", removal)
verdicts = pd.concat([
    run_comparison(run, group, "aopc", ["removal", "order"], higher_is_better=order != "lerf")
    for order, group in removal.groupby("order")], ignore_index=True)
verdicts = method_table(verdicts)[["removal", "order", "Grad-CAM", "HiResCAM", "mean_difference", "low", "high",
                                   "better"]]
format_table(verdicts)

# %% [markdown]
# ## Ties and degenerate maps
#
# After the ReLU a CAM is often zero over large areas, and cells of equal value have no order of their
# own. A map that is zero everywhere proposes no order at all: the primary endpoint then removes its
# cells in a random (seeded) order, so it scores like the random map. The stable sort of the original
# code removes tied cells from the top left instead, a raster order that nobody proposed. Per map: how
# many of the images have an all-zero or a constant map, and the mean share of tied cells; then the
# verdict at the smallest size under each tie-break.

# %% tags=["hide-input"]
format_table(ties.replace(METHOD_LABELS))

# %% tags=["hide-input"]
tie_verdicts = pd.concat([
    method_table(run_comparison(run, frame[frame["regions"] == region_list[0]], "aopc", ["regions"],
                                     higher_is_better=True)).assign(ties=name)
    for name, frame in (("random", primary), ("stable", stable_ties))])
format_table(tie_verdicts)

# %% [markdown]
# ## Exercise: the inverted map
#
# {ref}`ex-aopc-inverted` asks where 1 - HiResCAM lands under MoRF AOPC, and how its MoRF AOPC relates to the
# LeRF AOPC of HiResCAM. Write down your prediction first. Then compute the per-image LeRF AOPC of HiResCAM at
# the smallest heatmap size, with this chapter's removal and its first noise seed (`run.seed`), as a Series
# `lerf_hirescam` indexed by image id.

# %% [markdown]
# ```{solution-start} ex-aopc-inverted
# :class: dropdown
# ```

# %%
size = region_list[0]
### BEGIN SOLUTION
lerf, _ = aopc_scores(model, images, ids, {"hirescam": maps["hirescam"]}, [size], targets, run.seed, perturbation,
                      orders=("lerf",), chunk_size=chunk_size, precision=precision)  # random ties: the chapter's keys
lerf_hirescam = lerf.set_index("id")["aopc"]
### END SOLUTION
first_draw = per_image[(per_image["regions"] == size) & (per_image["noise_seed"] == run.seed)]
morf = first_draw.pivot(index="id", columns="method", values="aopc")[map_order]
print(f"Mean MoRF AOPC with {size} x {size} cells, highest first:")
print(morf.mean().rename(index=METHOD_LABELS).rename_axis(None).sort_values(ascending=False).round(4).to_string())
gap = (morf["hirescam_inverted"] - lerf_hirescam.reindex(morf.index)).abs()
print(f"|MoRF AOPC of 1 - HiResCAM - LeRF AOPC of HiResCAM| per image: median {gap.median():.1e}, "
      f"largest {gap.max():.1e}")

# %% [markdown]
# 1. The inverted map ranks the least relevant cells first, so where HiResCAM ranks the cells well the
#    probability falls late and 1 - HiResCAM scores lowest of all maps, below the random map. Where it does
#    not, HiResCAM's ranking carries little on this run; the validity table above says whether AOPC can tell a
#    good ranking from a bad one at all.
# 2. Pooling is linear, so the cell means of 1 - HiResCAM are 1 minus those of HiResCAM. Sorting them in
#    decreasing order sorts HiResCAM's in increasing order, and both sorts first shuffle the cells by the same
#    random tie keys, so tied cells keep the same order in both. With the same noise the two removal sequences
#    are the same: per image, the MoRF AOPC of the inverted map is the LeRF AOPC of HiResCAM, up to the float
#    rounding of cells whose means differ by less than it. This is why each CAM's inversion is its own negative
#    control: MoRF against LeRF.

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["autograder", "remove-cell"]
assert lerf_hirescam.index.is_unique and set(lerf_hirescam.index) == set(morf.index), "one LeRF AOPC per image"
assert (morf["hirescam_inverted"] - lerf_hirescam.reindex(morf.index)).abs().median() < 1e-6, \
    "the MoRF AOPC of 1 - HiResCAM is the LeRF AOPC of HiResCAM"
