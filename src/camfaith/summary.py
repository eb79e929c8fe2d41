"""The summary of a configuration: every run's scores and paired verdicts, beside the original study.

:func:`collect` reads the run folders of a configuration and returns tidy tables; the summary
chapter only shows them and glues their numbers into the prose. Every verdict rests on the primary
endpoint of its metric, and is reported only where the metric discriminates on that run (see
:mod:`camfaith.endpoints`).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from camfaith.endpoints import (
    CAMS,
    ENDPOINTS,
    SECONDARY,
    comparer,
    discriminates,
    discrimination,
    noise_stability,
    primary_settings,
)
from camfaith.parameters import check_choice
from camfaith.runs import Run
from camfaith.stats import holm, interval_standard_error, pooled_effect

#: metric key -> name shown to readers
METRICS = {"aopc": "AOPC", "max_sensitivity": "Max-Sensitivity", "haas": "HAAS", "relevance_mass": "Relevance mass"}
SIDES = {"second": "HiResCAM", "first": "Grad-CAM", "neither": "neither"}
NOT_INTERPRETABLE = "not interpretable"
UNSTABLE = "unstable"  # the verdict changes with the noise seed
#: columns of the runs table that hold a method's mean, as in Table 10 of Lamprou (2023)
MEAN_COLUMNS = {"aopc": "mean_aopc", "max_sensitivity": "mean_maxsens", "haas": "haas"}


class Summary(NamedTuple):
    runs: pd.DataFrame  # one row per run: data, network, test scores, the methods' means
    verdicts: pd.DataFrame  # one row per run and metric: paired difference, interval, p, favoured map, verdict
    controls: pd.DataFrame  # one row per run, metric, CAM and null control: does the metric rank the CAM better?


def reference_table(name: str) -> pd.DataFrame:
    """A table of the original study's published values (Lamprou 2023), e.g. ``"table10_summary"``."""
    files = resources.files("camfaith") / "reference"
    available = sorted(p.name.removesuffix(".csv") for p in files.iterdir() if p.name.endswith(".csv"))
    check_choice("reference table", name, available)
    with resources.as_file(files / f"{name}.csv") as path:
        return pd.read_csv(path)


def compare_run(run: Run, n_resamples: int = 2000, seed: int = 0, primary: str = "") -> dict[str, dict]:
    """Per metric the run has scores for: HiResCAM against Grad-CAM on the primary endpoint
    (``result``; overrides in ``primary``, see :func:`camfaith.endpoints.primary_settings`), on the
    secondary variant where there is one (``secondary``), the metric's comparison of each CAM with the
    null controls (``controls``, None without them), and the comparison per noise seed (``noise``).
    """
    comparisons, groups, settings = {}, run.test_groups(), primary_settings(primary)
    for metric, endpoint in ENDPOINTS.items():
        if not run.has_scores(endpoint.scores):
            continue
        frame = run.scores(endpoint.scores)
        compare = comparer(frame, metric, settings[metric], n_resamples=n_resamples, seed=seed, groups=groups)
        comparisons[metric] = {"result": compare(*CAMS), "controls": discrimination(compare), "secondary": None,
                               "noise": noise_stability(frame, metric, n_resamples, seed, groups, settings[metric])}
        if (metric in SECONDARY and SECONDARY[metric] != settings[metric]
                and any(column in frame for column in SECONDARY[metric])):
            secondary = comparer(frame, metric, SECONDARY[metric], n_resamples=n_resamples, seed=seed, groups=groups)
            comparisons[metric]["secondary"] = secondary(*CAMS)
    return comparisons


def _run_row(run: Run, comparisons: dict[str, dict]) -> dict:
    report = run.report()
    row = {"run": run.name, "dataset": run.dataset, "arch": run.arch, "options": run.dataset_options,
           "balanced_accuracy": report["balanced_accuracy"], "mean_auc": report["mean_auc"]}
    for metric, column in MEAN_COLUMNS.items():
        result = comparisons[metric]["result"] if metric in comparisons else {}
        row[f"{column}_gradcam"] = result.get("mean_first", float("nan"))
        row[f"{column}_hirescam"] = result.get("mean_second", float("nan"))
    if run.has_scores("identity"):  # Proposition 4 on the trained network
        identity = run.scores("identity")
        row["prop4_hirescam_max"] = float(identity["hirescam_residual"].max())
        row["prop4_gradcam_median"] = float(identity["gradcam_residual"].median())
    if run.has_scores("sanity"):  # the randomisation test, every layer re-initialised
        sanity = run.scores("sanity")
        last = sanity[sanity["step"] == sanity["step"].max()].groupby("method")["spearman"].mean()
        row |= {f"randomised_spearman_{method}": float(last.get(method, float("nan"))) for method in CAMS}
    return row


