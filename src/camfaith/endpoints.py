"""The registry of metrics, and the one route from a run's per-image scores to its three answers.

A metric chapter scores every map (the two CAMs, their inversions and the controls of
:mod:`camfaith.controls`) in many settings. One setting per metric is the *primary endpoint* that an
answer may rest on; the others are shown as secondary. :data:`METRICS` holds, per metric, its
direction, its primary setting, the rule that validates it and the maps that rule needs; chapters,
summary and plots all read it. :func:`answers` turns the per-image scores of one run into three
answers, asked separately:

1. **Is the metric valid on this run?** ``validity="controls"`` (AOPC, HAAS): the positive control (an
   occlusion map built with the metric's own removal, which uses the model but neither CAM) beats the
   random map, and the random map beats the inverted positive control, both with paired intervals
   that exclude zero. ``"chance"`` (relevance mass): the chance level is fixed by the masks (a map that
   knows nothing puts the mask's share of its mass on the mask), so the metric is valid by
   construction and maps are compared with that level. ``"none"`` (Max-Sensitivity): it measures
   stability under input noise (a constant map is perfect, an inverted map scores like the original),
   so no control can validate it as a measure of faithfulness; it is reported as robustness.
2. **Is each map informative?** Against the random map (or the chance level): beats it, is
   indistinguishable from it, or is worse; its normalised score ``(map - random) / (positive -
   random)`` places it between chance (0) and the positive control (1); and each CAM against its own
   inversion (for AOPC, its MoRF against its LeRF curve).
3. **Which CAM does the metric favour?** HiResCAM minus Grad-CAM, with its interval and its
   permutation p-value, in the category of informativeness (both informative, only HiResCAM, only
   Grad-CAM, neither informative). The verdict itself is drawn in :mod:`camfaith.summary`, after the
   p-values of the configuration's primary tests are adjusted together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from camfaith.parameters import check_choice, parse_options
from camfaith.stats import compare_methods, normalised_score, paired_comparison

CAMS = ("gradcam", "hirescam")
REFERENCES = ("random", "centre", "edges")  # reference maps shown in every table
POSITIVE, ORACLE, CHANCE = "occlusion", "mask", "chance"


def inverse(name: str) -> str:
    """The name of a map's inversion (``1 - map``: the least relevant first)."""
    return f"{name}_inverted"


class Metric(NamedTuple):
    label: str  # the name shown to readers
    scores: str  # the per-image file of the run (camfaith.runs.SCORES)
    column: str | None  # the per-image value (None for HAAS, a ratio over the whole set)
    higher_is_better: bool
    settings: dict  # the primary setting: column -> value, where the column exists
    averaged_over: str | None  # the setting averaged per image
    validity: str  # "controls", "chance" or "none" (module docstring)
    reference: str  # the map of chance
    positive: str | None  # the positive control
    secondary: dict | None = None  # the variant shown beside the primary endpoint, never counted


METRICS = {
    "aopc": Metric("AOPC", "aopc", "aopc", True, {"order": "morf", "tie_break": "random"}, "regions", "controls",
                   "random", POSITIVE),
    "max_sensitivity": Metric("Max-Sensitivity", "max_sensitivity", "max_sensitivity", False, {"normalized": False},
                              "radius", "none", "random", None, {"normalized": True}),
    "haas": Metric("HAAS", "haas", None, True, {"scaling": "centered"}, None, "controls", "random", POSITIVE,
                   {"scaling": "unit"}),
    "relevance_mass": Metric("Relevance mass", "localisation", "relevance_mass", True, {}, None, "chance", CHANCE,
                             ORACLE),
}
# Metrics of the family chapter alone: scored for every map on every run, never in the verdicts of the summary
# (on a one-Linear Flatten head the theory already knows which order is best).
ENDPOINTS = METRICS | {
    "feature_deletion": Metric("Feature deletion", "feature_deletion", "feature_deletion", True, {}, None, "controls",
                               "random", POSITIVE),
}
CATEGORIES = {(True, True): "both informative", (False, True): "only HiResCAM", (True, False): "only Grad-CAM",
              (False, False): "neither informative"}


