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
# # Summary of the study
#
# This chapter gathers every run of the configuration. For each run and metric it gives the three
# answers of the metric chapters, on the primary endpoint: is the metric valid on this run (can it tell
# a good ranking from a bad one, judged by controls that know nothing of the CAMs)? Is each CAM
# informative (better than a random map), and where does it sit between chance (0) and the positive
# control (1)? Which CAM does the metric favour, after Holm's adjustment over every primary test of the
# configuration?

# %% [markdown]
# ```{glue} summary_answers
# ```
#
# ```{glue:figure} summary_forest_fig
# :name: fig-summary-forest
#
# Each run's HiResCAM minus Grad-CAM on the primary endpoint of each metric (Max-Sensitivity in its
# normalised form, which does not grow with the image size), with its 95% interval; the pooled estimate
# across networks where the metric is valid (random effects with the Hartung-Knapp-Sidik-Jonkman
# interval, and the prediction interval for a new network dashed; replicates of one network, trained with
# other seeds on the same images, count once); and, as hollow markers, the same difference of two means
# for each model of Table 10 of the original study.
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
results_dir = "results/default"  # the folder of one configuration's runs
runs = ["synthetic_vgg11"]  # run names, by default dataset_arch
configuration = "default"  # the configuration's name, shown on the front page
primary = {}  # overrides of primary endpoints, e.g. {"haas.scaling": "unit"} (camfaith.endpoints.primary_settings)

# %% tags=["hide-input"]
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

from camfaith.endpoints import ENDPOINTS
from camfaith.parameters import parse_list
from camfaith.plots import METHOD_LABELS, accuracy_scatter, forest_plot, format_table
from camfaith.ranking import FAMILY_SCORES, family_ranks
from camfaith.runs import Run
from camfaith.stages import STAGES, stage_gaps
from camfaith.summary import (
    answer_table,
    collect,
    counts_table,
    forest_table,
    haas_extremes,
    published_directions,
    reference_table,
    reliability_table,
    replicate_agreement,
    sanity_extremes,
    secondary_flips,
    side_by_side,
    verdict_counts,
)

summary = collect(results_dir, parse_list(runs, str), primary)
glue("summary_answers", format_table(answer_table(summary.verdicts), 3), display=False)
forest = forest_table(summary.verdicts)
fig = forest_plot(forest)
glue("summary_forest_fig", fig, display=False)
plt.close(fig)
format_table(answer_table(summary.verdicts), 3)

# %% [markdown]
# Counted over networks (the replicates of one network count once), per metric: how many networks were
# scored, on how many the metric is valid, on how many each CAM beats the random map (or the chance
# level), and how the verdicts fall. These numbers are the ones the next page and the discussion cite.

# %% tags=["hide-input"]
glue("summary_configuration", configuration, display=False)
glue("summary_n_runs", len(summary.runs), display=False)
glue("summary_table", format_table(summary.runs, 3), display=False)
counts = verdict_counts(summary.verdicts)
glue("summary_n_networks", int(counts["networks"].max()), display=False)
glue("summary_counts", format_table(counts_table(counts)), display=False)
glue("summary_aopc_networks", int(counts.loc["aopc", "networks"]), display=False)
glue("summary_aopc_valid", int(counts.loc["aopc", "valid"]), display=False)
glue("summary_aopc_gradcam_informative", int(counts.loc["aopc", "gradcam_informative"]), display=False)
glue("summary_aopc_hirescam_informative", int(counts.loc["aopc", "hirescam_informative"]), display=False)
glue("summary_aopc_hirescam", int(counts.loc["aopc", "hirescam"]), display=False)
glue("summary_aopc_gradcam", int(counts.loc["aopc", "gradcam"]), display=False)
glue("summary_aopc_neither", int(counts.loc["aopc", "neither"]), display=False)
glue("summary_haas_networks", int(counts.loc["haas", "networks"]), display=False)
glue("summary_haas_valid", int(counts.loc["haas", "valid"]), display=False)
glue("summary_haas_gradcam_informative", int(counts.loc["haas", "gradcam_informative"]), display=False)
glue("summary_haas_hirescam_informative", int(counts.loc["haas", "hirescam_informative"]), display=False)
glue("summary_haas_hirescam", int(counts.loc["haas", "hirescam"]), display=False)
glue("summary_haas_gradcam", int(counts.loc["haas", "gradcam"]), display=False)
glue("summary_haas_neither", int(counts.loc["haas", "neither"]), display=False)
glue("summary_relevance_mass_networks", int(counts.loc["relevance_mass", "networks"]), display=False)
glue("summary_relevance_mass_gradcam_informative", int(counts.loc["relevance_mass", "gradcam_informative"]),
     display=False)
