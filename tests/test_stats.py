"""Paired statistics: analytic cases."""

import math

import numpy as np
import pandas as pd
import pytest

from camfaith.stats import (
    bootstrap_mean_interval,
    compare_methods,
    haas_comparison,
    holm,
    interval_standard_error,
    normalised_score,
    paired_comparison,
    pooled_effect,
    sign_flip_test,
)


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
    # every one of the 30 differences is positive: no random sign pattern of the 9999 reaches the observed sum
    assert paired_comparison(first, second, True)["p_value"] == pytest.approx(1 / 10_000)


def test_compare_methods_pairs_by_image():
    frame = pd.DataFrame({
        "id": ["a", "b", "c"] * 2,
        "method": ["gradcam"] * 3 + ["hirescam"] * 3,
        "regions": 4,
        "aopc": [0.1, 0.2, 0.3, 0.2, 0.3, 0.4],
    })
    result = compare_methods(frame, "aopc", ["regions"], higher_is_better=True)
    assert result.loc[0, "mean_difference"] == pytest.approx(0.1)
    # every difference is 0.1: the interval is [0.1, 0.1], and with 3 images the exact test has 2 / 8
    assert result.loc[0, "n"] == 3 and result.loc[0, "better"] == "hirescam"
    assert (result.loc[0, "low"], result.loc[0, "high"]) == pytest.approx((0.1, 0.1))
    assert result.loc[0, "p_value"] == pytest.approx(2 / 8)
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
    # 20 images right only with the second map, none only with the first: the smallest Monte Carlo p-value
    assert result["better"] == "second" and result["p_value"] == pytest.approx(1 / 10_000)
    undefined = haas_comparison(labels, first, second, np.ones(40, dtype=int))  # no image right: eq. 10 is 0/0
    assert undefined["better"] == "neither" and undefined["n"] == 40
    assert all(math.isnan(undefined[key]) for key in ("mean_first", "mean_difference", "low", "high", "p_value"))


# --- clustered images: the cluster bootstrap resamples whole groups -------------------------------