def _verdict_rows(run: Run, comparisons: dict[str, dict]) -> list[dict]:
    rows = []
    for metric, comparison in comparisons.items():
        result, secondary = comparison["result"], comparison["secondary"]
        rows.append({"run": run.name, "replicate of": run.replicate_of or run.name, "dataset": run.dataset,
                     "arch": run.arch, "metric": METRICS[metric],
                     "HiResCAM - Grad-CAM": result["mean_difference"], "low": result["low"], "high": result["high"],
                     "p": result["p_value"], "favours": SIDES[result["better"]],
                     "discriminates": discriminates(comparison["controls"]),
                     "secondary favours": SIDES[secondary["better"]] if secondary else "",
                     "images": result["n"], "resampled": result["resampled"]} | _noise_columns(comparison["noise"]))
    return rows


def _noise_columns(noise: pd.DataFrame | None) -> dict:
    """How the verdict fares across noise seeds: their number, the range of the mean difference, stable or not."""
    if noise is None:
        return {"noise seeds": 1, "noise range": "", "stable": "yes"}
    low, high = noise["difference"].min(), noise["difference"].max()
    return {"noise seeds": len(noise), "noise range": f"{low:.3g} to {high:.3g}",
            "stable": "yes" if noise["better"].nunique() == 1 else "no"}


def _verdicts(rows: list[dict], alpha: float = 0.05) -> pd.DataFrame:
    """The verdicts of a configuration: Holm-adjusted p-values over its family of primary tests, and the
    verdict that needs the interval and the adjusted test to agree, and the metric to discriminate."""
    verdicts = pd.DataFrame(rows)
    if verdicts.empty:
        return verdicts
    verdicts.insert(verdicts.columns.get_loc("p") + 1, "p (Holm)", holm(verdicts["p"]))
    agreed = verdicts["favours"].where(verdicts["p (Holm)"] < alpha, "neither").where(verdicts["stable"] == "yes",
                                                                                        UNSTABLE)
    verdicts["verdict"] = agreed.where(verdicts["discriminates"] != "no", NOT_INTERPRETABLE)
    return verdicts


def _control_rows(run: Run, comparisons: dict[str, dict]) -> list[dict]:
    return [{"run": run.name, "metric": METRICS[metric]} | row
            for metric, comparison in comparisons.items() if comparison["controls"] is not None
            for row in comparison["controls"].to_dict("records")]


def collect(results_dir: str | os.PathLike, runs: list[str], n_resamples: int = 2000, seed: int = 0,
            primary: str = "") -> Summary:
    """Read the finished runs of a configuration (folders under ``results_dir``) into a :class:`Summary`;
    ``primary`` overrides primary endpoints (``"haas.scaling=unit"``)."""
    missing = [name for name in runs if not (Path(results_dir) / name / "report.json").exists()]
    if missing or not runs:
        raise FileNotFoundError(f"no finished runs {missing or runs!r} in {results_dir}: "
                                "run the pipeline first (make results)")
    rows, verdicts, controls = [], [], []
    for name in runs:
        run = Run.open(Path(results_dir) / name)
        comparisons = compare_run(run, n_resamples, seed, primary)
        rows.append(_run_row(run, comparisons))
        verdicts += _verdict_rows(run, comparisons)
        controls += _control_rows(run, comparisons)
    return Summary(pd.DataFrame(rows), _verdicts(verdicts), pd.DataFrame(controls))


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """How many runs each metric (rows: ``aopc``, ``max_sensitivity``, ...) resolves each way.

    Columns ``hirescam``, ``gradcam``, ``neither``, ``unstable`` (the verdict changes with the noise
    seed) and ``not_interpretable`` (the metric did not discriminate on that run); every metric has a
    row, zeros where it has no runs.
    """
    sides = [*SIDES.values(), UNSTABLE, NOT_INTERPRETABLE]
    table = pd.DataFrame(0, index=list(METRICS.values()), columns=sides)
    if len(verdicts):
        table.update(verdicts.groupby(["metric", "verdict"]).size().unstack(fill_value=0))
    table.index = list(METRICS)
    table.columns = ["hirescam", "gradcam", "neither", "unstable", "not_interpretable"]
    return table.astype(int)