def primary_settings(overrides: dict | str | None = None) -> dict[str, dict]:
    """The primary setting of every metric, with the configuration's overrides applied.

    ``overrides`` maps ``"metric.column"`` to a value, e.g. ``{"haas.scaling": "unit"}`` to make the original
    code's scaling the primary HAAS endpoint (on the command line: ``"haas.scaling=unit"``).
    """
    settings = {metric: dict(entry.settings) for metric, entry in METRICS.items()}
    for dotted, value in parse_options(overrides).items():
        metric, _, column = dotted.partition(".")
        check_choice("metric of a primary endpoint", metric, METRICS)
        if not column:
            raise ValueError(f"a primary endpoint is set as metric.column=value, got {dotted!r}")
        settings[metric][column] = value
    return settings


def select(frame: pd.DataFrame, metric: str, settings: dict | None = None) -> pd.DataFrame:
    """The rows of a per-image table in the metric's primary setting (or in ``settings``)."""
    check_choice("metric", metric, ENDPOINTS)
    wanted = ENDPOINTS[metric].settings if settings is None else settings
    for column, value in wanted.items():
        if column in frame:
            frame = frame[frame[column] == value]
    if frame.empty:
        raise ValueError(f"the {metric} scores hold no rows with {wanted}; was the chapter run with that setting?")
    return frame


def _aligned(groups: pd.Series | None, ids: pd.Index):
    if groups is None:
        return None
    aligned = groups.reindex(ids.astype(str))
    missing = aligned.index[aligned.isna()]
    if len(missing):
        raise ValueError(f"no group for {len(missing)} image(s), e.g. {missing[0]!r}; "
                         "the groups must come from the run's split manifest")
    return aligned.to_numpy()


def per_image_values(frame: pd.DataFrame, metric: str, settings: dict | None = None):
    """``(values, denominator)``: the primary endpoint per image (rows) and map (columns), and the
    per-image denominator of a ratio metric (HAAS: the original image classified right) or None.

    The mean of a map's column over the images (divided by the mean denominator) is its score.
    """
    entry, rows = ENDPOINTS[metric], select(frame, metric, settings)
    if entry.column is None:  # HAAS: HA correctness over the correctness on the originals
        rows = rows.assign(ha_right=(rows["ha_prediction"] == rows["label"]).astype(float),
                           right=(rows["prediction"] == rows["label"]).astype(float))
        values = rows.pivot(index="id", columns="method", values="ha_right")
        return values, rows.groupby("id")["right"].first().reindex(values.index)
    return rows.groupby(["id", "method"])[entry.column].mean().unstack(), None


def comparer(frame: pd.DataFrame, metric: str, settings: dict | None = None, n_resamples: int = 2000,
             seed: int = 0, groups: pd.Series | None = None) -> Callable[[str, str], dict]:
    """``compare(first, second)``: the paired comparison of two maps (``second - first``) on the endpoint.

    ``groups`` maps image ids to the group (lesion, patient) each belongs to; the interval and the
    test then rest on whole groups, otherwise on images. ``compare.normalised(name)`` is the
    normalised score of a map (:func:`camfaith.stats.normalised_score`) where the metric has a
    positive control; ``compare.methods`` lists the maps scored.
    """
    entry = ENDPOINTS[metric]
    values, denominator = per_image_values(frame, metric, settings)
    options = dict(n_resamples=n_resamples, seed=seed, groups=_aligned(groups, values.index))

    def compare(first: str, second: str) -> dict:
        return paired_comparison(values[first], values[second], entry.higher_is_better, denominator=denominator,
                                 **options)

    def normalised(name: str) -> tuple[float, float, float]:
        if entry.positive not in values or entry.reference not in values:
            return float("nan"), float("nan"), float("nan")
        return normalised_score(values[name], values[entry.reference], values[entry.positive], **options)

    compare.methods = list(values.columns)
    compare.normalised = normalised
    return compare


def ordered(names) -> list[str]:
    """Map names in the order of every table: the CAMs, the positive control, the oracle (each followed by
    its inversion), the reference maps, then any other."""
    first = [n for m in (*CAMS, POSITIVE, ORACLE) for n in (m, inverse(m))] + [*REFERENCES, CHANCE]
    return sorted(names, key=lambda name: (first.index(name) if name in first else len(first), name))


def _passes(result: dict) -> bool:
    return result["better"] == "second"


