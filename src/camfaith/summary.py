"""The summary of a configuration: every run's three answers per metric, beside the original study.

:func:`collect` reads the run folders of a configuration and returns tidy tables; the summary
chapter only shows them and glues their numbers into the prose. Each run's answers come from
:func:`camfaith.endpoints.run_answers`, the route the metric chapters take too, so a chapter and the
summary cannot disagree. What this module adds is what needs the whole configuration: the Holm
adjustment over its primary tests, the verdicts that rest on it, counts per network (training-seed
replicates of one network count once), and the pooled estimates across networks.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from camfaith.endpoints import CAMS, ENDPOINTS, METRICS, Answers, primary_settings, run_answers, stability
from camfaith.multiverse import primary_specification, robustness
from camfaith.parameters import check_choice, options_text
from camfaith.reliability import meta_consistency
from camfaith.runs import Run
from camfaith.stats import holm, interval_standard_error, pooled_effect

SIDES = {"second": "HiResCAM", "first": "Grad-CAM", "neither": "neither"}
NOT_VALID = "metric not valid"
UNSTABLE = "unstable"  # the favoured side changes with the noise seed
DIFFERS = "differs across trainings"  # replicates of one network disagree
#: the columns of :func:`verdict_counts` and their headings in the book
COUNT_HEADINGS = {"networks": "networks", "valid": "valid", "gradcam_informative": "Grad-CAM informative",
                  "hirescam_informative": "HiResCAM informative", "hirescam": "favours HiResCAM",
                  "gradcam": "favours Grad-CAM", "neither": "neither", "unstable": "unstable",
                  "not_valid": "not read", "differs": DIFFERS}
#: columns of the runs table that hold a map's mean, as in Table 10 of Lamprou (2023)
MEAN_COLUMNS = {"aopc": "mean_aopc", "max_sensitivity": "mean_maxsens", "haas": "haas"}


class Summary(NamedTuple):
    runs: pd.DataFrame  # one row per run: data, network, test scores, the maps' means
    verdicts: pd.DataFrame  # one row per run and metric: the three answers and the verdict
    maps: pd.DataFrame  # one row per run, metric and map: its standing against chance and normalised score


def reference_table(name: str) -> pd.DataFrame:
    """A table of the original study's published values (Lamprou 2023), e.g. ``"table10_summary"``."""
    files = resources.files("camfaith") / "reference"
    available = sorted(p.name.removesuffix(".csv") for p in files.iterdir() if p.name.endswith(".csv"))
    check_choice("reference table", name, available)
    with resources.as_file(files / f"{name}.csv") as path:
        return pd.read_csv(path)


def compare_run(run: Run, primary: dict | str | None = None) -> dict[str, Answers]:
    """The answers of every metric the run has scores for (:func:`camfaith.endpoints.run_answers`), on the
    primary endpoints with the overrides in ``primary`` (:func:`camfaith.endpoints.primary_settings`)."""
    settings = primary_settings(primary)
    return {metric: run_answers(run, run.scores(entry.scores), metric, settings[metric])
            for metric, entry in METRICS.items() if run.has_scores(entry.scores)}


def _run_row(run: Run, comparisons: dict[str, Answers]) -> dict:
    report = run.report()
    row = {"run": run.name, "dataset": run.dataset, "arch": run.arch, "options": options_text(run.dataset_options),
           "balanced_accuracy": report["balanced_accuracy"], "mean_auc": report["mean_auc"]}
    for metric, column in MEAN_COLUMNS.items():
        result = comparisons[metric].comparison if metric in comparisons else {}
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


def _verdict_row(run: Run, metric: str, answers: Answers) -> dict:
    result, secondary, maps = answers.comparison, answers.secondary or answers.comparison, answers.maps.set_index("map")
    noise = answers.noise
    row = {"run": run.name, "network": run.replicate_of or run.name, "dataset": run.dataset, "arch": run.arch,
           "metric": METRICS[metric].label, "valid": answers.validity["status"]}
    for cam, name in zip(CAMS, ("Grad-CAM", "HiResCAM")):
        present = cam in maps.index
        row[name] = maps.loc[cam, "standing"] if present else ""
        row[f"{cam} normalised"] = maps.loc[cam, "normalised"] if present else float("nan")
    return row | {
        "category": answers.category, "HiResCAM - Grad-CAM": result["mean_difference"], "low": result["low"],
        "high": result["high"], "p": result["p_value"], "favours": SIDES[result["better"]],
        "stability": stability(noise),
        "noise range": "" if noise is None else f"{noise['difference'].min():.3g} to {noise['difference'].max():.3g}",
        "secondary favours": SIDES[answers.secondary["better"]] if answers.secondary else "",
        "secondary difference": secondary["mean_difference"], "secondary low": secondary["low"],
        "secondary high": secondary["high"], "images": result["n"], "units": result["n_groups"],
        "resampled": result["resampled"]}