def discriminating_runs(verdicts: pd.DataFrame) -> pd.Series:
    """On how many runs each metric (key ``aopc``, ...) told both CAMs from the null controls."""
    yes = verdicts[verdicts["discriminates"] == "yes"] if len(verdicts) else verdicts
    counts = yes.groupby("metric").size() if len(yes) else pd.Series(dtype=int)
    return pd.Series({key: int(counts.get(name, 0)) for key, name in METRICS.items()})


def sanity_extremes(runs: pd.DataFrame) -> dict[str, float]:
    """The worst case over runs of the sanity checks: the largest HiResCAM residual of Proposition 4,
    the smallest median Grad-CAM gap, and the largest rank correlation of a CAM with its trained
    version after full randomisation (NaN where no run has a sanity chapter)."""
    def column(name: str) -> pd.Series:
        return runs[name] if name in runs else pd.Series([float("nan")])

    randomised = pd.concat([column(f"randomised_spearman_{method}") for method in CAMS])
    return {"prop4_hirescam_max": float(column("prop4_hirescam_max").max()),
            "prop4_gradcam_median": float(column("prop4_gradcam_median").min()),
            "randomised_spearman_max": float(randomised.max())}


def secondary_flips(verdicts: pd.DataFrame) -> pd.Series:
    """On how many runs the secondary variant of a metric (key) favours another map than its primary endpoint."""
    flips = verdicts[(verdicts["secondary favours"] != "") & (verdicts["secondary favours"] != verdicts["favours"])]
    return pd.Series({key: int((flips["metric"] == name).sum()) for key, name in METRICS.items()})


