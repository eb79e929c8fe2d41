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
# # The CAM family: {run}
#
# The study's question asked of every CAM of pytorch-grad-cam that applies to this network: does
# faithfulness by construction predict how the metrics rank the maps?

# %% [markdown]
# The theory ({ref}`family-theory`) places each method on one of three levels for this network's head:
# **location-exact** (each entry of the raw map is that location's share of the logit), **complete**
# (only the map's total is), or **neither**. The measured table checks the levels on this trained
# network: the largest distance of each raw map from the shares of the logit, relative to the largest
# share, and the mean relative distance of its total from the logit minus the bias.
#
# ```{glue} family_levels
# ```
#
# ```{glue:figure} family_gallery_fig
# Every map of the family on test images (true class → predicted class), post-processed as the library
# does (ReLU, min-max, bilinear upsampling).
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 16  # test images scored
regions = [4, 8]  # AOPC heatmap sizes (cells per side), averaged per image as in the AOPC chapter
perturbation = "uniform"  # AOPC's removal: uniform noise in [-1, 1], image_range, road, blur, or a constant
chunk_size = 64  # perturbed (or masked) images per forward pass
radii = [0.05, 0.1]  # Max-Sensitivity radii (L-infinity) ...
samples = [4, 4]  # ... and noise samples per radius
scalings = ["centered"]  # HAAS attribution scalings; centered is its primary endpoint
occlusion_regions = 8  # cells per side of HAAS's occlusion control
n_gallery = 3  # images in the gallery
methods = []  # methods of the family besides Grad-CAM and HiResCAM; empty for all
# (Score-CAM costs one forward pass per channel and image)
gap_stages = True  # follow HiResCAM's lead from the feature grid to the pixels (an AOPC run at the grid's size)

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from camfaith.cams import activations_and_gradients
from camfaith.controls import control_explainers, random_maps, reference_maps
from camfaith.device import model_device
from camfaith.endpoints import ENDPOINTS, per_image_values, run_answers, run_comparison, validity_table
from camfaith.family import FAMILY, faithfulness_level, family_explainer, family_maps, hierarchy_table
from camfaith.metrics import PERTURBATIONS, feature_deletion, feature_occlusion, occlusion_maps
from camfaith.parameters import check_positive_integers, parse_list, parse_removal
from camfaith.plots import METHOD_LABELS, critical_difference, format_table, map_gallery
from camfaith.ranking import level_trend, rank_maps
from camfaith.runs import Run
from camfaith.scoring import aopc_scores, haas_scores, localisation_scores, sensitivity_scores
from camfaith.seeds import stream_generator, stream_seed
from camfaith.stages import STAGES, deletion_stages, stage_gaps
from camfaith.stats import holm

check_positive_integers(n_images=n_images, chunk_size=chunk_size, n_gallery=n_gallery,
                        occlusion_regions=occlusion_regions)
region_list = parse_list(regions, int)
radius_list, sample_list, scaling_list = parse_list(radii, float), parse_list(samples, int), parse_list(scalings, str)
if len(radius_list) != len(sample_list):
    raise ValueError(f"radii and samples need the same length, got {radii!r} and {samples!r}")