def _verdicts(rows: list[dict], alpha: float = 0.05) -> pd.DataFrame:
    """The verdicts of a configuration. Holm's adjustment runs over the primary tests whose answer is read
    (the metric valid, or a robustness measure); a verdict names a map where the interval favours it and
    the adjusted test agrees and the favoured side is the same for every noise seed."""
    verdicts = pd.DataFrame(rows)
    if verdicts.empty:
        return verdicts
    read = verdicts["valid"].isin(["valid", "not applicable"])
    verdicts.insert(verdicts.columns.get_loc("p") + 1, "p (Holm)", np.nan)
    verdicts.loc[read, "p (Holm)"] = holm(verdicts.loc[read, "p"])
    verdict = verdicts["favours"].where(verdicts["p (Holm)"] < alpha, "neither")
    verdict = verdict.where(verdicts["stability"] != "unstable", UNSTABLE)
    verdicts["verdict"] = verdict.where(read, NOT_VALID)
    return verdicts


def _map_rows(run: Run, metric: str, answers: Answers) -> list[dict]:
    return [{"run": run.name, "network": run.replicate_of or run.name, "metric": METRICS[metric].label} | row
            for row in answers.maps.to_dict("records")]


def collect(results_dir: str | os.PathLike, runs: list[str], primary: dict | str | None = None) -> Summary:
    """Read the finished runs of a configuration (folders under ``results_dir``) into a :class:`Summary`;
    ``primary`` overrides primary endpoints (``{"haas.scaling": "unit"}``)."""
    missing = [name for name in runs if not (Path(results_dir) / name / "report.json").exists()]
    if missing or not runs:
        raise FileNotFoundError(f"no finished runs {missing or runs!r} in {results_dir}: "
                                "run the pipeline first (make results)")
    rows, verdicts, maps = [], [], []
    for name in runs:
        run = Run.open(Path(results_dir) / name)
        comparisons = compare_run(run, primary)
        rows.append(_run_row(run, comparisons))
        for metric, answers in comparisons.items():
            verdicts.append(_verdict_row(run, metric, answers))
            maps += _map_rows(run, metric, answers)
    return Summary(pd.DataFrame(rows), _verdicts(verdicts), pd.DataFrame(maps))


