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
# # Max-Sensitivity: {run}
#
# Max-Sensitivity asks how much an explanation can change when the image moves by at most a radius
# r in every pixel (eq. 8 of Lamprou 2023). A robust map changes little, so **lower is better**. Both
# maps are compared after the same post-processing (ReLU, min-max, resize), as in the original study.
# Max-Sensitivity measures stability under input noise, not faithfulness, so the first of this report's
# three questions has no answer here (no control can validate it), and its verdict is one of robustness:

# %% [markdown]
# ```{glue} sens_answers
# ```
#
# ```{glue:figure} sens_by_radius_fig
# Mean Max-Sensitivity (eq. 8) of every map at each radius, with a normal 95% interval (lower is
# better).
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
run_dir = "results/scratch/synthetic_vgg11"  # a run folder written by the training chapter
device = "auto"  # auto, cpu or cuda
n_images = 32  # test images explained
radii = [0.05, 0.1, 0.2]  # Table 6 of the original study: 0.05, 0.1, 0.2, 0.3, 0.4, 0.5
samples = [5, 5, 5]  # Monte-Carlo samples per radius; Table 6: 20, 20, 30, 30, 40, 40
normalize = False  # divide by the norm of the clean map (Yeh et al.)
chunk_size = 32  # perturbed images explained per pass
noise_seeds = 1  # repeats of the Monte-Carlo noise with seeds run seed, run seed + 1, ...
channels_last = False  # the channels_last memory format for the CAM passes (GPU); they stay float32

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from myst_nb import glue

from camfaith.cams import METHODS, explainer
from camfaith.controls import control_explainers
from camfaith.device import model_device
from camfaith.endpoints import METRICS, answer_table, run_answers, run_comparer, run_comparison
from camfaith.parameters import check_positive_integers, parse_list
from camfaith.plots import METHOD_LABELS, format_table, method_table, metric_by_setting, text_table
from camfaith.runs import Run
from camfaith.scoring import sensitivity_scores
from camfaith.seeds import stream_generator

check_positive_integers(n_images=n_images, chunk_size=chunk_size, noise_seeds=noise_seeds)
radius_list, sample_list = parse_list(radii, float), parse_list(samples, int)
if len(radius_list) != len(sample_list):
    raise ValueError(f"radii and samples need the same length, got {radii!r} and {samples!r}")
if min(radius_list) <= 0 or min(sample_list) < 1:
    raise ValueError("radii must be positive and samples at least 1")
run = Run.open(run_dir)
model, target_layer = run.trained_model(device, channels_last=bool(channels_last))
images, labels, ids = run.test_images(run.load_splits(), n_images, model_device(model))
explainers = {method: explainer(model, target_layer, method) for method in METHODS}
explainers["hirescam_inverted"] = lambda images, targets=None: 1 - explainers["hirescam"](images, targets)
explainers |= control_explainers(stream_generator(run.seed, "random map"))
with torch.no_grad():
    targets = model(images).argmax(1)

# %% [markdown]
# Every map sees the same perturbed images (the generator is re-seeded per radius and map), explained
# for the class predicted on the clean image. Beside the two CAMs, the reference maps: a random map
# drawn afresh at every call (from a random stream of its own), a constant centred Gaussian, the Sobel
# edges of the (perturbed) image, and 1 - HiResCAM. Each is scored as eq. 8 defines it and normalised
# by the norm of the clean map (Yeh et al. 2019).

# %% tags=["hide-input"]
per_image = sensitivity_scores(explainers, images, ids, targets, radius_list, sample_list, run.seed, chunk_size,
                               noise_seeds)
run.save_scores("max_sensitivity", per_image)
means = per_image.groupby(["normalized", "radius", "method"])["max_sensitivity"].mean().unstack()[list(explainers)]
format_table(means.rename(columns=METHOD_LABELS))

# %% [markdown]
# ## 1. Can Max-Sensitivity be validated here? No: it measures robustness
#
# Per image the score is averaged over the radii (eq. 8, not normalised). No control can show that
# Max-Sensitivity tells a faithful map from an unfaithful one, because it does not look at faithfulness:
# a constant map (the centre prior) scores 0, the best possible value, and 1 - HiResCAM scores exactly
# what HiResCAM scores, since the distance between two maps does not change when both are inverted. It
# measures how stable a map is under small input noise, and is reported as that: a robustness measure
# without a validity gate. The random map, drawn afresh at every call, shows what an unstable map scores.