def validity(compare: Callable, metric: str) -> dict:
    """Question 1: is the metric valid on this run? ``status`` is ``"valid"``, ``"not valid"``,
    ``"not applicable"`` (a robustness measure) or ``"no controls"`` (scores without them), with the
    two comparisons it rests on (positive control against random, random against the inverted control)
    and the oracle's where the data have masks."""
    entry = ENDPOINTS[metric]
    if entry.validity == "none":
        return {"status": "not applicable", "positive": None, "negative": None, "oracle": None}
    if entry.validity == "chance":
        oracle = compare(entry.reference, entry.positive) if entry.positive in compare.methods else None
        return {"status": "valid", "positive": oracle, "negative": None, "oracle": oracle}
    needed = {entry.reference, entry.positive, inverse(entry.positive)}
    if not needed <= set(compare.methods):
        return {"status": "no controls", "positive": None, "negative": None, "oracle": None}
    positive = compare(entry.reference, entry.positive)
    negative = compare(inverse(entry.positive), entry.reference)
    oracle = compare(entry.reference, ORACLE) if ORACLE in compare.methods else None
    status = "valid" if _passes(positive) and _passes(negative) else "not valid"
    return {"status": status, "positive": positive, "negative": negative, "oracle": oracle}


def _standing(result: dict) -> str:
    return {"second": "beats random", "first": "worse than random"}.get(result["better"], "indistinguishable")


def informativeness(compare: Callable, metric: str) -> pd.DataFrame:
    """Question 2, per map: its score, its difference from the random map (or the chance level) with
    the interval and where that leaves it, its normalised score with its interval, and whether it beats
    its own inversion (where that was scored)."""
    entry = ENDPOINTS[metric]
    rows = []
    for name in ordered([m for m in compare.methods if m != entry.reference]):
        against = compare(entry.reference, name)
        scaled, scaled_low, scaled_high = compare.normalised(name)
        own = compare(inverse(name), name) if inverse(name) in compare.methods else None
        rows.append({"map": name, "score": against["mean_second"], "minus random": against["mean_difference"],
                     "low": against["low"], "high": against["high"], "standing": _standing(against),
                     "normalised": scaled, "normalised low": scaled_low, "normalised high": scaled_high,
                     "beats its inversion": "" if own is None else ("yes" if _passes(own) else "no")})
    return pd.DataFrame(rows)


def noise_stability(frame: pd.DataFrame, metric: str, n_resamples: int = 2000, seed: int = 0,
                    groups: pd.Series | None = None, settings: dict | None = None) -> pd.DataFrame | None:
    """HiResCAM against Grad-CAM on the primary endpoint, once per noise seed (column ``noise_seed``).

    The noise of AOPC and Max-Sensitivity is itself random; a verdict whose favoured side (HiResCAM,
    Grad-CAM or neither) is not the same for every noise seed is *unstable*. None when the scores
    hold a single noise seed: stability is then not checked.
    """
    if "noise_seed" not in frame or frame["noise_seed"].nunique() < 2:
        return None
    rows = []
    for noise_seed, part in frame.groupby("noise_seed"):
        result = comparer(part, metric, settings, n_resamples=n_resamples, seed=seed, groups=groups)(*CAMS)
        rows.append({"noise_seed": noise_seed, "difference": result["mean_difference"], "low": result["low"],
                     "high": result["high"], "better": result["better"]})
    return pd.DataFrame(rows)


def stability(noise: pd.DataFrame | None) -> str:
    """``"stable"``, ``"unstable"`` or ``"not checked"`` (one noise seed), from :func:`noise_stability`."""
    if noise is None:
        return "not checked"
    return "stable" if noise["better"].nunique() == 1 else "unstable"


class Answers(NamedTuple):
    """The three answers of one metric on one run (module docstring)."""

    validity: dict
    maps: pd.DataFrame  # informativeness of every map
    comparison: dict  # HiResCAM against Grad-CAM (second - first)
    category: str  # both informative / only HiResCAM / only Grad-CAM / neither informative / robustness measure
    noise: pd.DataFrame | None  # the comparison per noise seed
    secondary: dict | None  # the comparison on the secondary variant


