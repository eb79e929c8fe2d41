"""Paired comparison of two maps on the same images, and the statistics around it.

Every metric gives one number per image and map, so comparisons are paired. A comparison reports
the mean difference with a bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987;
Efron & Tibshirani 1993, ch. 14) and a sign-flip permutation test of the mean (Fisher 1935; Good
2005), computed on the same units: images, or whole groups of images.

Images are not always independent: HAM10000 holds several images of one lesion (Tschandl et al.
2018) and BreakHis several of one patient's slides (Spanhol et al. 2016). Resampling or permuting
images then treats near-copies as independent evidence. Given ``groups`` (one label per image),
the bootstrap resamples whole groups (the cluster bootstrap of Davison & Hinkley 1997, sec. 3.8;
Field & Welsh 2007), the jackknife behind the BCa acceleration leaves out whole groups, and the
permutation test flips the sign of each group's total difference. The interval and the test
therefore rest on the same independent units, and with few groups (a BreakHis test set has 15-20
patients) the BCa correction and the exact enumeration of all sign flips keep their level where
a percentile interval and a normal approximation would not.

Some metrics are ratios over a whole set (HAAS divides by the accuracy on the original images):
every estimate here is a ratio of means, ``sum(numerator) / sum(denominator)``, with a
denominator of 1 per image for a plain mean, so one code path serves both.

Across many comparisons, :func:`holm` adjusts the p-values for the family (Holm 1979); across data
sets, :func:`pooled_effect` pools one estimate per data set by a random-effects meta-analysis with
the Hartung-Knapp-Sidik-Jonkman interval and a prediction interval (IntHout et al. 2014; Higgins
et al. 2009), which keep their coverage with few studies where the normal interval does not.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

#: up to this many groups the sign-flip test enumerates every flip (2**15 = 32768 sign patterns)
EXACT_FLIPS_UP_TO = 15


def group_codes(groups, n: int, keep=None) -> np.ndarray | None:
    """Group labels as integers ``0..G-1`` in order of first appearance (``None`` stays ``None``).

    ``groups`` has one label per value (``n`` of them); ``keep`` (a boolean mask) drops the labels of
    dropped values before coding, so a group whose values are all missing disappears. Coding in order
    of first appearance makes a bootstrap of one-image groups draw the same images as the image
    bootstrap.
    """
    if groups is None:
        return None
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.size != n:
        raise ValueError(f"groups must hold one label per value: got shape {labels.shape} for {n} values; "
                         "align the group labels (lesion, patient) with the scores")
    if pd.isna(labels).any():
        raise ValueError("groups holds missing labels; give every image a group (its own id if it has no other)")
    if keep is not None:
        labels = labels[np.asarray(keep, dtype=bool)]
    return pd.factorize(labels, sort=False)[0]


def _units(codes: np.ndarray | None, n: int) -> np.ndarray:
    """The independent unit of every value: its group, or itself."""
    return np.arange(n) if codes is None else codes


def _unit_sums(columns: list, units: np.ndarray) -> list[np.ndarray]:
    n_units = int(units.max()) + 1 if units.size else 0
    return [np.bincount(units, weights=np.asarray(column, dtype=float), minlength=n_units) for column in columns]


def _resampled_ratios(numerators: list, denominator, units: np.ndarray, n_resamples: int, seed: int) -> list:
    """``sum(numerator) / sum(denominator)`` over each bootstrap resample of whole units, per numerator.

    Each resample draws as many units as there are, with replacement; with one value per unit that
    is the plain image bootstrap.
    """
    rng = np.random.default_rng(seed)
    *tops, bottom = _unit_sums([*numerators, denominator], units)
    draws = rng.integers(0, bottom.size, size=(n_resamples, bottom.size))
    below = bottom[draws].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [top[draws].sum(axis=1) / below for top in tops]


def _jackknife_ratios(numerator, denominator, units: np.ndarray) -> np.ndarray:
    """The ratio of sums with each unit left out in turn (NaN where nothing is left)."""
    top, bottom = _unit_sums([numerator, denominator], units)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (top.sum() - top) / (bottom.sum() - bottom)


def bca_interval(estimate: float, replicates, jackknife, confidence: float = 0.95) -> tuple[float, float]:
    """The BCa interval (Efron 1987) from bootstrap ``replicates`` and leave-one-unit-out ``jackknife`` values.

    The bias correction ``z0`` counts ties with the estimate as half below (discrete statistics such
    as HAAS tie often); the acceleration comes from the jackknife skewness and is 0 when the
    jackknife has no spread. Replicates without spread give the zero-width interval at the estimate.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    replicates = np.asarray(replicates, dtype=float)
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    if np.ptp(replicates) == 0:
        return float(replicates[0]), float(replicates[0])
    below = (np.sum(replicates < estimate) + 0.5 * np.sum(replicates == estimate)) / replicates.size
    below = np.clip(below, 1 / (replicates.size + 1), replicates.size / (replicates.size + 1))
    z0 = stats.norm.ppf(below)
    jackknife = np.asarray(jackknife, dtype=float)
    jackknife = jackknife[np.isfinite(jackknife)]
    spread = jackknife.mean() - jackknife if jackknife.size > 1 else np.zeros(1)
    scale = float(np.sum(spread**2))
    acceleration = float(np.sum(spread**3)) / (6 * scale**1.5) if scale > 0 else 0.0
    tail = (1 - confidence) / 2
    levels = []
    for z in (stats.norm.ppf(tail), stats.norm.ppf(1 - tail)):
        levels.append(stats.norm.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z))))
    low, high = np.quantile(replicates, levels)
    return float(low), float(high)