# %% tags=["hide-input"]
answers = run_answers(run, per_image, "max_sensitivity")
glue("sens_answers", text_table(answer_table(answers)), display=False)
format_table(answers.maps.replace(METHOD_LABELS))

# %% [markdown]
# ## Which CAM is more robust?
#
# `mean_difference` is HiResCAM minus Grad-CAM (negative favours HiResCAM) with its 95% BCa bootstrap
# interval and the sign-flip permutation p-value, per radius, for eq. 8 and its normalised form. The
# figure plays the role of Figure 15 of the original study.

# %% tags=["hide-input"]
cams_only = per_image[per_image["method"].isin(METHODS)]
table = method_table(run_comparison(run, cams_only, "max_sensitivity", ["normalized", "radius", "samples"],
                                         higher_is_better=False))
secondary = run_comparer(run, per_image, "max_sensitivity", METRICS["max_sensitivity"].secondary)(*METHODS)
agree = answers.comparison["better"] == secondary["better"]
print("Averaged over the radii, eq. 8 and its normalised form " + ("agree." if agree else "disagree."))
format_table(table)

# %% tags=["hide-input"]
if answers.noise is not None:  # the primary comparison for each noise seed
    display(format_table(answers.noise))

# %% tags=["hide-input"]
summary = (per_image[~per_image["normalized"]].groupby(["method", "radius"])["max_sensitivity"]
           .agg(["mean", "sem"]).reset_index())
summary["low"], summary["high"] = summary["mean"] - 1.96 * summary["sem"], summary["mean"] + 1.96 * summary["sem"]
fig = metric_by_setting(summary.rename(columns={"mean": "max_sensitivity"}), "radius", "max_sensitivity",
                        "mean Max-Sensitivity (eq. 8)")
glue("sens_by_radius_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Exercise: the inverted map
#
# {ref}`ex-sens-inverted` asks what 1 - HiResCAM scores compared with HiResCAM, as eq. 8 defines the metric and
# in its normalised form. Write down your prediction first. Then compute `sens_gap`: the largest absolute
# difference between the eq. 8 scores of the two maps, over all images, radii and noise seeds.

# %% [markdown]
# ```{solution-start} ex-sens-inverted
# :class: dropdown
# ```

# %%
eq8 = per_image[~per_image["normalized"]]
### BEGIN SOLUTION
by_map = eq8.pivot_table(index=["id", "radius", "noise_seed"], columns="method", values="max_sensitivity")
sens_gap = float((by_map["hirescam_inverted"] - by_map["hirescam"]).abs().max())
### END SOLUTION
print(f"Largest difference under eq. 8: {sens_gap:.1e}, for scores up to {eq8['max_sensitivity'].max():.3g}")
normalised = per_image[per_image["normalized"]].groupby("method")["max_sensitivity"].mean()
print(f"Mean normalised score: HiResCAM {normalised['hirescam']:.4f}, "
      f"1 - HiResCAM {normalised['hirescam_inverted']:.4f}")

# %% [markdown]
# Under eq. 8 the two maps score the same, image by image, up to float rounding: both see the same perturbed
# copies (the generator is seeded afresh for every map), and $\lVert (1 - a) - (1 - b) \rVert = \lVert a - b \rVert$.
# The normalised form divides by the norm of the clean map, $\lVert a \rVert$ for HiResCAM and $\lVert 1 - a \rVert$
# for its inverse, so the two scores differ by the factor $\lVert a \rVert / \lVert 1 - a \rVert$: a HiResCAM map
# that is mostly 0 gets the larger normalised score, its inverse, mostly 1, the smaller. Either way the metric
# rates how stable a map is, not whether it points at the evidence.

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["autograder", "remove-cell"]
assert sens_gap <= 1e-4 * max(1.0, float(eq8["max_sensitivity"].max())), \
    "under eq. 8 the inverted map scores what HiResCAM scores"
