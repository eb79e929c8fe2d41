"""Per-image tables of the metrics for many maps at once: the two CAMs and the controls.

Each function scores every map of a chapter on the same images with the same random draws, and
returns a tidy frame (one row per image, map and setting) that the chapter saves with
:meth:`camfaith.runs.Run.save_scores` and compares with :mod:`camfaith.endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from camfaith.endpoints import CHANCE
from camfaith.metrics import (
    aopc_methods,
    energy_pointing_game,
    haas,
    haas_ratio,
    map_norms,
    max_sensitivity,
    relevance_mass,
    relevance_rank,
    zero_shares,
)
from camfaith.seeds import stream_seed


def aopc_scores(model: nn.Module, images: torch.Tensor, ids: Sequence[str], maps: dict[str, torch.Tensor],
                regions: Sequence[int], targets: torch.Tensor, seed: int, perturbation="uniform",
                orders: Sequence[str] = ("morf",), tie_break: str = "random", chunk_size: int = 64,
                noise_seeds: int = 1, occlusion: bool = False, score: str | Sequence[str] = "probability",
                precision: str = "float32") -> tuple[pd.DataFrame, dict]:
    """AOPC of every map for each heatmap size and removal order (one clean pass and one noise draw each),
    repeated with ``noise_seeds`` noise seeds (``seed``, ``seed + 1``, ...); ``score`` is the tracked
    probability or logit (:func:`camfaith.metrics.aopc`), or several of them from the same passes; the
    forward passes run in ``precision`` (:func:`camfaith.device.forward_precision`).

    Random tie keys come from a stream of their own per noise seed (:mod:`camfaith.seeds`).
    ``occlusion=True`` adds the positive control and its inversion, built from each size's own draws
    (:func:`camfaith.metrics.aopc_methods`). Returns the per-image frame (columns ``id, method,
    regions, order, tie_break, noise_seed, aopc``, and ``score`` where several were asked for) and the
    curves of the first noise seed (and score) by ``(regions, method, order)``.
    """
    tracked = (score,) if isinstance(score, str) else tuple(score)
    rows, curves = [], {}
    for noise_seed in range(seed, seed + noise_seeds):
        for size in regions:
            results = aopc_methods(model, images, maps, regions=size, perturbation=perturbation, seed=noise_seed,
                                   chunk_size=chunk_size, targets=targets, orders=tuple(orders), tie_break=tie_break,
                                   tie_seed=stream_seed(noise_seed, "tie break"), occlusion=occlusion,
                                   score=tracked, precision=precision)
            for (method, order, name), result in results.items():
                if name == tracked[0]:
                    curves.setdefault((size, method, order), result.curves)
                extra = {} if isinstance(score, str) else {"score": name}
                rows += [{"id": i, "method": method, "regions": size, "order": order, "tie_break": tie_break,
                          "noise_seed": noise_seed, **extra, "aopc": float(value)}
                         for i, value in zip(ids, result.scores)]
    return pd.DataFrame(rows), curves


def morf_minus_lerf(frame: pd.DataFrame) -> pd.DataFrame:
    """Per image and map, the area between the LeRF and the MoRF curve (MoRF AOPC - LeRF AOPC; Tomsett et
    al. 2020): higher is better, and a map that orders cells no better than chance scores about 0."""
    wide = frame.pivot_table(index=[c for c in frame if c not in ("order", "aopc")], columns="order", values="aopc")
    return (wide["morf"] - wide["lerf"]).rename("aopc").reset_index().assign(order="morf-lerf")


def tie_table(maps: dict[str, torch.Tensor], regions: int) -> pd.DataFrame:
    """Per map, how many maps are degenerate (all zero; constant but not zero), and the mean share of
    tied heatmap cells: the cells whose order a tie-break, not the map, decides."""
    rows = []
    for method, values in maps.items():
        shares = zero_shares(values, regions)
        flat = values.detach().flatten(1)
        constant = (flat.amax(dim=1) == flat.amin(dim=1)) & ~shares.all_zero
        rows.append({"method": method, "all-zero maps": int(shares.all_zero.sum()),
                     "constant maps": int(constant.sum()), "images": int(values.shape[0]),
                     "tied cells": float(shares.tie_share.float().mean())})
    return pd.DataFrame(rows)


def sensitivity_scores(explainers: dict[str, Callable], images: torch.Tensor, ids: Sequence[str],
                       targets: torch.Tensor, radii: Sequence[float], samples: Sequence[int], seed: int,
                       chunk_size: int = 32, noise_seeds: int = 1) -> pd.DataFrame:
    """Max-Sensitivity of every explanation function, as eq. 8 of Lamprou (2023) and normalised.

    Each radius and map sees the same perturbed images (the generator is re-seeded). The normalised
    form (Yeh et al. 2019) divides by the norm of the clean map; dividing the largest distance by a
    per-image constant equals taking the largest normalised distance, so it costs nothing more.
    Repeated with ``noise_seeds`` noise seeds (``seed``, ``seed + 1``, ...). Columns ``id, method,
    radius, samples, noise_seed, normalized, max_sensitivity``.
    """
    rows = []
    for method, explain in explainers.items():
        clean_norm = map_norms(explain(images, targets), torch.float64).cpu()
        for noise_seed in range(seed, seed + noise_seeds):
            for radius, n_samples in zip(radii, samples):
                result = max_sensitivity(explain, images, radius, n_samples, targets,
                                         generator=torch.Generator().manual_seed(noise_seed), chunk_size=chunk_size)
                scores = result.scores.double().cpu()
                rows += [{"id": i, "method": method, "radius": radius, "samples": n_samples, "noise_seed": noise_seed,
                          "normalized": normalized, "max_sensitivity": float(value)}
                         for normalized, values in ((False, scores), (True, scores / clean_norm))
                         for i, value in zip(ids, values)]
    return pd.DataFrame(rows)


def haas_scores(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, ids: Sequence[str],
                maps: dict[str, torch.Tensor], scalings: Sequence[str], precision: str = "float32") -> pd.DataFrame:
    """Predictions on the original and on the HA images for every map and attribution scaling, the forward
    passes in ``precision`` (:func:`camfaith.device.forward_precision`).

    ``maps`` holds post-processed maps in [0, 1]; a key ``raw_<method>`` holds the signed raw map
    that the ``signed`` scaling uses instead (maps without one are not scored under ``signed``).
    Columns ``id, scaling, method, label, prediction, ha_prediction``.
    """
    rows = []
    for scaling in scalings:
        for method, values in maps.items():
            if method.startswith("raw_"):
                continue
            if scaling == "signed":
                if f"raw_{method}" not in maps:
                    continue
                values = maps[f"raw_{method}"]
            result = haas(model, images, labels, values, attribution_scaling=scaling, precision=precision)
            rows += [{"id": i, "scaling": scaling, "method": method, "label": int(y), "prediction": int(p),
                      "ha_prediction": int(q)}
                     for i, y, p, q in zip(ids, labels, result.predictions, result.ha_predictions)]
    return pd.DataFrame(rows)


def haas_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """HAAS (eq. 10 of Lamprou 2023) of each scaling (rows) and map (columns), from :func:`haas_scores`."""
    def ratio(group: pd.DataFrame) -> float:
        return float(haas_ratio(*(torch.tensor(group[c].to_numpy()) for c in ("label", "prediction", "ha_prediction"))))

    methods = list(dict.fromkeys(per_image["method"]))
    table = per_image.groupby(["scaling", "method"])[["label", "prediction", "ha_prediction"]].apply(ratio)
    return table.unstack().reindex(index=list(dict.fromkeys(per_image["scaling"])), columns=methods)


def localisation_scores(maps: dict[str, torch.Tensor], masks: torch.Tensor, ids: Sequence[str], labels: torch.Tensor,
                        targets: torch.Tensor, seed: int = 0) -> pd.DataFrame:
    """Relevance mass, relevance rank and the energy pointing game of every map against the masks, and
    their chance level (method ``"chance"``: what a map that knows nothing scores, fixed by the masks: the
    mask's share of the image, and for the pointing game its bounding box's share).

    Relevance-rank ties are broken at random, the same keys for every map (``seed``, a stream of its
    own). Columns ``id, method, correct`` (the model's prediction is right) and one per score.
    """
    frames = []
    flat = torch.ones_like(masks, dtype=torch.float32)
    for method, values in {**maps, CHANCE: flat}.items():
        scores = {"relevance_mass": relevance_mass(values, masks).cpu().numpy(),
                  "relevance_rank": (relevance_mass(flat, masks) if method == CHANCE else relevance_rank(
                      values, masks, torch.Generator().manual_seed(stream_seed(seed, "tie break")))).cpu().numpy(),
                  "energy_pointing_game": energy_pointing_game(values, masks).cpu().numpy()}
        frames.append(pd.DataFrame({"id": list(ids), "method": method, "correct": (targets == labels).cpu().numpy(),
                                    **scores}))
    return pd.concat(frames, ignore_index=True)