def sign_flip_test(differences, groups=None, n_permutations: int = 9999, seed: int = 0) -> float:
    """Two-sided p-value of a zero mean difference, by flipping the sign of each unit's total.

    Under the null hypothesis that the paired maps are exchangeable within every unit (an image, or a
    group of images), each unit's total difference is as likely to be negative as positive, so the
    observed total is compared with its values under all sign patterns: every one of them when there
    are at most :data:`EXACT_FLIPS_UP_TO` units (an exact test), otherwise ``n_permutations`` random
    ones, counting the observed pattern (Phipson & Smyth 2010). NaN when every difference is 0.
    """
    differences = np.asarray(differences, dtype=float)
    codes = group_codes(groups, differences.size)
    (totals,) = _unit_sums([differences], _units(codes, differences.size))
    totals = totals[totals != 0]  # a unit with total 0 adds nothing under any sign
    if totals.size == 0:
        return float("nan")
    observed = abs(totals.sum())
    tolerance = 1e-9 * np.abs(totals).sum()
    if totals.size <= EXACT_FLIPS_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=totals.size)))
        return float(np.mean(np.abs(signs @ totals) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_permutations, 2000):
        signs = rng.choice((1.0, -1.0), size=(min(2000, n_permutations - start), totals.size))
        extreme += int(np.sum(np.abs(signs @ totals) >= observed - tolerance))
    return (extreme + 1) / (n_permutations + 1)


def _design(codes: np.ndarray | None, n: int) -> dict:
    """What a result resampled: ``resampled`` ("groups" or "images") and ``n_groups`` (independent units)."""
    if codes is None:
        return {"resampled": "images", "n_groups": int(n)}
    return {"resampled": "groups", "n_groups": int(codes.max()) + 1 if codes.size else 0}


def ratio_interval(numerator, denominator=None, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                   codes: np.ndarray | None = None) -> tuple[float, float, float]:
    """``sum(numerator) / sum(denominator)`` (a mean when ``denominator`` is None) and its BCa interval,
    resampling the units of ``codes`` (integer group codes from :func:`group_codes`) or the values."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.ones_like(numerator) if denominator is None else np.asarray(denominator, dtype=float)
    if numerator.size == 0 or denominator.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    units = _units(codes, numerator.size)
    estimate = float(numerator.sum() / denominator.sum())
    (replicates,) = _resampled_ratios([numerator], denominator, units, n_resamples, seed)
    return (estimate, *bca_interval(estimate, replicates, _jackknife_ratios(numerator, denominator, units),
                                    confidence))


def bootstrap_mean_interval(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                            groups=None):
    """Mean of ``values`` and its BCa bootstrap interval; ``(mean, low, high)``.

    ``groups`` (one label per value, or None: every value its own group) makes it a cluster
    bootstrap that resamples whole groups. Missing values are dropped, with their labels.
    """
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    codes = group_codes(groups, values.size, keep)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return ratio_interval(values[keep], None, confidence, n_resamples, seed, codes)


def _favoured(low: float, high: float, higher_is_better: bool) -> str:
    """Which of ``first`` and ``second`` an interval of ``second - first`` favours, given the direction."""
    if low > 0 or high < 0:
        return "second" if (low > 0) == higher_is_better else "first"
    return "neither"


def paired_comparison(first, second, higher_is_better: bool, confidence: float = 0.95,
                      n_resamples: int = 2000, seed: int = 0, groups=None, denominator=None) -> dict:
    """Compare two maps scored on the same images (``second - first``).

    Returns the two means, the mean difference with its BCa bootstrap interval, the two-sided
    sign-flip permutation p-value of a zero mean difference (:func:`sign_flip_test`; NaN when every
    difference is 0), the number of images, ``better``: which map the interval favours ("second",
    "first" or "neither" when it contains 0), given the metric's direction, and
    ``resampled``/``n_groups``: the independent units that the interval and the test both used.

    ``groups`` (one label per image: lesion, patient) makes whole groups the units. ``denominator``
    (one value per image) turns every mean into a ratio of sums, as HAAS needs. Images missing a
    score drop out, with their groups.
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need the same shape, got {first.shape} and {second.shape}")
    bottom = np.ones_like(first) if denominator is None else np.asarray(denominator, dtype=float)
    keep = ~(np.isnan(first) | np.isnan(second))
    codes = group_codes(groups, first.size, keep.ravel())
    first, second, bottom = first[keep], second[keep], bottom[keep]
    difference = second - first
    mean, low, high = ratio_interval(difference, bottom, confidence, n_resamples, seed, codes)
    total = bottom.sum()
    return {
        "n": int(difference.size),
        "mean_first": float(first.sum() / total) if total else float("nan"),
        "mean_second": float(second.sum() / total) if total else float("nan"),
        "mean_difference": mean,
        "low": low,
        "high": high,
        "p_value": sign_flip_test(difference, codes, seed=seed) if total else float("nan"),
        "better": _favoured(low, high, higher_is_better) if total else "neither",
    } | _design(codes, difference.size)


def normalised_score(score, random, positive, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                     groups=None) -> tuple[float, float, float]:
    """Where a map sits between chance and the best achievable ranking: ``(map - random) / (positive - random)``.

    A ratio of two mean paired differences on the same images (0: the random map, 1: the positive
    control, below 0: worse than chance), with its BCa interval from resampling images or ``groups``.
    NaN where the positive control does not differ from the random map on average (the scale is
    then undefined).
    """
    score, random, positive = (np.asarray(x, dtype=float) for x in (score, random, positive))
    keep = ~(np.isnan(score) | np.isnan(random) | np.isnan(positive))
    codes = group_codes(groups, score.size, keep)
    gain, room = (score - random)[keep], (positive - random)[keep]
    if gain.size == 0 or room.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    return ratio_interval(gain, room, confidence, n_resamples, seed, codes)


def _image_groups(frame: pd.DataFrame, groups: str) -> pd.Series:
    """The group label of each image ``id`` of a tidy frame; an image must belong to one group."""
    labels = frame.groupby("id")[groups]
    if (labels.nunique(dropna=False) > 1).any():
        raise ValueError(f"some images carry more than one {groups!r} label; the group must be a property of the image")
    return labels.first()


def compare_methods(frame: pd.DataFrame, value: str, by: list[str], higher_is_better: bool,
                    first: str = "gradcam", second: str = "hirescam", groups: str | None = None,
                    **options) -> pd.DataFrame:
    """:func:`paired_comparison` of HiResCAM against Grad-CAM for each group of a tidy frame.

    ``frame`` has one row per (image ``id``, ``method``, settings in ``by``) and a column ``value``.
    The result names the methods: columns ``mean_<first>``, ``mean_<second>``, and ``better`` holds
    the favoured method's name or ``"neither"``. ``groups`` names a column of ``frame`` holding each
    image's group (lesion, patient): the bootstrap then resamples groups.
    """
    if groups is not None and groups not in frame:
        raise ValueError(f"no column {groups!r} in the frame; name the column that holds each image's group")
    rows = []
    for key, subset in frame.groupby(by, sort=True):
        wide = subset.pivot_table(index="id", columns="method", values=value)
        if first not in wide or second not in wide:
            raise ValueError(f"both {first!r} and {second!r} are needed in the 'method' column")
        labels = None if groups is None else _image_groups(subset, groups).reindex(wide.index)
        result = paired_comparison(wide[first], wide[second], higher_is_better, groups=labels, **options)
        result[f"mean_{first}"], result[f"mean_{second}"] = result.pop("mean_first"), result.pop("mean_second")
        result["better"] = {"first": first, "second": second}.get(result["better"], "neither")
        key = key if isinstance(key, tuple) else (key,)
        rows.append(dict(zip(by, key)) | result)
    return pd.DataFrame(rows)


def haas_comparison(labels, ha_first, ha_second, predictions, confidence: float = 0.95,
                    n_resamples: int = 2000, seed: int = 0, groups=None) -> dict:
    """Paired comparison of the HAAS of two maps on the same images (eq. 10 of Lamprou 2023).

    HAAS is the accuracy on the HA images over the accuracy on the originals, a ratio of sums over
    the whole set: :func:`paired_comparison` of the HA correctness of the two maps with the original
    correctness as the denominator, so each resample's HAAS is recomputed over the units it drew, and
    the sign-flip test compares the HA correctness of the two maps unit by unit.

    When the model gets none of the images right, HAAS is undefined (eq. 10 divides by zero): the
    means, the interval and the p-value are NaN and ``better`` is ``"neither"``, so no verdict rests on it.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"one prediction per label: got {predictions.shape} and {labels.shape}")
    right = (predictions == labels).astype(float)
    first_right = (np.asarray(ha_first) == labels).astype(float)
    second_right = (np.asarray(ha_second) == labels).astype(float)
    return paired_comparison(first_right, second_right, True, confidence, n_resamples, seed, groups, right)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm 1979); same shape as the input.

    Controls the family-wise error rate without assuming independence. NaN p-values (comparisons
    without a test) stay NaN and do not count in the family.
    """
    p_values = np.asarray(p_values, dtype=float)
    finite = ~np.isnan(p_values)
    if np.any((p_values[finite] < 0) | (p_values[finite] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p_values[finite].min()}..{p_values[finite].max()}")
    adjusted = np.full(p_values.shape, np.nan)
    if finite.any():
        adjusted[finite] = multipletests(p_values[finite], method="holm")[1]
    return adjusted


def interval_standard_error(low, high, confidence: float = 0.95):
    """Approximate standard error of an estimate from its ``confidence`` interval.

    ``(high - low) / (2 z)`` with ``z`` the normal quantile (1.96 at 95%): exact for a normal
    sampling distribution, an approximation for a bootstrap interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    return (np.asarray(high, dtype=float) - np.asarray(low, dtype=float)) / (2 * z)


def pooled_effect(estimates, std_errors, confidence: float = 0.95) -> dict:
    """Random-effects pooled estimate of one effect measured on several data sets (studies).

    The between-study variance ``tau2`` is the DerSimonian-Laird estimate (DerSimonian & Laird 1986),
    truncated at 0. The interval is the Hartung-Knapp-Sidik-Jonkman one (a t interval with ``k - 1``
    degrees of freedom around a rescaled variance; IntHout et al. 2014), which keeps its coverage with
    few studies, in its modified form that never falls below the random-effects variance (Röver et al.
    2015; without it, studies that agree exactly would give a zero-width interval);
    ``pred_low``/``pred_high`` is the prediction interval for the effect in a new study,
    ``mean +- t(k - 2) sqrt(tau2 + se^2)`` (Higgins et al. 2009), NaN with fewer than three studies.

    A study whose interval has zero width (no spread in its data, e.g. HAAS with every HA prediction
    the same for both maps) is kept: its standard error is raised to the smallest positive one of the
    others, so it counts like the most precise of them instead of taking all the weight.
    Returns ``mean``, ``low``, ``high``, ``pred_low``, ``pred_high``, ``tau2`` and ``n`` (studies used:
    pairs with a missing value are dropped).
    """
    estimates, std_errors = np.asarray(estimates, dtype=float).ravel(), np.asarray(std_errors, dtype=float).ravel()
    if estimates.shape != std_errors.shape:
        raise ValueError(f"one standard error per estimate: got {estimates.size} estimates, {std_errors.size} errors")
    keep = ~(np.isnan(estimates) | np.isnan(std_errors))
    estimates, std_errors = estimates[keep], std_errors[keep]
    if estimates.size < 2:
        raise ValueError(f"pooling needs at least two studies with an estimate and an error, got {estimates.size}")
    if np.any(std_errors < 0):
        raise ValueError("standard errors cannot be negative")
    if not np.any(std_errors > 0):
        raise ValueError("every study has a zero standard error; there is no spread to weight them by")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    std_errors = np.maximum(std_errors, std_errors[std_errors > 0].min())
    with np.errstate(invalid="ignore", divide="ignore"):
        result = combine_effects(estimates, std_errors**2, method_re="dl")
    tau2 = max(float(result.tau2), 0.0)
    weights = 1 / (std_errors**2 + tau2)
    mean = float(np.sum(weights * estimates) / weights.sum())
    k = estimates.size
    hksj_variance = max(float(np.sum(weights * (estimates - mean) ** 2) / ((k - 1) * weights.sum())),
                        1 / float(weights.sum()))
    tail = 1 - (1 - confidence) / 2
    half = stats.t.ppf(tail, k - 1) * math.sqrt(hksj_variance)
    prediction = (stats.t.ppf(tail, k - 2) * math.sqrt(tau2 + 1 / weights.sum())) if k > 2 else float("nan")
    return {"mean": mean, "low": float(mean - half), "high": float(mean + half), "pred_low": float(mean - prediction),
            "pred_high": float(mean + prediction), "tau2": tau2, "n": int(k)}
