"""The summary of a configuration: every run's scores and paired verdicts, beside the original study.

:func:`collect` reads the run folders of a configuration and returns tidy tables; the summary
chapter only shows them and glues their numbers into the prose. Per image, AOPC is averaged over
the heatmap sizes and Max-Sensitivity over the radii, as in Table 10 of Lamprou (2023); the paired
comparisons use these per-image means.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from camfaith.parameters import check_choice
from camfaith.runs import Run
from camfaith.stats import haas_comparison, paired_comparison

#: metric name -> (glue/column key, per-image file, score column, higher is better)
METRICS = {
    "AOPC": ("aopc", "aopc", "aopc", True),
    "Max-Sensitivity": ("max_sensitivity", "max_sensitivity", "max_sensitivity", False),
    "HAAS": ("haas", "haas", None, True),
    "Relevance mass": ("relevance_mass", "localisation", "relevance_mass", True),
}
SIDES = {"second": "HiResCAM", "first": "Grad-CAM", "neither": "neither"}
#: columns of the runs table that hold a method's mean, as in Table 10 of Lamprou (2023)
MEAN_COLUMNS = {"AOPC": "mean_aopc", "Max-Sensitivity": "mean_maxsens", "HAAS": "haas"}


class Summary(NamedTuple):
    runs: pd.DataFrame  # one row per run: data, network, test scores, the methods' means
    verdicts: pd.DataFrame  # one row per run and metric: paired difference, interval, p, favoured map


def reference_table(name: str) -> pd.DataFrame:
    """A table of the original study's published values (Lamprou 2023), e.g. ``"table10_summary"``."""
    files = resources.files("camfaith") / "reference"
    available = sorted(p.name.removesuffix(".csv") for p in files.iterdir() if p.name.endswith(".csv"))
    check_choice("reference table", name, available)
    with resources.as_file(files / f"{name}.csv") as path:
        return pd.read_csv(path)


def _per_image_means(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.groupby(["id", "method"])[column].mean().unstack()


def compare_run(run: Run, haas_scaling: str = "unit", n_resamples: int = 2000, seed: int = 0) -> dict[str, dict]:
    """The paired comparison (HiResCAM against Grad-CAM) of every metric the run has scores for."""
    options = dict(n_resamples=n_resamples, seed=seed)
    comparisons = {}
    for metric, (_, scores, column, higher_is_better) in METRICS.items():
        if not run.has_scores(scores):
            continue
        frame = run.scores(scores)
        if metric == "HAAS":
            wide = frame.query("scaling == @haas_scaling").pivot(
                index="id", columns="method", values=["label", "prediction", "ha_prediction"])
            comparisons[metric] = haas_comparison(wide["label"]["gradcam"], wide["ha_prediction"]["gradcam"],
                                                  wide["ha_prediction"]["hirescam"], wide["prediction"]["gradcam"],
                                                  **options)
        else:
            means = _per_image_means(frame, column)
            comparisons[metric] = paired_comparison(means["gradcam"], means["hirescam"], higher_is_better, **options)
    return comparisons


def _run_row(run: Run, comparisons: dict[str, dict]) -> dict:
    report = run.report()
    row = {"run": run.name, "dataset": run.dataset, "arch": run.arch, "options": run.dataset_options,
           "balanced_accuracy": report["balanced_accuracy"], "mean_auc": report["mean_auc"]}
    for metric, column in MEAN_COLUMNS.items():
        result = comparisons.get(metric, {})
        row[f"{column}_gradcam"] = result.get("mean_first", float("nan"))
        row[f"{column}_hirescam"] = result.get("mean_second", float("nan"))
    return row


def _verdict_rows(run: Run, comparisons: dict[str, dict]) -> list[dict]:
    return [{"run": run.name, "dataset": run.dataset, "arch": run.arch, "metric": metric,
             "HiResCAM - Grad-CAM": result["mean_difference"], "low": result["low"], "high": result["high"],
             "p": result["p_value"], "favours": SIDES[result["better"]], "images": result["n"]}
            for metric, result in comparisons.items()]


def collect(results_dir: str | os.PathLike, runs: list[str], haas_scaling: str = "unit", n_resamples: int = 2000,
            seed: int = 0) -> Summary:
    """Read the finished runs of a configuration (folders under ``results_dir``) into a :class:`Summary`."""
    missing = [name for name in runs if not (Path(results_dir) / name / "report.json").exists()]
    if missing or not runs:
        raise FileNotFoundError(f"no finished runs {missing or runs!r} in {results_dir}: "
                                "run the pipeline first (make results)")
    rows, verdicts = [], []
    for name in runs:
        run = Run.open(Path(results_dir) / name)
        comparisons = compare_run(run, haas_scaling, n_resamples, seed)
        rows.append(_run_row(run, comparisons))
        verdicts += _verdict_rows(run, comparisons)
    return Summary(pd.DataFrame(rows), pd.DataFrame(verdicts))


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """How many runs each metric (rows: ``aopc``, ``max_sensitivity``, ...) resolves each way.

    Columns ``hirescam``, ``gradcam`` and ``neither``; every metric has a row, zeros where it has no runs.
    """
    table = pd.DataFrame(0, index=list(METRICS), columns=list(SIDES.values()))
    if len(verdicts):
        table.update(verdicts.groupby(["metric", "favours"]).size().unstack(fill_value=0))
    table.index = [key for key, *_ in METRICS.values()]
    table.columns = ["hirescam", "gradcam", "neither"]
    return table.astype(int)


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