def replicate_agreement(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Per run trained several times (``train_seeds``) and metric: the verdict of every replicate, and
    whether it holds across independently trained networks. None when no run has replicates."""
    if verdicts.empty:
        return None
    replicated = verdicts.groupby("replicate of").filter(lambda group: group["run"].nunique() > 1)
    if replicated.empty:
        return None
    table = replicated.groupby(["replicate of", "metric"])["verdict"].agg(
        verdicts=lambda v: ", ".join(v), holds=lambda v: "yes" if v.nunique() == 1 else "no")
    return table.reset_index()


def published_directions() -> pd.Series:
    """How many models of Table 10 of Lamprou (2023) had the better mean with HiResCAM, per metric key."""
    table = reference_table("table10_summary")
    return pd.Series({
        "aopc": int((table["mean_aopc_hirescam"] > table["mean_aopc_gradcam"]).sum()),
        "max_sensitivity": int((table["mean_maxsens_hirescam"] < table["mean_maxsens_gradcam"]).sum()),
        "haas": int((table["haas_hirescam"] > table["haas_gradcam"]).sum()),
    })


def side_by_side(runs: pd.DataFrame) -> pd.DataFrame:
    """Our runs and the models of Table 10 of Lamprou (2023) in one table (column ``source``)."""
    published = reference_table("table10_summary").assign(source="thesis")
    return pd.concat([runs.drop(columns="options").assign(source="ours"), published], ignore_index=True)


def haas_extremes(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Best and worst HiResCAM HAAS per data set with several runs, beside Table 9 of Lamprou (2023).

    None when no data set of the configuration has several runs (the hyper-parameter loops of its Table 8).
    """
    same_data = ["dataset", "arch", "options"]
    looped = runs.groupby(same_data).filter(lambda group: len(group) > 1 and group["haas_hirescam"].notna().any())
    if looped.empty:
        return None
    extremes = pd.concat([
        looped.loc[looped.groupby(same_data)["haas_hirescam"].idxmax()].assign(case="max_haas"),
        looped.loc[looped.groupby(same_data)["haas_hirescam"].idxmin()].assign(case="min_haas"),
    ])[["dataset", "arch", "case", "run", "haas_hirescam", "mean_auc"]]
    published = reference_table("table9_haas_nonmedical").rename(columns={"hirescam_haas": "haas_hirescam"})
    return pd.concat([extremes.assign(source="ours"), published.assign(source="thesis")], ignore_index=True)


def forest_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """HiResCAM minus Grad-CAM per metric: each run with its interval, the random-effects pooled estimate
    across runs (DerSimonian and Laird 1986), and the published difference of each model of Table 10 of
    Lamprou (2023), a difference of two means without an interval.

    Columns ``metric, label, difference, low, high, source`` (``ours``, ``pooled``, ``Lamprou (2023)``).
    Runs whose interval has no width (no spread at all) cannot be weighted and are left out of the pooling.
    Replicates (networks trained with other seeds on the same data and test images) are one study, not
    several: the pooling takes their mean difference and the mean of their standard errors, as if the
    replicates were perfectly correlated, which never narrows the pooled interval.
    """
    rows = [{"metric": v["metric"], "label": v["run"], "difference": v["HiResCAM - Grad-CAM"], "low": v["low"],
             "high": v["high"], "source": "ours"} for v in verdicts.to_dict("records")]
    for metric, group in verdicts.groupby("metric", sort=False):
        errors = pd.Series(interval_standard_error(group["low"], group["high"]), index=group.index)
        keep = errors > 0  # a run without spread (e.g. all HAAS ties) has no weight
        studies = pd.DataFrame({"difference": group.loc[keep, "HiResCAM - Grad-CAM"], "error": errors[keep]}
                               ).groupby(group.loc[keep, "replicate of"].to_numpy()).mean()
        if len(studies) > 1:
            pooled = pooled_effect(studies["difference"], studies["error"])
            rows.append({"metric": metric, "label": "pooled", "difference": pooled["mean"], "low": pooled["low"],
                         "high": pooled["high"], "source": "pooled"})
    published = reference_table("table10_summary")
    for metric, column in MEAN_COLUMNS.items():
        rows += [{"metric": METRICS[metric], "label": f"{row['dataset']} {row['arch']}",
                  "difference": row[f"{column}_hirescam"] - row[f"{column}_gradcam"], "low": float("nan"),
                  "high": float("nan"), "source": "Lamprou (2023)"} for row in published.to_dict("records")]
    return pd.DataFrame(rows)


def localisation_answer(verdicts: pd.DataFrame, controls: pd.DataFrame) -> str:
    """A paragraph on whether the faithful map is also the one that lands on the object or lesion: per CAM,
    on how many runs with masks it beats the null controls on relevance mass, then the relevance-mass
    verdict of every such run beside its AOPC verdict."""
    metric = METRICS["relevance_mass"]
    located = verdicts[verdicts["metric"] == metric] if len(verdicts) else verdicts
    if located.empty:
        return "No run of this configuration has object or lesion masks, so none measures localisation."
    text = (f"Relevance mass (the share of a map's mass inside the object or lesion mask) was measured on "
            f"{len(located)} run(s) with masks.")
    if len(controls):
        beats = controls[controls["metric"] == metric].groupby(["map", "run"])["beats"].all().groupby("map").sum()
        names = {"gradcam": SIDES["first"], "hirescam": SIDES["second"]}
        text += (" More of the map's mass than of a random map's and of the inverted map's lies inside the mask for "
                 + " and for ".join(f"{names.get(cam, cam)} on {int(n)}" for cam, n in beats.items()) + ".")
    wording = {NOT_INTERPRETABLE: "is not interpretable", UNSTABLE: "is unstable"}
    groups = located.groupby("verdict", sort=False)["run"].apply(list)
    text += " The verdict between the two " + "; ".join(
        f"{wording.get(verdict, 'favours ' + verdict)} on {', '.join(runs)}" for verdict, runs in groups.items()) + "."
    aopc = verdicts[verdicts["metric"] == METRICS["aopc"]].set_index("run")["verdict"]
    same = [run for run, verdict in zip(located["run"], located["verdict"])
            if verdict in ("HiResCAM", "Grad-CAM") and aopc.get(run) == verdict]
    return text + (f" It names the same map as AOPC on {', '.join(same)}: there the map that orders the evidence best "
                   "also lands on the object." if same else " On no run does it name a map that AOPC also favours.")


def answer(verdicts: pd.DataFrame) -> str:
    """A paragraph that answers the report's question from the verdicts of a configuration."""
    counts, able = verdict_counts(verdicts), discriminating_runs(verdicts)
    n_runs = verdicts["run"].nunique()
    sentences = []
    for key, name in METRICS.items():
        tested = int(counts.loc[key].sum())
        if not tested:
            continue
        row = counts.loc[key]
        sentences.append(
            f"{name} told both CAMs from a random and an inverted map on {able[key]} of {tested} runs; "
            f"its verdict favours HiResCAM on {row['hirescam']}, Grad-CAM on {row['gradcam']}, neither on "
            f"{row['neither']}, changes with the noise seed on {row['unstable']}, and is not interpretable on "
            f"{row['not_interpretable']}.")
    return (f"Over the {n_runs} runs of this configuration: " + " ".join(sentences)
            + " A metric's preference for the faithful map counts only where that metric could see the difference"
              " between an informative and an uninformative map at all.")