perturbation = parse_removal(perturbation, PERTURBATIONS)
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))
chosen = tuple(dict.fromkeys(("gradcam", "hirescam", *parse_list(methods, str)))) if methods else FAMILY
family = family_maps(model, target_layer, images, methods=chosen, raw=True, chunk_size=chunk_size)
targets = family["targets"]
levels = {m: faithfulness_level(m, model.head_type) for m in chosen}
measured = hierarchy_table(model, target_layer, images[:4], chosen)
glue("family_levels", format_table(measured.replace(METHOD_LABELS), 3))
shown = min(n_gallery, len(images))
titles = [f"{splits.classes[int(y)]} → {splits.classes[int(p)]}" for y, p in zip(labels[:shown], targets[:shown])]
fig = map_gallery(images[:shown], {m: family[m][:shown] for m in chosen}, titles)
glue("family_gallery_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Every metric, with its controls
#
# Every map of the family is scored by the primary endpoint of every metric, on the same images and
# noise, with the controls of the metric chapters. **AOPC** (MoRF, random tie order, averaged over the
# heatmap sizes) and **HAAS** (Definition-6 scaling) are valid on this run when their occlusion control
# beats the random map and the random map beats the inverted control. **Max-Sensitivity** is a
# robustness measure (Score-CAM is left out of it: each of its explanations costs a forward pass per
# channel). **Relevance mass** is compared with its chance level, where every test image has an object
# mask. **Feature deletion** ({ref}`feature-deletion`) zeroes the locations of the target layer itself,
# from the most to the least relevant by each raw map, and tracks the logit through the head: on this
# report's one-Linear Flatten head, HiResCAM's order is the best possible one. Its positive control is the
# drop of the logit when each location alone is zeroed, its negative control that map's inversion, and its
# reference a random map on the same grid.

# %% tags=["hide-input"]
maps = {m: family[m] for m in chosen} | reference_maps(images, {m: family[m] for m in ("gradcam", "hirescam")},
                                                        stream_generator(run.seed, "random map"),
                                                        run.test_masks(splits, n_images))
aopc_frame, _ = aopc_scores(model, images, ids, maps, region_list, targets, run.seed, perturbation,
                            chunk_size=chunk_size, occlusion=True)
run.save_scores("family_aopc", aopc_frame)

activations, _, _, _ = activations_and_gradients(model, target_layer, images, targets)
occlusion = feature_occlusion(model.head, activations, targets)
grid = {m: family[f"raw_{m}"] for m in chosen} | {
    "occlusion": occlusion, "occlusion_inverted": -occlusion,
    "random": random_maps(len(images), *occlusion.shape[1:], stream_generator(run.seed, "random map"),
                          occlusion.device)}
tie_seed = stream_seed(run.seed, "tie break")
deletion_frame = pd.concat([pd.DataFrame({"id": ids, "method": name, "feature_deletion": feature_deletion(
    model.head, activations, values, targets, torch.Generator().manual_seed(tie_seed)).scores.cpu().numpy()})
    for name, values in grid.items()], ignore_index=True)
run.save_scores("feature_deletion", deletion_frame)

frames = {"aopc": aopc_frame, "feature_deletion": deletion_frame}

# HAAS: the HA images of every map, beside its occlusion control and the reference maps
occlusion_input = occlusion_maps(model, images, occlusion_regions, "uniform", run.seed, chunk_size, targets)
haas_maps = maps | {"occlusion": occlusion_input, "occlusion_inverted": 1 - occlusion_input}
haas_maps |= {f"raw_{m}": family[f"raw_{m}"] for m in chosen}
frames["haas"] = haas_scores(model, images, labels, ids, haas_maps, scaling_list)
run.save_scores("family_haas", frames["haas"])

# Max-Sensitivity: every map but Score-CAM, whose every explanation costs a pass per channel
explainers = {m: family_explainer(model, target_layer, m, chunk_size) for m in chosen if m != "scorecam"}
explainers |= control_explainers(stream_generator(run.seed, "random map"))
frames["max_sensitivity"] = sensitivity_scores(explainers, images, ids, targets, radius_list, sample_list,
                                               run.seed, chunk_size)
run.save_scores("family_max_sensitivity", frames["max_sensitivity"])

# Relevance mass, where every test image has an object mask
masks = run.test_masks(splits, n_images)
if masks is not None:
    located = {m: family[m] for m in chosen} | {"mask": masks.to(images.device, torch.float32),
                                                "random": maps["random"]}
    frames["relevance_mass"] = localisation_scores(located, masks.to(images.device), ids, labels, targets, run.seed)
    run.save_scores("family_localisation", frames["relevance_mass"])
answers = {metric: run_answers(run, frame, metric) for metric, frame in frames.items()}
display(format_table(pd.DataFrame([{"metric": ENDPOINTS[metric].label, "valid on this run": result.validity["status"]}
                                    for metric, result in answers.items()])))
validity = pd.concat([validity_table(result).assign(metric=ENDPOINTS[metric].label)
                      for metric, result in answers.items()], ignore_index=True)
format_table(validity[["metric", *validity.columns.drop("metric")]], 3)

# %% [markdown]
# Is each map informative? Against the random map (or the chance level), with its interval, and its
# normalised score (0 is chance, 1 the positive control), on every metric:

# %% tags=["hide-input"]
informative = pd.concat([result.maps[result.maps["map"].isin(chosen)].assign(metric=ENDPOINTS[metric].label)
                         for metric, result in answers.items()], ignore_index=True)
informative["level"] = informative["map"].map(levels)
columns = ["metric", "map", "level", "score", "standing", "normalised", "normalised low", "normalised high"]
format_table(informative[columns].replace(METHOD_LABELS), 3)

# %% [markdown]
# ## The ranking, and the hierarchy as a prediction
#
# Within each block (an image, or a lesion or patient where the data set groups its images) the maps of
# the family are ranked on each metric, 1 being best. The Friedman test asks whether the mean ranks
# differ at all, Conover's post-hoc test {cite}`conover1979friedman` (Holm-adjusted) which pairs do;
# maps joined by a bar in the diagram cannot be told apart. Page's trend test {cite}`page1963trend`
# asks whether the levels line up as the theory orders them: location-exact above complete above neither.

# %% tags=["hide-input"]
groups = run.test_groups()
tests, mean_ranks, figures = [], {}, {}
for metric, frame in frames.items():
    values = per_image_values(frame, metric)[0]
    values = values[[m for m in chosen if m in values]]
    ranking = rank_maps(values, ENDPOINTS[metric].higher_is_better, groups)
    trend = level_trend(values, levels, ENDPOINTS[metric].higher_is_better, groups)
    tests.append({"metric": ENDPOINTS[metric].label, "blocks": ranking.blocks,
                  "best": "" if ranking.mean_ranks.nunique() == 1 else METHOD_LABELS[ranking.mean_ranks.index[0]],
                  "Friedman p": ranking.friedman_p,
                  "Page L": trend["statistic"], "Page p": trend["p_value"]})
    mean_ranks[ENDPOINTS[metric].label] = ranking.mean_ranks
    if metric in ("aopc", "feature_deletion"):  # the two the chapter shows as diagrams
        figures[metric] = critical_difference(ranking)
mean_ranks = pd.DataFrame(mean_ranks).rename_axis("map").reset_index()
mean_ranks.insert(1, "level", mean_ranks["map"].map(levels))
display(format_table(pd.DataFrame(tests), 3), format_table(mean_ranks.replace(METHOD_LABELS), 2))
glue("family_cd_aopc_fig", figures["aopc"], display=False)
glue("family_cd_feature_deletion_fig", figures["feature_deletion"], display=False)
for fig in figures.values():
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} family_cd_aopc_fig
# AOPC: the family's mean ranks (1 = best) and the groups Conover's test cannot separate.
# ```
#
# ```{glue:figure} family_cd_feature_deletion_fig
# Feature deletion: the same, on the target layer's grid.
# ```
#
# ## From the feature grid to the pixels
#
# Where AOPC's ranking departs from feature deletion's, the gap between maps that the theory proves on the
# feature grid did not survive the steps input-space AOPC adds. The stages below add those steps one at a
# time on the same images (`camfaith.stages`): the raw map on the grid (feature deletion), the
# library's ReLU and min-max scaling, upsampling to the image (averaged back over the grid's cells), removal
# in pixel space through the whole network (AOPC with one cell per feature location, tracking the logit),
# and the class probability in place of the logit. The first four stages measure drops of the same logit,
# so the share of the first stage's gap that remains is comparable; the last is in probability.

