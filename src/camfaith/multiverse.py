"""The multiverse of a verdict: HiResCAM against Grad-CAM under every combination of a metric's hidden choices.

A metric's definition leaves choices open that a paper fixes once: AOPC the removal (noise, a constant,
a blur, ROAD's imputation), the tracked score (the probability or the logit), the heatmap size and the
order of tied cells; Max-Sensitivity the normalisation and the radius; HAAS the scaling of the map; every
metric the post-processing of the map (the library's ReLU and min-max scaling, or the raw signed map) and
its upsampling (bilinear or nearest).
Each function here scores the two CAMs under the whole grid of a metric's choices, on the same images
and draws, and returns one row per specification and image. :func:`specifications` turns those rows
into the effect (HiResCAM minus Grad-CAM) of every specification with the report's interval and test,
and :func:`robustness` says in what share of the specifications the primary verdict holds and which
choice flips it (Simonsohn et al. 2020, specification curves).

Per-image sizes that a specification averages (AOPC's heatmap sizes, Max-Sensitivity's radii) appear
both one at a time and as ``"all"``, the form of the primary endpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from camfaith.cams import METHODS, cams, min_max
from camfaith.endpoints import METRICS
from camfaith.metrics import SCORES
from camfaith.scoring import aopc_scores, haas_scores, sensitivity_scores
from camfaith.stats import paired_comparison

POSTPROCESSING = ("relu-minmax", "raw")  # pytorch-grad-cam's ReLU and min-max scaling, or the signed map
UPSAMPLING = ("bilinear", "nearest")
ALL = "all"  # the average over a setting's values, image by image: the primary endpoint's form
CHOICES = {
    "aopc": ("perturbation", "score", "regions", "tie_break", "postprocessing", "upsampling"),
    "max_sensitivity": ("normalized", "radius", "postprocessing"),
    "haas": ("scaling", "upsampling"),
}


def primary_specification(metric: str, perturbation: str = "uniform") -> dict:
    """The specification of the grid that is the metric's primary endpoint (:data:`camfaith.endpoints.METRICS`):
    the library's post-processing and bilinear upsampling, AOPC's random tie order averaged over the heatmap
    sizes with the run's removal and the probability (the original study's score), Max-Sensitivity as eq. 8
    averaged over the radii, HAAS's primary scaling."""
    settings = METRICS[metric].settings
    return {"aopc": {"perturbation": perturbation, "score": "probability", "regions": ALL,
                     "tie_break": settings.get("tie_break"), "postprocessing": "relu-minmax", "upsampling": "bilinear"},
            "max_sensitivity": {"normalized": settings.get("normalized"), "radius": ALL,
                                "postprocessing": "relu-minmax"},
            "haas": {"scaling": settings.get("scaling"), "upsampling": "bilinear"}}[metric]


def render(raw: torch.Tensor, size: tuple[int, int], postprocessing: str = "relu-minmax",
           upsampling: str = "bilinear") -> torch.Tensor:
    """A raw map ``(N, D1, D2)`` at the image size: with ``"relu-minmax"`` as pytorch-grad-cam shows it
    (:func:`camfaith.cams.postprocess` with ``"bilinear"``), with ``"raw"`` the signed map upsampled."""
    maps = min_max(raw.clamp(min=0)) if postprocessing == "relu-minmax" else raw
    options = {"align_corners": False} if upsampling == "bilinear" else {}
    maps = F.interpolate(maps[:, None], size=size, mode=upsampling, **options)[:, 0]
    return min_max(maps.clamp(min=0)) if postprocessing == "relu-minmax" else maps


def _key(*parts) -> str:
    return "|".join(map(str, parts))


def _wide(frame: pd.DataFrame, settings: list[str], value: str) -> pd.DataFrame:
    """Split the ``method`` keys back into the CAM and its rendering, one column per CAM."""
    parts = frame["method"].str.split("|", expand=True)
    frame = frame.assign(cam=parts[0], **{name: parts[i + 1] for i, name in enumerate(settings)})
    index = [c for c in frame if c not in ("method", "cam", value, "noise_seed", "order", "label", "prediction",
                                           "ha_prediction")]
    return frame.pivot_table(index=index, columns="cam", values=value).reset_index()


