"""Paired comparison of two explanation methods on the same images.

Every metric gives one number per image for Grad-CAM and one for HiResCAM, so the comparison is
paired: we summarise the per-image differences with a percentile bootstrap confidence interval of
their mean (Efron & Tibshirani 1993) and a Wilcoxon signed-rank test (Wilcoxon 1945).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def bootstrap_mean_interval(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """Mean of ``values`` and its percentile bootstrap interval; ``(mean, low, high)``."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_comparison(first, second, higher_is_better: bool, confidence: float = 0.95,
                      n_resamples: int = 2000, seed: int = 0) -> dict:
    """Compare two methods scored on the same images (``second - first``).

    Returns the two means, the mean difference with its bootstrap interval, the Wilcoxon signed-rank
    p-value (two-sided; NaN when every difference is zero), the number of images, and ``better``:
    which method the interval favours ("second", "first" or "neither" when it contains 0), given the
    metric's direction.
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired scores need the same shape, got {first.shape} and {second.shape}")
    keep = ~(np.isnan(first) | np.isnan(second))
    first, second = first[keep], second[keep]
    difference = second - first
    mean, low, high = bootstrap_mean_interval(difference, confidence, n_resamples, seed)
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
    }


def compare_methods(frame: pd.DataFrame, value: str, by: list[str], higher_is_better: bool,
                    first: str = "gradcam", second: str = "hirescam", **options) -> pd.DataFrame:
    """:func:`paired_comparison` of HiResCAM against Grad-CAM for each group of a tidy frame.

    ``frame`` has one row per (image ``id``, ``method``, settings in ``by``) and a column ``value``.
    The result names the methods: columns ``mean_<first>``, ``mean_<second>``, and ``better`` holds
    the favoured method's name or ``"neither"``.
    """
    rows = []
    for key, group in frame.groupby(by, sort=True):
        wide = group.pivot_table(index="id", columns="method", values=value)
        if first not in wide or second not in wide:
            raise ValueError(f"both {first!r} and {second!r} are needed in the 'method' column")
        result = paired_comparison(wide[first], wide[second], higher_is_better, **options)
        result[f"mean_{first}"], result[f"mean_{second}"] = result.pop("mean_first"), result.pop("mean_second")
        result["better"] = {"first": first, "second": second}.get(result["better"], "neither")
        key = key if isinstance(key, tuple) else (key,)
        rows.append(dict(zip(by, key)) | result)
    return pd.DataFrame(rows)


def haas_comparison(labels, ha_first, ha_second, predictions, confidence: float = 0.95,
                    n_resamples: int = 2000, seed: int = 0) -> dict:
    """Paired comparison of the HAAS of two methods on the same images (eq. 10 of Lamprou 2023).

    HAAS is a ratio of accuracies over a whole set, so its interval comes from resampling images
    (the same resample for both methods). The paired test is McNemar's exact test on the images whose
    HA prediction is right for one method and wrong for the other.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    first_right, second_right = np.asarray(ha_first) == labels, np.asarray(ha_second) == labels
    right = predictions == labels
    if not right.any():
        raise ValueError("HAAS is undefined: the model gets none of these images right")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, labels.size, size=(n_resamples, labels.size))
    accuracy = right[draws].mean(axis=1)
    valid = accuracy > 0
    difference = (second_right[draws].mean(axis=1) - first_right[draws].mean(axis=1))[valid] / accuracy[valid]
    tail = (1 - confidence) / 2
    only_first, only_second = int((first_right & ~second_right).sum()), int((second_right & ~first_right).sum())
    p_value = float("nan")
    if only_first + only_second:
        p_value = float(stats.binomtest(only_second, only_first + only_second).pvalue)
    low, high = float(np.quantile(difference, tail)), float(np.quantile(difference, 1 - tail))
    return {
        "n": int(labels.size),
        "mean_first": float(first_right.mean() / right.mean()),
        "mean_second": float(second_right.mean() / right.mean()),
        "mean_difference": float((second_right.mean() - first_right.mean()) / right.mean()),
        "low": low,
        "high": high,
        "p_value": p_value,
        "better": "second" if low > 0 else "first" if high < 0 else "neither",
    }