# %% tags=["hide-input"]
if gap_stages:
    stages = deletion_stages(model, activations, images, ids, {m: family[f"raw_{m}"] for m in chosen}, targets,
                             run.seed, perturbation, chunk_size)
    run.save_scores("family_stages", stages)
    gap = run_comparison(run, stages[stages["method"].isin(["gradcam", "hirescam"])], "score", ["stage"],
                              higher_is_better=True).set_index("stage").loc[list(STAGES)]
    gap["Holm p"] = holm(gap["p_value"].to_numpy())  # five tests of one question
    gap["share of the first gap"] = stage_gaps(stages)["share"]
    stage_ranks = pd.DataFrame({stage: rank_maps(part.pivot_table(index="id", columns="method", values="score"),
                                                 True, groups).mean_ranks for stage, part in stages.groupby("stage")})
    gap["HiResCAM's mean rank"] = stage_ranks.loc["hirescam"]
    gap["better"] = gap["better"].replace(METHOD_LABELS)
    glue("family_stages_table", format_table(gap[["mean_difference", "low", "high", "Holm p", "better",
                                                  "share of the first gap", "HiResCAM's mean rank"]]
                                             .rename_axis("stage").reset_index(), 3))
    glue("family_stage_ranks", format_table(stage_ranks[list(STAGES)].rename(index=METHOD_LABELS)
                                            .rename_axis("map").reset_index(), 2))
else:
    skipped = format_table(pd.DataFrame({"stages": ["not run here: the configuration sets gap_stages: false"]}))
    glue("family_stages_table", skipped)
    glue("family_stage_ranks", skipped)

# %% [markdown]
# HiResCAM minus Grad-CAM at each stage, with its interval and test, the share of the feature-grid gap that
# remains, and HiResCAM's mean rank in the family (1 = best):
#
# ```{glue} family_stages_table
# ```
#
# The family's mean ranks at every stage:
#
# ```{glue} family_stage_ranks
# ```
