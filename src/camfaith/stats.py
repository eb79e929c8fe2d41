"""Paired comparison of two explanation methods on the same images, and the statistics around it.

Every metric gives one number per image for Grad-CAM and one for HiResCAM, so the comparison is
paired: we summarise the per-image differences with a percentile bootstrap confidence interval of
their mean (Efron & Tibshirani 1993) and a Wilcoxon signed-rank test (Wilcoxon 1945).

Images are not always independent: HAM10000 holds several images of one lesion (Tschandl et al.
2018) and BreakHis several of one patient's slides (Spanhol et al. 2016). Resampling images then
treats near-copies as independent evidence and narrows every interval. Given ``groups`` (one label
per image), the bootstrap resamples whole groups instead: the cluster bootstrap of Davison & Hinkley
(1997, sec. 3.8) and Field & Welsh (2007). The p-values stay image-level; with groups the interval
is the one that counts.

Across many comparisons, :func:`holm` adjusts the p-values for the family (Holm 1979); across data
sets, :func:`pooled_effect` pools one estimate per data set by a random-effects meta-analysis
(DerSimonian & Laird 1986).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests


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


def resampled_means(columns: list, codes: np.ndarray | None, n_resamples: int, seed: int) -> list:
    """The mean of each column over the images of each bootstrap resample (one row per resample).

    With ``codes`` None the resamples draw images with replacement; otherwise they draw whole groups
    (as many as there are) and each mean runs over all the images of the drawn groups. With one image
    per group both draw the same integers and give the same means, bit for bit.
    """
    rng = np.random.default_rng(seed)
    if codes is None:
        n = columns[0].size
        draws = rng.integers(0, n, size=(n_resamples, n))
        return [column[draws].mean(axis=1) for column in columns]
    n_groups = int(codes.max()) + 1
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    sizes = np.bincount(codes, minlength=n_groups)[draws].sum(axis=1)
    sums = [np.bincount(codes, weights=np.asarray(column, dtype=float), minlength=n_groups) for column in columns]
    return [total[draws].sum(axis=1) / sizes for total in sums]


def _design(codes: np.ndarray | None, n: int) -> dict:
    """What a result resampled: ``resampled`` ("groups" or "images") and ``n_groups``."""
    if codes is None:
        return {"resampled": "images", "n_groups": int(n)}
    return {"resampled": "groups", "n_groups": int(codes.max()) + 1 if codes.size else 0}


def _percentiles(resampled, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    return float(np.quantile(resampled, tail)), float(np.quantile(resampled, 1 - tail))


def bootstrap_mean_interval(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
                            groups=None):
    """Mean of ``values`` and its percentile bootstrap interval; ``(mean, low, high)``.

    ``groups`` (one label per value, or None: every value its own group) makes it a cluster
    bootstrap that resamples whole groups. Missing values are dropped, with their labels.
    """
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    codes = group_codes(groups, values.size, keep)
    values = values[keep]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    (means,) = resampled_means([values], codes, n_resamples, seed)
    return (float(values.mean()), *_percentiles(means, confidence))


def paired_comparison(first, second, higher_is_better: bool, confidence: float = 0.95,
                      n_resamples: int = 2000, seed: int = 0, groups=None) -> dict:
    """Compare two methods scored on the same images (``second - first``).

    Returns the two means, the mean difference with its bootstrap interval, the Wilcoxon signed-rank
    p-value (two-sided; NaN when every difference is zero), the number of images, ``better``: which
    method the interval favours ("second", "first" or "neither" when it contains 0), given the
    metric's direction, and ``resampled``/``n_groups``: what the bootstrap drew.

    ``groups`` (one label per image: lesion, patient) resamples whole groups. The Wilcoxon p-value
    still treats images as independent, so with groups it is too small: read the interval (and
    ``better``, which rests on it), not the p-value. Images missing a score drop out, with their groups.
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need the same shape, got {first.shape} and {second.shape}")
    keep = ~(np.isnan(first) | np.isnan(second))
    codes = group_codes(groups, first.size, keep.ravel())
    first, second = first[keep], second[keep]
    difference = second - first
    mean, low, high = bootstrap_mean_interval(difference, confidence, n_resamples, seed, groups=codes)
    p_value = float("nan")
    if difference.size and np.any(difference != 0):
        p_value = float(stats.wilcoxon(second, first).pvalue)
    if low > 0 or high < 0:
        second_larger = low > 0
        better = "second" if second_larger == higher_is_better else "first"
    else:
        better = "neither"
    return {
        "n": int(difference.size),
        "mean_first": float(first.mean()) if first.size else float("nan"),
        "mean_second": float(second.mean()) if second.size else float("nan"),
        "mean_difference": mean,
        "low": low,
        "high": high,
        "p_value": p_value,
        "better": better,
    } | _design(codes, difference.size)


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
    """Paired comparison of the HAAS of two methods on the same images (eq. 10 of Lamprou 2023).

    HAAS is a ratio of accuracies over a whole set, so its interval comes from resampling images
    (the same resample for both methods), or whole groups of images given ``groups`` (one label per
    image); each resample's HAAS is the ratio of accuracies over all the images it drew. The paired
    test is McNemar's exact test on the images whose HA prediction is right for one method and wrong
    for the other; it treats images as independent, so with groups read the interval, not the p-value.

    When the model gets none of the images right, HAAS is undefined (eq. 10 divides by zero): the
    means, the interval and the p-value are NaN and ``better`` is ``"neither"``, so no verdict and no
    discrimination rest on it.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    first_right, second_right = np.asarray(ha_first) == labels, np.asarray(ha_second) == labels
    right = predictions == labels
    codes = group_codes(groups, labels.size)
    if not right.any():
        undefined = dict.fromkeys(("mean_first", "mean_second", "mean_difference", "low", "high", "p_value"), math.nan)
        return {"n": int(labels.size), **undefined, "better": "neither"} | _design(codes, labels.size)
    accuracy, first_accuracy, second_accuracy = resampled_means([right, first_right, second_right], codes,
                                                                n_resamples, seed)
    valid = accuracy > 0
    difference = (second_accuracy - first_accuracy)[valid] / accuracy[valid]
    only_first, only_second = int((first_right & ~second_right).sum()), int((second_right & ~first_right).sum())
    p_value = float("nan")
    if only_first + only_second:
        p_value = float(stats.binomtest(only_second, only_first + only_second).pvalue)
    low, high = _percentiles(difference, confidence)
    return {
        "n": int(labels.size),
        "mean_first": float(first_right.mean() / right.mean()),
        "mean_second": float(second_right.mean() / right.mean()),
        "mean_difference": float((second_right.mean() - first_right.mean()) / right.mean()),
        "low": low,
        "high": high,
        "p_value": p_value,
        "better": "second" if low > 0 else "first" if high < 0 else "neither",
    } | _design(codes, labels.size)


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
    sampling distribution, an approximation for a bootstrap percentile interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    return (np.asarray(high, dtype=float) - np.asarray(low, dtype=float)) / (2 * z)


def pooled_effect(estimates, std_errors, confidence: float = 0.95) -> dict:
    """Random-effects pooled estimate of one effect measured on several data sets (DerSimonian & Laird 1986).

    Each data set (a "study") gives an estimate and its standard error (see
    :func:`interval_standard_error`). The between-study variance ``tau2`` widens the interval when
    the studies disagree more than their errors explain; it is 0 (the fixed-effect answer) when they
    do not. Returns ``mean``, ``low``, ``high`` (normal interval), ``tau2`` and ``n`` (studies used:
    pairs with a missing value are dropped).
    """
    estimates, std_errors = np.asarray(estimates, dtype=float).ravel(), np.asarray(std_errors, dtype=float).ravel()
    if estimates.shape != std_errors.shape:
        raise ValueError(f"one standard error per estimate: got {estimates.size} estimates, {std_errors.size} errors")
    keep = ~(np.isnan(estimates) | np.isnan(std_errors))
    estimates, std_errors = estimates[keep], std_errors[keep]
    if estimates.size < 2:
        raise ValueError(f"pooling needs at least two studies with an estimate and an error, got {estimates.size}")
    if np.any(std_errors <= 0):
        raise ValueError("standard errors must be positive; a zero error would give that study all the weight")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    with np.errstate(invalid="ignore", divide="ignore"):
        result = combine_effects(estimates, std_errors**2, method_re="dl")
        fixed, random = result.conf_int(alpha=1 - confidence)[:2]
    # statsmodels leaves the DerSimonian-Laird moment estimate untruncated; DL sets tau2 = max(0, .),
    # and with tau2 = 0 the random-effects answer is the fixed-effect one.
    if result.tau2 > 0:
        mean, (low, high), tau2 = result.mean_effect_re, random, float(result.tau2)
    else:
        mean, (low, high), tau2 = result.mean_effect_fe, fixed, 0.0
    return {"mean": float(mean), "low": float(low), "high": float(high), "tau2": tau2, "n": int(estimates.size)}