glue("summary_relevance_mass_hirescam_informative", int(counts.loc["relevance_mass", "hirescam_informative"]),
     display=False)
glue("summary_relevance_mass_hirescam", int(counts.loc["relevance_mass", "hirescam"]), display=False)
glue("summary_relevance_mass_gradcam", int(counts.loc["relevance_mass", "gradcam"]), display=False)
glue("summary_relevance_mass_neither", int(counts.loc["relevance_mass", "neither"]), display=False)
flips = secondary_flips(summary.verdicts)
glue("summary_max_sensitivity_secondary_flips", int(flips["max_sensitivity"]), display=False)
glue("summary_haas_secondary_flips", int(flips["haas"]), display=False)
extremes = sanity_extremes(summary.runs)  # NaN where no run has a sanity chapter
glue("summary_prop4_hirescam_max", extremes["prop4_hirescam_max"], display=False)
glue("summary_prop4_gradcam_median", extremes["prop4_gradcam_median"], display=False)
glue("summary_randomised_spearman_max", extremes["randomised_spearman_max"], display=False)
pooled = forest[forest["source"] == "pooled"].reindex(columns=["metric", "label", "difference", "low", "high",
                                                              "pred_low", "pred_high"])
if pooled.empty:
    pooled = pd.DataFrame({"pooled": ["no metric is valid on two or more networks of this configuration"]})
glue("summary_pooled", format_table(pooled), display=False)
format_table(counts.reset_index(names="metric"))

# %% [markdown]
# ## Every map on every run
#
# Each map's standing against the random map (or the chance level, for relevance mass), its normalised
# score with its interval, and whether it beats its own inversion, per run and metric.

# %% tags=["hide-input"]
glue("summary_maps", format_table(summary.maps.replace(METHOD_LABELS), 3))

# %% [markdown]
# ## The CAM family across the networks
#
# Each map's mean rank (1 = best) on AOPC and on feature deletion, averaged over the networks (replicates of
# one network first averaged), with the level the theory gives it; and Page's trend test of location-exact
# above complete above neither, with the networks as blocks. Does faithfulness by construction predict the
# metrics' ranking?

# %% tags=["hide-input"]
all_runs = [Run.open(Path(results_dir) / name) for name in parse_list(runs, str)]
family_mean_ranks, family_tests = family_ranks(all_runs, {m: ENDPOINTS[m].label for m in FAMILY_SCORES})
if family_mean_ranks.empty:  # the pages cite these keys whatever ran
    family_mean_ranks = family_tests = pd.DataFrame({"family": ["no run of this configuration has a family chapter"]})
glue("summary_family_ranks", format_table(family_mean_ranks.replace(METHOD_LABELS), 2), display=False)
glue("summary_family_tests", format_table(family_tests, 3), display=False)
glue("summary_family_networks", int(family_tests.get("networks", pd.Series([0])).max()), display=False)
format_table(family_mean_ranks.replace(METHOD_LABELS), 2)

# %% [markdown]
# How much of HiResCAM's lead over Grad-CAM on the feature grid survives each step to input-space AOPC
# (`camfaith.stages`): per network, the share of the first stage's gap left at each logit stage, and the
# difference in probability at the last.

# %% tags=["hide-input"]
gaps = [stage_gaps(run.scores("family_stages")).reset_index().assign(network=run.replicate_of or run.name)
        for run in all_runs if run.has_scores("family_stages")]
if gaps:
    gaps = pd.concat(gaps).groupby(["network", "stage"], sort=False, as_index=False).mean()
    stage_table = gaps.pivot_table(index="network", columns="stage", values="share")[list(STAGES[:4])]
    stage_table["probability difference"] = gaps[gaps["stage"] == STAGES[4]].set_index("network")["difference"]
    stage_table = stage_table.reset_index()
else:
    stage_table = pd.DataFrame({"stages": ["no run of this configuration followed the stages (gap_stages)"]})
glue("summary_family_stages", format_table(stage_table, 2), display=False)
format_table(stage_table, 2)

# %% [markdown]
# ## How reliable each metric is, and how many hidden choices its verdict survives
#
# From each run's chapter "A metric is a model too": per metric, the mean meta-consistency (MC, 1 is ideal)
# under weight noise, input noise and shuffled maps, and the share of the multiverse's specifications
# that give the primary verdict, averaged over the networks.

# %% tags=["hide-input"]
reliability = reliability_table(all_runs)
if reliability.empty:  # the pages cite these keys whatever ran
    reliability = pd.DataFrame({"metric": ["no run of this configuration has a reliability chapter"],
                                "overall MC": [float("nan")], "MC explanation": [float("nan")]})
