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
# # A metric is a model too: {run}
#
# The metric chapters ask whether a metric can tell a good map from a bad one on this run. Two questions
# remain. Is the metric a reliable instrument: does it stay put under noise that leaves the model's
# decisions alone, and react to perturbations that change them? And how many of its hidden choices does
# the verdict survive?

# %% [markdown]
# ```{glue} reliability_summary
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 16  # test images scored
methods = ["gradcam", "hirescam", "xgradcam", "layercam"]  # the maps whose ranking the reliability tests follow
regions = [4, 8]  # AOPC heatmap sizes: the reliability tests use the first, the multiverse all of them
perturbations = ["uniform", 0.0, "blur", "road"]  # AOPC removals of the multiverse (a number is a constant)
radii = [0.05, 0.1]  # Max-Sensitivity radii ...
samples = [4, 4]  # ... and noise samples per radius
n_perturbations = 2  # draws of each reliability test
kinds = ["model", "input", "explanation"]  # the perturbations tested: weights, images, maps
model_noise = [0.001, 1.0]  # std of the multiplicative weight noise: resilience, adversary
input_noise = [0.001, 1.0]  # half-width of the uniform input noise (clamped to [-1, 1]): resilience, adversary
chunk_size = 64  # perturbed images per forward pass

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display
from myst_nb import glue

from camfaith.cams import activations_and_gradients, explain
from camfaith.device import model_device
from camfaith.endpoints import ENDPOINTS
from camfaith.family import family_maps
from camfaith.metrics import PERTURBATIONS, feature_deletion
from camfaith.multiverse import (
    CHOICES,
    aopc_multiverse,
    grid_is_complete,
    haas_multiverse,
    primary_specification,
    robustness,
    sensitivity_multiverse,
    specifications,
)
from camfaith.parameters import check_positive_integers, parse_list, parse_removal
from camfaith.plots import format_table, specification_curve
from camfaith.reliability import default_tests, disrupted, meta_consistency, meta_evaluation, shuffle_order
from camfaith.runs import Run
from camfaith.scoring import aopc_scores, haas_scores, localisation_scores, sensitivity_scores

check_positive_integers(n_images=n_images, n_perturbations=n_perturbations, chunk_size=chunk_size)
method_list = parse_list(methods, str)
region_list, radius_list, sample_list = parse_list(regions, int), parse_list(radii, float), parse_list(samples, int)
removals = [parse_removal(p, PERTURBATIONS) for p in parse_list(perturbations, str)]
run = Run.open(run_dir)
model, target_layer = run.trained_model(device)
splits = run.load_splits()
images, labels, ids = run.test_images(splits, n_images, model_device(model))
masks = run.test_masks(splits, n_images)
target_name = next(name for name, module in model.named_modules() if module is target_layer)

# %% [markdown]
# ## How reliable is each metric here?
#
# The meta-evaluation of {cite:t}`hedstrom2023metaquantus`: four maps of the family are explained and
# scored again under five perturbations, {glue:text}`reliability_draws:d` draws each: small multiplicative
# Gaussian noise on the weights and small uniform noise on the images (which should change nothing:
# *noise resilience*, NR), larger noise of both kinds (which changes decisions, and should change the
# scores: *adversarial reactivity*, AR), and a third adversary that keeps the model and shuffles the
# pixels of every map (a metric that does not react to it cannot see the maps). *IAC* asks per map whether
# the scores of the images moved (the Wilcoxon p-value under noise, one minus it under an adversary), *IEC*
# whether the ranking of the maps held under noise and whether every map looked worse under an adversary;
# only the images whose prediction stayed (NR) or changed (AR) count (their mean number per draw is shown;
# an adversary that changed no prediction leaves AR blank). All are in [0, 1], 1 is ideal, and MC is
# their mean. Each metric is scored on its primary endpoint, at the first heatmap size and radius.


# %% tags=["hide-input"]
def explained(network, batch, disrupt, raw=False):
    """The maps of ``method_list`` by ``network`` (its own target layer), disrupted when asked."""
    target = dict(network.named_modules())[target_name]
    maps = family_maps(network, target, batch, methods=method_list, raw=raw)
    if disrupt is not None:
        keys = [m for m in maps if m != "targets"]
        orders = {key: shuffle_order(maps[key][0].numel(), disrupt) for key in keys}
        maps |= {key: disrupted(maps[key], orders[key]) for key in keys}
    return maps


def scorer(metric):
    def score(network, batch, disrupt):
        maps = explained(network, batch, disrupt, raw=metric == "feature_deletion")
        targets, chosen = maps["targets"], {m: maps[m] for m in method_list}
        if metric == "aopc":
            frame, _ = aopc_scores(network, batch, ids, chosen, region_list[:1], targets, run.seed, "uniform",
                                   chunk_size=chunk_size)
            values = frame.pivot_table(index="id", columns="method", values="aopc")
        elif metric == "max_sensitivity":
            order = None if disrupt is None else shuffle_order(batch.shape[-2] * batch.shape[-1], disrupt)
            target = dict(network.named_modules())[target_name]

            def explainer(method):
                def explain_one(inputs, classes=None):
                    result = family_maps(network, target, inputs, classes, (method,))[method]
                    return result if order is None else disrupted(result, order)
                return explain_one
            frame = sensitivity_scores({m: explainer(m) for m in method_list}, batch, ids, targets, radius_list[:1],
                                       sample_list[:1], run.seed, chunk_size)
            values = frame[~frame["normalized"]].pivot_table(index="id", columns="method", values="max_sensitivity")
        elif metric == "haas":
            frame = haas_scores(network, batch, labels, ids, chosen, ["centered"])
            values = frame.assign(right=frame["ha_prediction"] == frame["label"]).pivot_table(
                index="id", columns="method", values="right").astype(float)
        elif metric == "relevance_mass":
            frame = localisation_scores(chosen, masks.to(batch.device), ids, labels, targets, run.seed)
            values = frame.pivot_table(index="id", columns="method", values="relevance_mass")[method_list]
        else:
            target = dict(network.named_modules())[target_name]
            activations = activations_and_gradients(network, target, batch, targets)[0]
            values = pd.DataFrame({m: feature_deletion(network.head, activations, maps[f"raw_{m}"], targets,
                                                       torch.Generator().manual_seed(run.seed)).scores.cpu().numpy()
                                   for m in method_list}, index=ids)
        return values.reindex(ids)[method_list], targets
    return score