def _with_average(frame: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The rows of each value of ``setting``, and their per-image mean as ``setting = "all"``."""
    keys = [c for c in frame if c not in (setting, *METHODS)]
    averaged = frame.groupby(keys, as_index=False)[list(METHODS)].mean().assign(**{setting: ALL})
    return pd.concat([frame.astype({setting: str}), averaged], ignore_index=True)


def aopc_multiverse(model: nn.Module, images: torch.Tensor, ids: Sequence[str], raw: dict, targets: torch.Tensor,
                    seed: int, regions: Sequence[int], perturbations: Sequence = ("uniform", 0.0, "blur", "road"),
                    chunk_size: int = 64) -> pd.DataFrame:
    """AOPC (MoRF) of both CAMs over removal x tracked score x heatmap size x tie order x post-processing x
    upsampling.

    ``raw`` holds the signed maps at the target layer (``"gradcam"``, ``"hirescam"``). Each removal and tie
    order is one call of :func:`camfaith.scoring.aopc_scores` with the same seed, so every rendering sees the
    same draws, and both scores come from the same forward passes.
    """
    size = images.shape[-2:]
    maps = {_key(cam, post, up): render(raw[cam], size, post, up)
            for cam in METHODS for post in POSTPROCESSING for up in UPSAMPLING}
    frames = []
    for perturbation, tie_break in itertools.product(perturbations, ("random", "stable")):
        frame, _ = aopc_scores(model, images, ids, maps, regions, targets, seed, perturbation, tie_break=tie_break,
                               chunk_size=chunk_size, score=SCORES)
        frames.append(_wide(frame, ["postprocessing", "upsampling"], "aopc").assign(
            perturbation="constant 0" if perturbation == 0.0 else str(perturbation)))
    return _with_average(pd.concat(frames, ignore_index=True), "regions")


def sensitivity_multiverse(model: nn.Module, target_layer: nn.Module, images: torch.Tensor, ids: Sequence[str],
                           targets: torch.Tensor, radii: Sequence[float], samples: Sequence[int], seed: int,
                           chunk_size: int = 32) -> pd.DataFrame:
    """Max-Sensitivity of both CAMs over normalisation x radius x post-processing (bilinear upsampling)."""
    def explainer(cam, post):
        def explain(batch, batch_targets=None):
            signed = cams(model, target_layer, batch, batch_targets, raw=True)[cam]
            return render(signed, batch.shape[-2:], post)
        return explain

    explainers = {_key(cam, post): explainer(cam, post) for cam in METHODS for post in POSTPROCESSING}
    frame = sensitivity_scores(explainers, images, ids, targets, radii, samples, seed, chunk_size)
    frame = _wide(frame.drop(columns="samples"), ["postprocessing"], "max_sensitivity")
    return _with_average(frame, "radius")


def haas_multiverse(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, ids: Sequence[str], raw: dict,
                    scalings: Sequence[str] = ("centered", "unit", "signed")) -> pd.DataFrame:
    """HAAS of both CAMs over the attribution scaling x upsampling: per image, whether the HA image is
    classified right (``gradcam``, ``hirescam``) and whether the original is (``right``, the denominator)."""
    size = images.shape[-2:]
    maps = {}
    for cam, up in itertools.product(METHODS, UPSAMPLING):
        maps[_key(cam, up)] = render(raw[cam], size, "relu-minmax", up)
        maps[f"raw_{_key(cam, up)}"] = render(raw[cam], size, "raw", up)
    frame = haas_scores(model, images, labels, ids, maps, scalings)
    frame = frame.assign(right=(frame["prediction"] == frame["label"]).astype(float),
                         ha_right=(frame["ha_prediction"] == frame["label"]).astype(float))
    return _wide(frame, ["upsampling"], "ha_right")


def specifications(frame: pd.DataFrame, choices: Sequence[str], higher_is_better: bool, seed: int = 0,
                   groups: pd.Series | None = None, denominator: str | None = None) -> pd.DataFrame:
    """One row per specification: its choices, HiResCAM minus Grad-CAM with the BCa interval and the
    sign-flip p-value of :func:`camfaith.stats.paired_comparison` (whole groups as units where given),
    and the side the interval favours (``"HiResCAM"``, ``"Grad-CAM"`` or ``"neither"``), sorted by effect."""
    rows = []
    for values, part in frame.groupby(list(choices), sort=False):
        unit = None if groups is None else part["id"].astype(str).map(groups).to_numpy()
        result = paired_comparison(part["gradcam"], part["hirescam"], higher_is_better, seed=seed, groups=unit,
                                   denominator=None if denominator is None else part[denominator])
        rows.append(dict(zip(choices, values)) | {
            "difference": result["mean_difference"], "low": result["low"], "high": result["high"],
            "p": result["p_value"],
            "favours": {"second": "HiResCAM", "first": "Grad-CAM"}.get(result["better"], "neither")})
    return pd.DataFrame(rows).sort_values("difference", ignore_index=True)


def grid_is_complete(table: pd.DataFrame, choices: Sequence[str]) -> bool:
    """Every combination of the choices' values appears exactly once."""
    expected = 1
    for choice in choices:
        expected *= table[choice].nunique()
    return len(table) == expected and not table.duplicated(list(choices)).any()


def robustness(table: pd.DataFrame, primary: dict) -> tuple[dict, pd.DataFrame]:
    """The primary specification's verdict, the share of specifications that agree with it, and per
    choice and value the share of its specifications whose verdict differs (where a flip comes from)."""
    chosen = table
    for choice, value in primary.items():
        chosen = chosen[chosen[choice].astype(str) == str(value)]
    if len(chosen) != 1:
        raise ValueError(f"the primary specification {primary} matches {len(chosen)} rows of the grid, not one")
    verdict = chosen["favours"].iloc[0]
    agrees = table["favours"] == verdict
    flips = pd.DataFrame([{"choice": choice, "value": str(value), "specifications": int(mask.sum()),
                           "flipped": float((~agrees[mask]).mean())}
                          for choice in primary for value, mask in
                          ((v, table[choice].astype(str) == str(v)) for v in table[choice].unique())])
    return {"verdict": verdict, "specifications": len(table), "agree": float(agrees.mean())}, flips
