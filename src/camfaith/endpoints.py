"""What each metric's verdict rests on: one primary endpoint per metric, and paired comparisons on it.

A metric chapter scores every map (the two CAMs and the controls of :mod:`camfaith.controls`) in
many settings. Only one setting per metric is the *primary endpoint* that a verdict may rest on;
the others are shown as secondary. Per image:

- AOPC: MoRF removal with the chapter's removal (uniform noise by default), averaged over the
  heatmap sizes (Table 10 of Lamprou 2023); the other removals and orders are secondary;
- Max-Sensitivity: eq. 8 of Lamprou (2023), not normalised, averaged over the radii;
- HAAS: the attribution scaled to [-1, 1] as Definition 6 of Lamprou (2023) asks (``centered``);
  the CAM in [0, 1] used as is (``unit``, what the original code did) is the replication variant;
- relevance mass on the ground-truth mask, where the data have masks.

A metric *discriminates* on a run when both CAMs beat the uniform random map and the inverted
HiResCAM map with paired intervals that exclude zero in the metric's direction. Where it does not,
its verdict between the two CAMs is not interpretable: it cannot tell an informative map from an
uninformative one on those data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from camfaith.parameters import check_choice, parse_options
from camfaith.stats import haas_comparison, paired_comparison

CAMS = ("gradcam", "hirescam")
NULL_CONTROLS = ("random", "inverted")


class Endpoint(NamedTuple):
    scores: str  # the per-image file of the run (camfaith.runs.SCORES)
    column: str | None  # the per-image value (None for HAAS, a ratio over the whole set)
    higher_is_better: bool
    settings: dict  # the primary setting: column -> value, where the column exists
    averaged_over: str | None  # the setting averaged per image


ENDPOINTS = {
    "aopc": Endpoint("aopc", "aopc", True, {}, "regions"),  # aopc.csv holds MoRF with the chapter's removal
    "max_sensitivity": Endpoint("max_sensitivity", "max_sensitivity", False, {"normalized": False}, "radius"),
    "haas": Endpoint("haas", None, True, {"scaling": "centered"}, None),
    "relevance_mass": Endpoint("localisation", "relevance_mass", True, {}, None),
}
#: the variants shown beside the primary endpoint (never counted as verdicts)
SECONDARY = {"max_sensitivity": {"normalized": True}, "haas": {"scaling": "unit"}}


def primary_settings(text: str = "") -> dict[str, dict]:
    """The primary setting of every metric, with the configuration's overrides applied.

    ``text`` is ``"metric.column=value,..."`` (values parsed as YAML scalars), e.g.
    ``"haas.scaling=unit"`` to make the original code's scaling the primary HAAS endpoint.
    """
    settings = {metric: dict(endpoint.settings) for metric, endpoint in ENDPOINTS.items()}
    for dotted, value in parse_options(text).items():
        metric, _, column = dotted.partition(".")
        check_choice("metric of a primary endpoint", metric, ENDPOINTS)
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


def comparer(frame: pd.DataFrame, metric: str, settings: dict | None = None, n_resamples: int = 2000,
             seed: int = 0, groups: pd.Series | None = None) -> Callable[[str, str], dict]:
    """``compare(first, second)``: the paired comparison of two maps (``second - first``) on the endpoint.

    ``groups`` maps image ids to the group (lesion, patient) each belongs to; the bootstrap then
    resamples whole groups (a cluster bootstrap), otherwise images.
    """
    endpoint = ENDPOINTS[metric]
    rows = select(frame, metric, settings)
    if endpoint.column is None:  # HAAS: correctness of the HA predictions, paired image by image
        wide = rows.pivot(index="id", columns="method", values=["label", "prediction", "ha_prediction"])
        options = dict(n_resamples=n_resamples, seed=seed, groups=_aligned(groups, wide.index))

        def compare(first: str, second: str) -> dict:
            return haas_comparison(wide["label"][first], wide["ha_prediction"][first], wide["ha_prediction"][second],
                                   wide["prediction"][first], **options)
    else:
        means = rows.groupby(["id", "method"])[endpoint.column].mean().unstack()
        options = dict(n_resamples=n_resamples, seed=seed, groups=_aligned(groups, means.index))

        def compare(first: str, second: str) -> dict:
            return paired_comparison(means[first], means[second], endpoint.higher_is_better, **options)

    compare.methods = sorted(set(rows["method"]))
    return compare


def _aligned(groups: pd.Series | None, ids: pd.Index):
    if groups is None:
        return None
    aligned = groups.reindex(ids.astype(str))
    missing = aligned.index[aligned.isna()]
    if len(missing):
        raise ValueError(f"no group for {len(missing)} image(s), e.g. {missing[0]!r}; "
                         "the groups must come from the run's split manifest")
    return aligned.to_numpy()


def discrimination(compare: Callable[[str, str], dict]) -> pd.DataFrame | None:
    """Each CAM against each null control: does the metric rank the CAM better? None without controls."""
    if not set(NULL_CONTROLS) <= set(compare.methods):
        return None
    rows = []
    for cam in CAMS:
        for control in NULL_CONTROLS:
            result = compare(control, cam)
            rows.append({"map": cam, "control": control, "difference": result["mean_difference"],
                         "low": result["low"], "high": result["high"], "beats": result["better"] == "second"})
    return pd.DataFrame(rows)


def noise_stability(frame: pd.DataFrame, metric: str, n_resamples: int = 2000, seed: int = 0,
                    groups: pd.Series | None = None, settings: dict | None = None) -> pd.DataFrame | None:
    """HiResCAM against Grad-CAM on the primary endpoint, once per noise seed (column ``noise_seed``).

    The noise of AOPC and Max-Sensitivity is itself random; a verdict that changes with it is
    unstable. None when the scores hold a single noise seed.
    """
    if "noise_seed" not in frame or frame["noise_seed"].nunique() < 2:
        return None
    rows = []
    for noise_seed, part in frame.groupby("noise_seed"):
        result = comparer(part, metric, settings, n_resamples=n_resamples, seed=seed, groups=groups)(*CAMS)
        rows.append({"noise_seed": noise_seed, "difference": result["mean_difference"], "low": result["low"],
                     "high": result["high"], "better": result["better"]})
    return pd.DataFrame(rows)


def discriminates(table: pd.DataFrame | None) -> str:
    """``"yes"``, ``"no"``, or ``"no controls"`` (scores from a chapter run without them)."""
    if table is None:
        return "no controls"
    return "yes" if bool(table["beats"].all()) else "no"