metrics = ["aopc", "max_sensitivity", "haas", "feature_deletion"] + (["relevance_mass"] if masks is not None else [])
kind_list = parse_list(kinds, str)
tests = default_tests(parse_list(model_noise, float), parse_list(input_noise, float))
tests = {name: test for name, test in tests.items() if test.kind in kind_list}
if not tests:
    raise ValueError(f"kinds={kinds!r} names no perturbation; choose among model, input, explanation")
draws = pd.concat([meta_evaluation(scorer(metric), model, images, tests, ENDPOINTS[metric].higher_is_better,
                                   n_perturbations, run.seed).assign(metric=metric) for metric in metrics],
                  ignore_index=True)
run.save_scores("reliability", draws)
reliability = pd.concat([meta_consistency(part).assign(metric=ENDPOINTS[metric].label)
                         for metric, part in draws.groupby("metric", sort=False)], ignore_index=True)
reliability = reliability[["metric", *reliability.columns.drop("metric")]]
glue("reliability_draws", int(n_perturbations), display=False)
format_table(reliability, 2)

# %% [markdown]
# ## How many of its hidden choices does the verdict survive?
#
# HiResCAM minus Grad-CAM under every combination of each metric's hidden choices
# {cite}`simonsohn2020specification`: for AOPC the removal (uniform noise, a constant, a blur, and ROAD where
# the configuration asks for it), the tracked score (the class probability or its logit), the heatmap size
# (and the average over the sizes, the primary endpoint's form), the order of tied cells, the post-processing
# of the map (the library's ReLU and min-max scaling, or the signed map) and its upsampling; for
# Max-Sensitivity the normalisation, the radius and the post-processing; for HAAS the scaling of the map and
# its upsampling.
# Each specification has its interval and test as in the metric chapters; the primary specification is
# fixed in advance, as the configuration's primary endpoint.

# %% tags=["hide-input"]
first = explain(model, target_layer, images, raw=True)
raw, targets = {m: first[f"raw_{m}"] for m in ("gradcam", "hirescam")}, first["targets"]
groups = run.test_groups()
universes = {
    "aopc": (aopc_multiverse(model, images, ids, raw, targets, run.seed, region_list, removals, chunk_size), None),
    "max_sensitivity": (sensitivity_multiverse(model, target_layer, images, ids, targets, radius_list, sample_list,
                                               run.seed, chunk_size), None),
    "haas": (haas_multiverse(model, images, labels, ids, raw), "right"),
}
tables, verdicts, figures = [], [], {}
for metric, (frame, denominator) in universes.items():
    primary = primary_specification(metric)
    table = specifications(frame, CHOICES[metric], ENDPOINTS[metric].higher_is_better, run.seed, groups, denominator)
    assert grid_is_complete(table, CHOICES[metric])
    held, flips = robustness(table, primary)
    worst = flips.sort_values("flipped", ascending=False).iloc[0]
    verdicts.append({"metric": ENDPOINTS[metric].label, "primary verdict": held["verdict"],
                     "specifications": held["specifications"], "agree": held["agree"],
                     "flipped most by": f"{worst['choice']} = {worst['value']} ({worst['flipped']:.0%})"
                     if worst["flipped"] > 0 else "no choice"})
    tables.append(table.assign(metric=metric))
    figures[metric] = specification_curve(table, list(CHOICES[metric]), primary,
                                          f"HiResCAM - Grad-CAM ({ENDPOINTS[metric].label})")
run.save_scores("multiverse", pd.concat(tables, ignore_index=True))
verdicts = pd.DataFrame(verdicts)
display(format_table(verdicts, 2))
glue("multiverse_aopc_fig", figures["aopc"], display=False)
glue("multiverse_max_sensitivity_fig", figures["max_sensitivity"], display=False)
glue("multiverse_haas_fig", figures["haas"], display=False)
for fig in figures.values():
    plt.close(fig)
summary = verdicts.merge(reliability.groupby("metric", as_index=False)["MC"].mean(), on="metric", how="outer")
glue("reliability_summary", format_table(summary.rename(columns={"MC": "mean MC"}), 2), display=False)

# %% [markdown]
# ```{glue:figure} multiverse_aopc_fig
# AOPC's specification curve: HiResCAM minus Grad-CAM with its 95% interval under every specification,
# sorted (blue favours HiResCAM, orange Grad-CAM, grey neither); the ring marks the primary one. Below,
# the choices each specification made.
# ```
#
# ```{glue:figure} multiverse_max_sensitivity_fig
# Max-Sensitivity's specification curve (lower is better, so a negative difference favours HiResCAM).
# ```
#
# ```{glue:figure} multiverse_haas_fig
# HAAS's specification curve.
# ```