def per_network(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per network and metric: training-seed replicates of one network (same data, same test
    images) count once. Its verdict is the replicates' common verdict, or :data:`DIFFERS`; it is valid, and
    a CAM informative, only where every replicate says so."""
    if verdicts.empty:
        return verdicts
    def common(values: pd.Series) -> str:
        return values.iloc[0] if values.nunique() == 1 else DIFFERS

    return verdicts.groupby(["network", "metric"], sort=False).agg(
        runs=("run", "nunique"), valid=("valid", common), gradcam=("Grad-CAM", common),
        hirescam=("HiResCAM", common), verdict=("verdict", common)).reset_index()


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per metric (rows: ``aopc``, ``max_sensitivity``, ...), counted over networks (replicates once): how
    many were scored, on how many the metric is valid, on how many each CAM beats the random map, and how
    many verdicts go each way. Every metric has a row, zeros where it has no runs."""
    networks = per_network(verdicts)
    table = pd.DataFrame(0, index=list(METRICS), columns=list(COUNT_HEADINGS))
    for key, entry in METRICS.items():
        rows = networks[networks["metric"] == entry.label] if len(networks) else networks
        if rows.empty:
            continue
        verdicts_ = rows["verdict"].value_counts()
        informative = [int((rows[cam] == "beats random").sum()) for cam in CAMS]
        table.loc[key] = [len(rows), int((rows["valid"] == "valid").sum()), *informative,
                          *(int(verdicts_.get(v, 0)) for v in ("HiResCAM", "Grad-CAM", "neither", UNSTABLE, NOT_VALID,
                                                                DIFFERS))]
    return table.astype(int)


def counts_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`verdict_counts` as readers see it: metric names and headings, the metrics with a validity gate
    first, and "n/a" where a metric has none (Max-Sensitivity, a robustness measure: no valid or
    informative cells)."""
    gated = [key for key in counts.index if METRICS[key].validity != "none"]
    table = counts.loc[gated + [key for key in counts.index if key not in gated]].astype(object)
    table.loc[~table.index.isin(gated), ["valid", "gradcam_informative", "hirescam_informative"]] = "n/a"
    labels = {key: METRICS[key].label + ("" if key in gated else " (robustness)") for key in table.index}
    return table.rename(index=labels, columns=COUNT_HEADINGS).rename_axis("metric")


def answer_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The summary's opening table: run x metric, valid?, each CAM's standing and normalised score, verdict."""
    table = verdicts[["run", "metric", "valid", "Grad-CAM", "gradcam normalised", "HiResCAM", "hirescam normalised",
                      "HiResCAM - Grad-CAM", "low", "high", "p (Holm)", "units", "verdict"]]
    return table.rename(columns={"gradcam normalised": "Grad-CAM normalised",
                                 "hirescam normalised": "HiResCAM normalised"})


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
    return pd.Series({key: int((flips["metric"] == entry.label).sum()) for key, entry in METRICS.items()})


def replicate_agreement(verdicts: pd.DataFrame) -> pd.DataFrame | None:
    """Per network trained several times (``train_seeds``) and metric: the verdict of every replicate, and
    whether it holds across independently trained networks. None when no run has replicates."""
    if verdicts.empty:
        return None
    replicated = verdicts.groupby("network").filter(lambda group: group["run"].nunique() > 1)
    if replicated.empty:
        return None
    table = replicated.groupby(["network", "metric"])["verdict"].agg(
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
    """HiResCAM minus Grad-CAM per metric: each run with its interval, the pooled estimate across networks,
    and the published difference of each model of Table 10 of Lamprou (2023) (two means, no interval).

    Columns ``metric, label, difference, low, high, pred_low, pred_high, source`` (``ours``, ``pooled``,
    ``Lamprou (2023)``). The pooling (:func:`camfaith.stats.pooled_effect`: random effects, the
    Hartung-Knapp-Sidik-Jonkman interval and a prediction interval) takes only runs where the metric is
    valid (or, for Max-Sensitivity, a robustness measure), and Max-Sensitivity in its normalised form
    only, since its raw value grows with the image size. Replicates (networks trained with other seeds on
    the same data and test images) are one study: their mean difference and the mean of their standard
    errors, as if perfectly correlated, which never narrows the pooled interval.
    """
    rows = []
    for metric, group in verdicts.groupby("metric", sort=False):
        scale_free = metric == METRICS["max_sensitivity"].label
        prefix = "secondary " if scale_free else ""
        label = f"{metric} (normalised)" if scale_free else metric
        group = group.rename(columns={f"{prefix}difference" if scale_free else "HiResCAM - Grad-CAM": "difference",
                                      f"{prefix}low": "est_low", f"{prefix}high": "est_high"})
        rows += [{"metric": label, "label": v["run"], "difference": v["difference"], "low": v["est_low"],
                  "high": v["est_high"], "source": "ours"} for v in group.to_dict("records")]
        pooled_from = group[group["valid"].isin(["valid", "not applicable"])]
        errors = pd.Series(interval_standard_error(pooled_from["est_low"], pooled_from["est_high"]),
                           index=pooled_from.index)
        studies = pd.DataFrame({"difference": pooled_from["difference"], "error": errors}
                               ).groupby(pooled_from["network"].to_numpy()).mean().dropna()
        if len(studies) > 1 and (studies["error"] > 0).any():
            pooled = pooled_effect(studies["difference"], studies["error"])
            rows.append({"metric": label, "label": f"pooled ({len(studies)} networks)", "difference": pooled["mean"],
                         "low": pooled["low"], "high": pooled["high"], "pred_low": pooled["pred_low"],
                         "pred_high": pooled["pred_high"], "source": "pooled"})
    published = reference_table("table10_summary")
    for metric, column in MEAN_COLUMNS.items():
        rows += [{"metric": METRICS[metric].label, "label": f"{row['dataset']} {row['arch']}",
                  "difference": row[f"{column}_hirescam"] - row[f"{column}_gradcam"], "low": float("nan"),
                  "high": float("nan"), "source": "Lamprou (2023)"} for row in published.to_dict("records")]
    return pd.DataFrame(rows)


def reliability_table(runs: list[Run]) -> pd.DataFrame:
    """Per metric, over the networks whose reliability chapter ran (replicates averaged first): the mean
    meta-consistency MC of each perturbation kind and overall, and the mean share of the multiverse's
    specifications that give the primary verdict (:mod:`camfaith.reliability`, :mod:`camfaith.multiverse`), with
    the choice whose specifications flip that verdict most often (their mean share over the networks)."""
    rows, flips = [], []
    for run in runs:
        network = run.replicate_of or run.name
        if run.has_scores("reliability"):
            for metric, draws in run.scores("reliability").groupby("metric", sort=False):
                consistency = meta_consistency(draws).set_index("perturbation")["MC"]
                rows.append({"network": network, "metric": metric, "overall MC": consistency.mean(),
                             **{f"MC {kind}": value for kind, value in consistency.items()}})
        if run.has_scores("multiverse"):
            for metric, table in run.scores("multiverse").groupby("metric", sort=False):
                held, flipped = robustness(table.dropna(axis=1, how="all"), primary_specification(metric))
                rows.append({"network": network, "metric": metric, "specifications agreeing": held["agree"]})
                flips.append(flipped.assign(network=network, metric=metric))
    if not rows:
        return pd.DataFrame()
    per_network = pd.DataFrame(rows).groupby(["metric", "network"], sort=False).mean()
    table = per_network.groupby("metric", sort=False).mean()
    table.insert(0, "networks", per_network.groupby("metric", sort=False).size())
    if flips:
        flips = pd.concat(flips).groupby(["metric", "network", "choice", "value"], sort=False)["flipped"].mean()
        shares = flips.groupby(["metric", "choice", "value"], sort=False).mean()
        worst = shares.groupby("metric", sort=False).idxmax()
        table["flipped most by"] = ["" if m not in worst else "no choice" if shares[worst[m]] == 0 else
                                    f"{worst[m][1]} = {worst[m][2]} ({shares[worst[m]]:.0%})" for m in table.index]
    return table.rename(index={key: entry.label for key, entry in ENDPOINTS.items()}).reset_index()
