"""Paired statistics: analytic cases."""

import numpy as np
import pandas as pd
import pytest

from camfaith.stats import bootstrap_mean_interval, compare_methods, haas_comparison, paired_comparison


def test_bootstrap_interval_of_a_constant_is_the_constant():
    assert bootstrap_mean_interval([2.5] * 10) == (2.5, 2.5, 2.5)


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_data():
    rng = np.random.default_rng(0)
    small = bootstrap_mean_interval(rng.normal(1.0, 1.0, 20))
    large = bootstrap_mean_interval(rng.normal(1.0, 1.0, 2000))
    assert small[1] < small[0] < small[2]
    assert large[1] < 1.0 < large[2]
    assert large[2] - large[1] < small[2] - small[1]


def test_direction_decides_which_method_is_better():
    first = np.linspace(0, 1, 30)
    second = first + 0.1
    assert paired_comparison(first, second, higher_is_better=True)["better"] == "second"
    assert paired_comparison(first, second, higher_is_better=False)["better"] == "first"
    result = paired_comparison(first, first, higher_is_better=True)
    assert result["better"] == "neither" and np.isnan(result["p_value"])
    assert paired_comparison(first, second, True)["p_value"] < 1e-5


def test_compare_methods_pairs_by_image():
    frame = pd.DataFrame({
        "id": ["a", "b", "c"] * 2,
        "method": ["gradcam"] * 3 + ["hirescam"] * 3,
        "regions": 4,
        "aopc": [0.1, 0.2, 0.3, 0.2, 0.3, 0.4],
    })
    result = compare_methods(frame, "aopc", ["regions"], higher_is_better=True)
    assert result.loc[0, "mean_difference"] == pytest.approx(0.1)
    assert result.loc[0, "n"] == 3 and result.loc[0, "better"] in ("hirescam", "neither")
    assert result.loc[0, "mean_gradcam"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="same shape"):
        paired_comparison([1, 2], [1, 2, 3], True)


def test_haas_comparison_counts_and_direction():
    labels = np.zeros(40, dtype=int)
    predictions = np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int)]  # accuracy 1/2
    first = predictions.copy()  # HA does not change anything: HAAS 1
    second = np.zeros(40, dtype=int)  # HA fixes every error: HAAS 2
    result = haas_comparison(labels, first, second, predictions)
    assert result["mean_first"] == pytest.approx(1.0) and result["mean_second"] == pytest.approx(2.0)
    assert result["better"] == "second" and result["p_value"] < 1e-4
    with pytest.raises(ValueError, match="none of these images"):
        haas_comparison(labels, first, second, np.ones(40, dtype=int))