ranked = reliability.sort_values("overall MC", ascending=False)
glue("summary_reliability", format_table(reliability, 2), display=False)
glue("summary_most_reliable", ranked["metric"].iloc[0], display=False)
glue("summary_most_reliable_mc", float(ranked["overall MC"].iloc[0]), display=False)
glue("summary_most_reliable_explanation_mc", float(ranked["MC explanation"].iloc[0]), display=False)
glue("summary_least_reliable", ranked["metric"].iloc[-1], display=False)
glue("summary_least_reliable_mc", float(ranked["overall MC"].iloc[-1]), display=False)
glue("summary_least_reliable_explanation_mc", float(ranked["MC explanation"].iloc[-1]), display=False)
format_table(reliability, 2)

# %% [markdown]
# ## The full verdicts
#
# Differences are HiResCAM minus Grad-CAM on each metric's primary endpoint, with 95% BCa bootstrap
# intervals and sign-flip permutation p-values that both rest on whole lesions or patients where the
# data set has them (`resampled`, `units`); `p (Holm)` adjusts the p-values over every primary test of
# this configuration that is read (the metric valid, or a robustness measure; Holm 1979). A metric
# favours a map when the interval excludes zero in its direction (`favours`); the `verdict` also needs
# the adjusted test below 0.05 and the same favoured side under every noise seed (`stability`: "not
# checked" with a single noise seed). `secondary favours` is the same comparison on the secondary
# variant (normalised Max-Sensitivity; HAAS with the CAM in [0, 1] used as is), never counted as a
# verdict.

# %% tags=["hide-input"]
glue("summary_verdicts", format_table(summary.verdicts))

# %% [markdown]
# Where a run was trained several times with different training seeds (same data, same split), does
# its verdict hold across the independently trained networks?

# %% tags=["hide-input"]
replicates = replicate_agreement(summary.verdicts)
if replicates is None:
    print("No run of this configuration was trained more than once.")
else:
    display(format_table(replicates))

# %% [markdown]
# ## Beside the published study
#
# Table 10 of Lamprou (2023), computed on four medical datasets with 224 px ImageNet-pretrained
# models; our runs are those of this configuration. Where our datasets differ, compare directions,
# not values.

# %% tags=["hide-input"]
glue("summary_thesis_n_models", len(reference_table("table10_summary")), display=False)
published = published_directions()
glue("summary_thesis_aopc_hirescam", int(published["aopc"]), display=False)
glue("summary_thesis_max_sensitivity_hirescam", int(published["max_sensitivity"]), display=False)
glue("summary_thesis_haas_hirescam", int(published["haas"]), display=False)
both = side_by_side(summary.runs)
format_table(both, 3)

# %% [markdown]
# Where a data set has several runs (the hyper-parameter loops of Table 8 of the original study), the
# best and worst HiResCAM HAAS among them, with the models' mean AUC, as in its Table 9.

# %% tags=["hide-input"]
table9 = haas_extremes(summary.runs)
if table9 is None:
    print("No data set has several runs in this configuration.")
else:
    display(format_table(table9, 3))

# %% [markdown]
# ## Accuracy against the metrics (Figures 16-18 of the original study)

# %% tags=["hide-input"]
figures = {"mean_aopc_hirescam": accuracy_scatter(both, "mean_aopc_hirescam", "mean AOPC (HiResCAM)"),
           "mean_maxsens_hirescam": accuracy_scatter(both, "mean_maxsens_hirescam", "mean Max-Sensitivity (HiResCAM)"),
           "haas_hirescam": accuracy_scatter(both, "haas_hirescam", "HAAS (HiResCAM)")}
glue("summary_mean_aopc_hirescam_fig", figures["mean_aopc_hirescam"], display=False)
glue("summary_mean_maxsens_hirescam_fig", figures["mean_maxsens_hirescam"], display=False)
glue("summary_haas_hirescam_fig", figures["haas_hirescam"], display=False)
for fig in figures.values():
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} summary_mean_aopc_hirescam_fig
# :name: fig-summary-accuracy-aopc
#
# Balanced accuracy against the mean AOPC of HiResCAM, one point per model; the runs of this report and
# the models of Lamprou (2023) in separate panels.
# ```
#
# ```{glue:figure} summary_mean_maxsens_hirescam_fig
# :name: fig-summary-accuracy-maxsens
#
# Balanced accuracy against the mean Max-Sensitivity of HiResCAM, one point per model.
# ```
#
# ```{glue:figure} summary_haas_hirescam_fig
# :name: fig-summary-accuracy-haas
#
# Balanced accuracy against the HAAS of HiResCAM, one point per model.
# ```