def clustered_scores(n_groups=20, per_group=10, seed=0):
    """Scores whose images share a strong group effect (sd 1) over little image noise (sd 0.1)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    return rng.normal(0, 1, n_groups)[groups] + rng.normal(0, 0.1, groups.size), groups


def test_cluster_bootstrap_widens_the_interval_of_correlated_images():
    values, groups = clustered_scores()
    mean, low, high = bootstrap_mean_interval(values)
    cluster = bootstrap_mean_interval(values, groups=groups)
    assert cluster[0] == mean
    # 200 images carry little more than the information of 20 groups: width grows by about sqrt(10)
    assert cluster[2] - cluster[1] > 2.5 * (high - low)
    group_means = values.reshape(20, 10).mean(axis=1)
    expected = 2 * 1.96 * group_means.std() / np.sqrt(20)  # the interval of 20 independent group means
    assert cluster[2] - cluster[1] == pytest.approx(expected, rel=0.15)


def test_cluster_bootstrap_with_one_image_per_group_is_the_image_bootstrap():
    rng = np.random.default_rng(1)
    first, second = rng.normal(0, 1, 50), rng.normal(0.2, 1, 50)
    first[[4, 17]] = np.nan
    labels = [f"lesion{i}" for i in rng.permutation(50)]  # unique labels, in no particular order
    assert bootstrap_mean_interval(second, groups=labels) == bootstrap_mean_interval(second)
    images = paired_comparison(first, second, True, seed=3)
    groups = paired_comparison(first, second, True, seed=3, groups=labels)
    assert images.pop("resampled") == "images" and groups.pop("resampled") == "groups"
    assert groups == images and groups["n_groups"] == 48
    labels_, predictions = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    ha_first, ha_second = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    images = haas_comparison(labels_, ha_first, ha_second, predictions, seed=5)
    groups = haas_comparison(labels_, ha_first, ha_second, predictions, seed=5, groups=labels)
    assert groups.pop("resampled") == "groups" and images.pop("resampled") == "images"
    assert groups == images


def test_the_bca_interval_corrects_a_skewed_statistic_and_keeps_its_coverage():
    """Means of 25 exponential values: the percentile interval misses high too often, BCa much less."""
    rng = np.random.default_rng(2)
    covered = [low <= 1.0 <= high for low, high in
               (bootstrap_mean_interval(rng.exponential(1.0, 25), 0.9, 1000, seed=k)[1:] for k in range(300))]
    assert 0.84 <= np.mean(covered) <= 0.95  # nominal 0.9


def test_missing_scores_drop_their_images_and_empty_groups():
    values, groups = clustered_scores(n_groups=6, per_group=4, seed=4)
    first = np.zeros_like(values)
    first[groups == 2] = np.nan  # a whole group without scores
    first[[0, 5]] = np.nan  # and single images of other groups
    result = paired_comparison(first, values, True, groups=groups)
    keep = ~np.isnan(first)
    assert result["n"] == 24 - 6 and result["n_groups"] == 5
    assert result == paired_comparison(first[keep], values[keep], True, groups=groups[keep])


def test_cluster_haas_widens_when_whole_groups_are_right_or_wrong():
    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(15), 8)
    labels = np.zeros(groups.size, dtype=int)
    predictions = np.where(rng.random(15)[groups] < 0.6, 0, 1)  # the model is right on whole lesions
    ha_first = np.where(rng.random(15)[groups] < 0.5, 0, 1)
    ha_second = np.where(rng.random(15)[groups] < 0.7, 0, 1)
    images = haas_comparison(labels, ha_first, ha_second, predictions)
    cluster = haas_comparison(labels, ha_first, ha_second, predictions, groups=groups)
    assert cluster["mean_difference"] == images["mean_difference"] and cluster["n_groups"] == 15
    assert cluster["high"] - cluster["low"] > 2 * (images["high"] - images["low"])


def test_compare_methods_takes_the_groups_from_a_column():
    values, groups = clustered_scores(n_groups=8, per_group=5, seed=8)
    ids = [f"img{i:03d}" for i in range(values.size)]  # the pivot sorts ids: keep them in image order
    frame = pd.DataFrame({"id": ids * 2, "method": ["gradcam"] * 40 + ["hirescam"] * 40, "regions": 4,
                          "lesion": np.tile(groups, 2), "aopc": np.r_[np.zeros(40), values]})
    result = compare_methods(frame, "aopc", ["regions"], higher_is_better=True, groups="lesion")
    expected = paired_comparison(np.zeros(40), values, True, groups=groups)
    assert result.loc[0, "resampled"] == "groups" and result.loc[0, "n_groups"] == 8
    assert (result.loc[0, "low"], result.loc[0, "high"]) == (expected["low"], expected["high"])
    with pytest.raises(ValueError, match="no column 'patient'"):
        compare_methods(frame, "aopc", ["regions"], higher_is_better=True, groups="patient")
    frame.loc[0, "lesion"] = 99  # img0 now in two groups
    with pytest.raises(ValueError, match="more than one 'lesion' label"):
        compare_methods(frame, "aopc", ["regions"], higher_is_better=True, groups="lesion")


def test_bad_groups_raise_clear_errors():
    with pytest.raises(ValueError, match="one label per value"):
        bootstrap_mean_interval([1.0, 2.0, 3.0], groups=[0, 1])
    with pytest.raises(ValueError, match="one label per value"):
        paired_comparison([1.0, 2.0], [2.0, 3.0], True, groups=[0, 0, 1])
    with pytest.raises(ValueError, match="one label per value"):
        haas_comparison([0, 0], [0, 1], [0, 0], [0, 0], groups=[0])
    with pytest.raises(ValueError, match="missing labels"):
        bootstrap_mean_interval([1.0, 2.0], groups=["a", None])


# --- families of comparisons and pooling across data sets -------------------------------------------


def test_holm_matches_the_hand_computed_step_down():
    # sorted p: 0.005, 0.01, 0.03, 0.04 -> times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    # a NaN stays NaN and does not enlarge the family
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04, 0.03, 0.005]), [0.03, np.nan, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert np.isnan(holm([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        holm([0.2, 1.5])


def test_pooled_effect_of_identical_studies_is_their_common_value():
    errors = np.array([0.1, 0.2, 0.1, 0.3])
    result = pooled_effect([0.3] * 4, errors)
    # the modified Hartung-Knapp interval never falls below the inverse total weight: t(3) times its root
    half_width = 3.182446 / np.sqrt((1 / errors**2).sum())
    assert result["mean"] == pytest.approx(0.3) and result["tau2"] == 0 and result["n"] == 4
    assert (result["low"], result["high"]) == pytest.approx((0.3 - half_width, 0.3 + half_width))


def test_pooled_effect_of_disagreeing_studies_widens_by_tau2():
    estimates, errors = np.array([0.0, 1.0, 2.0, 3.0, np.nan]), np.array([0.1, 0.1, 0.1, 0.1, 0.1])
    result = pooled_effect(estimates, errors)
    # DerSimonian-Laird by hand: w = 100, Q = 100 * 5 = 500, c = 400 - 100**2 * 4 / 400 = 300
    assert result["tau2"] == pytest.approx((500 - 3) / 300) and result["n"] == 4
    assert result["mean"] == pytest.approx(1.5)
    fixed_half_width = 1.96 * np.sqrt(1 / 400)
    assert result["high"] - result["low"] > 10 * 2 * fixed_half_width
    # equal weights w = 1 / (0.01 + tau2): the Hartung-Knapp variance sum((y - 1.5)^2) / (3 * 4) = 5 / 12, at
    # least 1 / sum(w); a t interval with 3 degrees of freedom, and a prediction interval with 2
    variance = max(5 / 12, (0.01 + result["tau2"]) / 4)
    assert result["high"] - result["low"] == pytest.approx(2 * 3.182446 * np.sqrt(variance))
    assert result["pred_high"] - result["pred_low"] == pytest.approx(
        2 * 4.302653 * np.sqrt(result["tau2"] + (0.01 + result["tau2"]) / 4))
    with pytest.raises(ValueError, match="at least two studies"):
        pooled_effect([1.0, np.nan], [0.1, 0.1])
    # a study without spread counts like the most precise of the others instead of taking all the weight
    kept = pooled_effect([1.0, 2.0, 3.0], [0.1, 0.0, 0.2])
    assert kept["n"] == 3 and kept == pooled_effect([1.0, 2.0, 3.0], [0.1, 0.1, 0.2])
    with pytest.raises(ValueError, match="no spread"):
        pooled_effect([1.0, 2.0], [0.0, 0.0])


def test_interval_standard_error_inverts_a_normal_interval():
    assert interval_standard_error(-1.96, 1.96) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_allclose(interval_standard_error([0.0, 1.0], [0.392, 1.196]), [0.1, 0.05], rtol=1e-4)


# --- the cluster-level permutation test ---------------------------------------------------------------


def clustered_null(rng, n_groups: int):
    """Paired differences with a strong group effect and mean zero: groups of 1 to 12 images."""
    sizes = rng.integers(1, 13, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    return rng.normal(0, 1, n_groups)[groups] + rng.normal(0, 0.3, groups.size), groups


@pytest.mark.parametrize("n_groups", [12, 40])
def test_the_sign_flip_test_keeps_its_level_on_clustered_null_data(n_groups):
    """400 null data sets at alpha = 0.05: at most 7% rejections (exact enumeration for 12 groups)."""
    rng = np.random.default_rng(n_groups)
    p_values = [sign_flip_test(*clustered_null(rng, n_groups), n_permutations=999, seed=k) for k in range(400)]
    assert np.mean(np.asarray(p_values) < 0.05) <= 0.07
    # and it sees an effect of half the group spread
    shifted = [sign_flip_test(d + 0.8, g, n_permutations=999) for d, g in (clustered_null(rng, 40) for _ in range(50))]
    assert np.mean(np.asarray(shifted) < 0.05) > 0.8


def test_the_image_level_test_is_too_liberal_on_the_same_clustered_data():
    """What the group-level test prevents: treating the images of a lesion as independent."""
    rng = np.random.default_rng(3)
    p_values = [sign_flip_test(clustered_null(rng, 12)[0], n_permutations=499, seed=k) for k in range(200)]
    assert np.mean(np.asarray(p_values) < 0.05) > 0.2


def test_the_exact_sign_flip_test_counts_sign_patterns():
    # group totals 3 (= 2 + 1), 1 and -1, observed |sum| = 3. The 8 sign patterns give +-3 +- 1 +- 1 in
    # {5, 3, 3, 1} and their negatives: |.| >= 3 in 6 of 8
    assert sign_flip_test([2.0, 1.0, 1.0, -1.0], [0, 0, 1, 2]) == pytest.approx(6 / 8)
    assert np.isnan(sign_flip_test([0.0, 0.0]))


def test_the_normalised_score_is_zero_at_chance_and_one_at_the_positive_control():
    rng = np.random.default_rng(4)
    random, positive = rng.normal(0.2, 0.05, 60), rng.normal(0.8, 0.05, 60)
    assert normalised_score(random, random, positive)[0] == pytest.approx(0.0)
    assert normalised_score(positive, random, positive)[0] == pytest.approx(1.0)
    halfway, low, high = normalised_score((random + positive) / 2, random, positive)
    assert halfway == pytest.approx(0.5) and low < 0.5 < high
    assert np.isnan(normalised_score(positive, random, random)[0])  # no room between chance and the control
