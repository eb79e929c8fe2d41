"""Ranking the family: Friedman over blocks, Page's test of the ordered levels, groups as blocks."""

import numpy as np
import pandas as pd
import pytest

from camfaith.ranking import blocks, level_trend, rank_maps

LEVELS = {"hirescam": "location-exact", "xgradcam": "complete", "gradcam": "neither", "layercam": "neither"}


def _scores(order, n=12, seed=0):
    """Per-image scores where the maps' true means follow ``order`` (best first), with noise."""
    rng = np.random.default_rng(seed)
    means = {name: len(order) - position for position, name in enumerate(order)}
    return pd.DataFrame({name: mean + 0.3 * rng.standard_normal(n) for name, mean in means.items()},
                        index=[f"img{i}" for i in range(n)])


def test_page_detects_the_predicted_order_and_not_its_reverse():
    predicted = _scores(["hirescam", "xgradcam", "gradcam", "layercam"])
    reverse = _scores(["layercam", "gradcam", "xgradcam", "hirescam"])
    assert level_trend(predicted, LEVELS, higher_is_better=True)["p_value"] < 0.001
    assert level_trend(reverse, LEVELS, higher_is_better=True)["p_value"] > 0.5
    # the same scores read as lower-is-better reverse the trend
    assert level_trend(predicted, LEVELS, higher_is_better=False)["p_value"] > 0.5


def test_friedman_ranks_the_best_map_first_and_tells_it_from_the_worst():
    ranking = rank_maps(_scores(["hirescam", "xgradcam", "gradcam", "layercam"]), higher_is_better=True)
    assert list(ranking.mean_ranks.index) == ["hirescam", "xgradcam", "gradcam", "layercam"]
    assert ranking.friedman_p < 0.001 and ranking.posthoc.loc["hirescam", "layercam"] < 0.05
    same = rank_maps(_scores(["a", "b", "c"], n=30) * 0 + np.random.default_rng(1).standard_normal((30, 3)),
                     higher_is_better=True)
    assert same.friedman_p > 0.01


def test_images_of_one_group_are_one_block():
    scores = _scores(["hirescam", "xgradcam", "gradcam"], n=12)
    groups = pd.Series([f"lesion{i // 4}" for i in range(12)], index=scores.index)
    assert len(blocks(scores, groups)) == 3
    assert rank_maps(scores, True, groups).blocks == 3
    with pytest.raises(ValueError, match="at least 2 blocks"):
        rank_maps(scores.iloc[:1], True)
