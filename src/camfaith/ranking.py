"""Ranking the CAM family on one run, and testing the ordered hypothesis of the theory.

The units are those of every other interval in the report: where the data set groups its images
(lesions, patients), each group's mean score is one block, so that images of one lesion do not count
as independent evidence. Within each block the maps are ranked (1 is best, in the metric's direction):

- the Friedman test asks whether the maps' mean ranks differ at all; Conover's post-hoc test for
  Friedman ranks (Conover and Iman 1979, via scikit-posthocs) says which pairs do, Holm-adjusted;
- Page's trend test (Page 1963, :func:`scipy.stats.page_trend_test`) asks whether the levels of the
  hierarchy of ``book/theory.md`` are ordered as predicted: location-exact better than complete better
  than neither, each level's score the mean of its maps within a block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import scikit_posthocs
from scipy import stats

from camfaith.endpoints import ENDPOINTS, per_image_values
from camfaith.family import FAMILY, LEVELS, faithfulness_level


class Ranking(NamedTuple):
    mean_ranks: pd.Series  # per map, 1 = best
    friedman_statistic: float
    friedman_p: float
    posthoc: pd.DataFrame  # Holm-adjusted p-values of Conover's pairwise test
    blocks: int


def blocks(values: pd.DataFrame, groups: pd.Series | None = None) -> pd.DataFrame:
    """Per-image scores (rows: image ids; columns: maps) averaged within each group (the blocks)."""
    if groups is None:
        return values
    return values.groupby(groups.reindex(values.index.astype(str)).to_numpy()).mean()


def rank_maps(values: pd.DataFrame, higher_is_better: bool, groups: pd.Series | None = None) -> Ranking:
    """Friedman ranking of the maps (columns) over the blocks of :func:`blocks`."""
    data = blocks(values, groups).dropna()
    if len(data) < 2 or data.shape[1] < 3:
        raise ValueError(f"a Friedman ranking needs at least 2 blocks (images or groups) and 3 maps, got "
                         f"{data.shape[0]} and {data.shape[1]}; score more test images (n_images)")
    ranks = (-data if higher_is_better else data).rank(axis=1)
    oriented = -data if higher_is_better else data
    # all maps tied in every block (HAAS on a few images): the tests are undefined and give NaN; identical
    # rankings in every block: Conover's test is infinitely sure (p = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic, p_value = stats.friedmanchisquare(*(data[c].to_numpy() for c in data))
        posthoc = scikit_posthocs.posthoc_conover_friedman(oriented.to_numpy(), p_adjust="holm")
    posthoc.index = posthoc.columns = list(data.columns)
    return Ranking(ranks.mean().sort_values(), float(statistic), float(p_value), posthoc, len(data))


def level_trend(values: pd.DataFrame, levels: dict[str, str], higher_is_better: bool,
                groups: pd.Series | None = None) -> dict:
    """Page's test of location-exact > complete > neither on the blocks' level means.

    ``levels`` gives each map's level (:func:`camfaith.family.faithfulness_level`); levels with no map
    are left out. Returns the statistic, the p-value, the number of blocks and the levels tested.
    """
    data = blocks(values, groups).dropna()
    present = [level for level in reversed(LEVELS) if any(levels.get(m) == level for m in data)]
    if len(present) < 3 or len(data) < 2:  # Page's test needs three ordered levels
        return {"statistic": np.nan, "p_value": np.nan, "blocks": len(data), "levels": present}
    means = pd.DataFrame({level: data[[m for m in data if levels.get(m) == level]].mean(axis=1)
                          for level in present})
    oriented = means if higher_is_better else -means  # Page's test predicts increasing columns
    result = stats.page_trend_test(oriented.to_numpy())
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue), "blocks": len(data),
            "levels": present}


# metric -> the family chapter's per-image file
FAMILY_SCORES = {"aopc": "family_aopc", "feature_deletion": "feature_deletion", "haas": "family_haas",
                 "max_sensitivity": "family_max_sensitivity", "relevance_mass": "family_localisation"}


def family_ranks(runs, labels: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Across the runs (:class:`camfaith.runs.Run` with a family chapter): each map's mean rank per metric,
    replicates of one network averaged first so that a network counts once, and Page's test of the
    hierarchy with the networks as blocks (each level's mean rank per network, the best rank first).

    ``labels`` names the metrics for readers. Returns ``(mean ranks: map x metric, tests: one row per
    metric)``.
    """
    rows = []
    for run in runs:
        head = run.model.get("head", "flatten")
        for metric, scores in FAMILY_SCORES.items():
            if not run.has_scores(scores):
                continue
            values = per_image_values(run.scores(scores), metric)[0]
            values = values[[m for m in values if m in FAMILY]]
            ranking = rank_maps(values, ENDPOINTS[metric].higher_is_better, run.test_groups())
            rows += [{"network": run.replicate_of or run.name, "metric": labels[metric], "map": name, "rank": rank,
                      "level": faithfulness_level(name, head)} for name, rank in ranking.mean_ranks.items()]
    if not rows:
        return pd.DataFrame(), pd.DataFrame()
    frame = pd.DataFrame(rows).groupby(["metric", "network", "map", "level"], as_index=False)["rank"].mean()
    mean_ranks = frame.pivot_table(index=["map", "level"], columns="metric", values="rank").reset_index()
    tests = []
    for metric, part in frame.groupby("metric"):
        by_level = part.pivot_table(index="network", columns="level", values="rank")
        present = [level for level in reversed(LEVELS) if level in by_level]
        statistic = p_value = np.nan
        if len(present) == 3 and len(by_level) >= 2:  # lower rank is better: negate for an increasing trend
            result = stats.page_trend_test(-by_level[present].to_numpy())
            statistic, p_value = float(result.statistic), float(result.pvalue)
        tests.append({"metric": metric, "networks": len(by_level), "Page L": statistic, "Page p": p_value})
    return mean_ranks, pd.DataFrame(tests)
