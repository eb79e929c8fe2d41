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
# This chapter gathers every run of the configuration: the test scores of each model, the mean of
# each metric for Grad-CAM and HiResCAM (the counterpart of Table 10 of Lamprou 2023), and for every
# run a paired verdict: does the image-by-image comparison favour HiResCAM, Grad-CAM, or neither?

# %% [markdown]
# ```{glue:figure} summary_forest_fig
# :name: fig-summary-forest
#
# Each run's HiResCAM minus Grad-CAM on the primary endpoint of each metric, with its 95% interval; the
# pooled estimate across data sets and networks (random effects; the replicates of one network, trained
# with other seeds on the same images, count once); and, as hollow markers, the same difference of two
# means for each model of Table 10 of the original study (Max-Sensitivity values there come from
# 224 px maps and are larger in scale; compare signs).
# ```
#
# The parameters, with their defaults; the values the pipeline set for this chapter follow in the cell
# that papermill injects.

# %% tags=["parameters"]
results_dir = "results/default"  # the folder of one configuration's runs
runs = "synthetic_vgg11"  # comma-separated run names, by default dataset_arch
configuration = "default"  # the configuration's name, shown on the front page
primary = ""  # overrides of the primary endpoints, see camfaith.endpoints.primary_settings
n_resamples = 2000  # bootstrap resamples
seed = 0  # of the bootstrap

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
from myst_nb import glue

from camfaith.parameters import parse_list
from camfaith.plots import accuracy_scatter, forest_plot, format_table
from camfaith.summary import (
    answer,
    collect,
    discriminating_runs,
    forest_table,
    haas_extremes,
    localisation_answer,
    published_directions,
    reference_table,
    replicate_agreement,
    sanity_extremes,
    secondary_flips,
    side_by_side,
    verdict_counts,
)

summary = collect(results_dir, parse_list(runs, str), n_resamples, seed, primary)
display(Markdown(answer(summary.verdicts)))
glue("summary_answer", answer(summary.verdicts), display=False)
glue("summary_localisation", localisation_answer(summary.verdicts, summary.controls), display=False)
fig = forest_plot(forest_table(summary.verdicts))
glue("summary_forest_fig", fig, display=False)
plt.close(fig)

# %% [markdown]
# Each run's test scores and the mean of each metric for Grad-CAM and HiResCAM.

# %% tags=["hide-input"]
glue("summary_configuration", configuration, display=False)
glue("summary_n_runs", len(summary.runs), display=False)
for key, value in sanity_extremes(summary.runs).items():  # NaN where no run has a sanity chapter
    glue(f"summary_{key}", value, display=False)
glue("summary_table", format_table(summary.runs, 3))

# %% [markdown]
# ## Can each metric tell an informative map from an uninformative one?
#
# Before a metric's verdict between the two CAMs means anything, the metric must rank both CAMs
# above a uniform random map and above the inverted HiResCAM map (least relevant first), with paired
# intervals that exclude zero. `yes` where it does on a run, `no` where it does not.

# %% tags=["hide-input"]
discrimination = summary.verdicts.pivot(index="run", columns="metric", values="discriminates")
glue("summary_discrimination", format_table(discrimination), display=False)
for metric, count in discriminating_runs(summary.verdicts).items():
    glue(f"summary_{metric}_discriminating_runs", count, display=False)
glue("summary_controls", format_table(summary.controls), display=False)
format_table(discrimination)

# %% [markdown]
# ## Paired verdicts
#
# Differences are HiResCAM minus Grad-CAM on each metric's primary endpoint, with 95% bootstrap
# intervals that resample whole lesions or patients where the data set has them (`resampled`); `p` is
# the Wilcoxon signed-rank test for AOPC, Max-Sensitivity and relevance mass (on data with object
# masks), McNemar's exact test for HAAS, and `p (Holm)` the same adjusted over every primary test of
# this configuration (Holm 1979). A metric favours a method when the interval excludes zero in its
# direction (`favours`); the `verdict` also needs the adjusted test below 0.05, and is "not
# interpretable" where the metric does not discriminate. `secondary favours` is the same comparison
# on the secondary variant (normalised Max-Sensitivity; HAAS with the CAM in [0, 1] used as is),
# never counted as a verdict.

# %% tags=["hide-input"]
counts = verdict_counts(summary.verdicts)
for metric, row in counts.iterrows():
    for side, count in row.items():
        glue(f"summary_{metric}_{side}", int(count), display=False)
glue("summary_n_localised", int(counts.loc["relevance_mass"].sum()), display=False)
for metric, count in secondary_flips(summary.verdicts).items():
    glue(f"summary_{metric}_secondary_flips", count, display=False)
glue("summary_verdicts", format_table(summary.verdicts))

# %% [markdown]
# Where a run was trained several times with different training seeds (same data, same split), does
# its verdict hold across the independently trained networks?

# %% tags=["hide-input"]
replicates = replicate_agreement(summary.verdicts)
if replicates is None:
    print("No run of this configuration was trained more than once.")
else:
    glue("summary_replicates", format_table(replicates))

# %% [markdown]
# ## Beside the published study
#
# Table 10 of Lamprou (2023), computed on four medical datasets with 224 px ImageNet-pretrained
# models; our runs are those of this configuration. Where our datasets differ, compare directions,
# not values.

# %% tags=["hide-input"]
glue("summary_thesis_n_models", len(reference_table("table10_summary")), display=False)
for metric, count in published_directions().items():
    glue(f"summary_thesis_{metric}_hirescam", count, display=False)
both = side_by_side(summary.runs)
glue("summary_side_by_side", format_table(both, 3))

# %% [markdown]
# Where a data set has several runs (the hyper-parameter loops of Table 8 of the original study), the
# best and worst HiResCAM HAAS among them, with the models' mean AUC, as in its Table 9.

# %% tags=["hide-input"]
table9 = haas_extremes(summary.runs)
if table9 is None:
    print("No data set has several runs in this configuration.")
else:
    glue("summary_table9", format_table(table9, 3))

# %% [markdown]
# ## Accuracy against the metrics (Figures 16-18 of the original study)

# %% tags=["hide-input"]
for metric, label in (("mean_aopc_hirescam", "mean AOPC (HiResCAM)"),
                      ("mean_maxsens_hirescam", "mean Max-Sensitivity (HiResCAM)"),
                      ("haas_hirescam", "HAAS (HiResCAM)")):
    fig = accuracy_scatter(both, metric, label)
    glue(f"summary_{metric}_fig", fig, display=False)
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