def answers(frame: pd.DataFrame, metric: str, settings: dict | None = None, n_resamples: int = 2000, seed: int = 0,
            groups: pd.Series | None = None) -> Answers:
    """The three answers of ``metric`` on the per-image scores ``frame`` of one run (module docstring).

    ``settings`` overrides the primary setting; ``groups`` (image id -> lesion or patient) makes whole
    groups the units of every interval and test. :func:`run_answers` calls this with the
    run's seed and groups, for the chapters and the summary alike.
    """
    entry = ENDPOINTS[metric]
    settings = entry.settings if settings is None else settings
    compare = comparer(frame, metric, settings, n_resamples, seed, groups)
    maps = informativeness(compare, metric)
    informative = {name: standing == "beats random" for name, standing in zip(maps["map"], maps["standing"])}
    secondary = None
    if entry.secondary and entry.secondary != settings and all(
            column in frame and (frame[column] == value).any() for column, value in entry.secondary.items()):
        secondary = comparer(frame, metric, entry.secondary, n_resamples, seed, groups)(*CAMS)
    category = CATEGORIES[(informative.get("gradcam", False), informative.get("hirescam", False))]
    if entry.validity == "none":  # beating a random map is stability there, not information
        category = "robustness measure"
    return Answers(validity(compare, metric), maps, compare(*CAMS), category,
                   noise_stability(frame, metric, n_resamples, seed, groups, settings), secondary)


def validity_table(result: Answers) -> pd.DataFrame:
    """The comparisons that validate the metric on the run, one row each (empty for a robustness measure)."""
    checks = (("positive", "the positive control beats the reference"), ("negative", "the reference beats the "
              "inverted positive control"), ("oracle", "the object mask beats the reference"))
    rows = []
    for key, check in checks:
        result_ = result.validity[key]
        if result_ is None or (key == "oracle" and result.validity["positive"] is result_):
            continue
        rows.append({"check": check, "difference": result_["mean_difference"], "low": result_["low"],
                     "high": result_["high"], "p": result_["p_value"], "passes": _passes(result_)})
    return pd.DataFrame(rows, columns=["check", "difference", "low", "high", "p", "passes"])


def answer_table(result: Answers) -> pd.DataFrame:
    """The three answers as one small table for readers (the opening table of a metric chapter)."""
    maps = result.maps.set_index("map")
    comparison = result.comparison
    favoured = {"second": "HiResCAM", "first": "Grad-CAM"}.get(comparison["better"], "neither")
    if result.validity["status"] == "not valid":
        favoured = f"not read, the metric is not valid here (the interval favours {favoured})"
    units = "groups" if comparison["resampled"] == "groups" else "images"

    def standing(name: str) -> str:
        if name not in maps.index:
            return "not scored"
        row = maps.loc[name]
        scaled = "" if np.isnan(row["normalised"]) else (
            f"; normalised {row['normalised']:.2f} [{row['normalised low']:.2f}, {row['normalised high']:.2f}]")
        return f"{row['standing']}{scaled}"

    return pd.DataFrame({
        "question": ["1. Is the metric valid on this run?", "2. Is Grad-CAM informative?",
                     "2. Is HiResCAM informative?", "3. Which CAM does it favour?"],
        "answer": [result.validity["status"], standing("gradcam"), standing("hirescam"),
                   f"{favoured} ({result.category}); HiResCAM - Grad-CAM {comparison['mean_difference']:+.3g} "
                   f"[{comparison['low']:.3g}, {comparison['high']:.3g}], p = {comparison['p_value']:.2g}, "
                   f"{comparison['n_groups']} {units}; noise stability {stability(result.noise)}"],
    })


# -- on a run: seeded by it, and resampling whole groups (lesions, patients) where its data set has them --------


def run_answers(run, frame: pd.DataFrame, metric: str, settings: dict | None = None) -> Answers:
    """:func:`answers` on the per-image scores of a :class:`camfaith.runs.Run`, seeded by the run and with its
    test groups: the one route that the chapters and the summary share."""
    return answers(frame, metric, settings, seed=run.seed, groups=run.test_groups())


def run_comparer(run, frame: pd.DataFrame, metric: str, settings: dict | None = None) -> Callable[[str, str], dict]:
    """:func:`comparer` on a run's per-image scores, seeded and grouped as :func:`run_answers`."""
    return comparer(frame, metric, settings, seed=run.seed, groups=run.test_groups())


def run_comparison(run, frame: pd.DataFrame, value: str, by: list[str], higher_is_better: bool) -> pd.DataFrame:
    """:func:`camfaith.stats.compare_methods` on a run's per-image scores (HiResCAM against Grad-CAM per setting
    in ``by``), seeded by the run and resampling its test groups (each image its own where it has none)."""
    groups = run.test_groups()
    ids = frame["id"].astype(str)
    frame = frame.assign(group=ids if groups is None else ids.map(groups))
    return compare_methods(frame, value, by, higher_is_better, seed=run.seed, groups="group")
