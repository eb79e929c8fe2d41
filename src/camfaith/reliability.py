"""How reliable a metric is: the meta-evaluation of Hedström et al. (2023, MetaQuantus).

A metric is itself a measuring instrument, and two properties make it a reliable one:

- **Noise resilience (NR).** Under perturbations that leave the model's decisions alone (small
  multiplicative Gaussian noise on the weights; small uniform noise on the inputs), its scores and its
  ranking of the maps should stay put.
- **Adversarial reactivity (AR).** Under perturbations that change the decisions (larger noise of the
  same kinds), it should react: the scores should move, and the maps should look worse. A third
  adversary leaves the model alone and disrupts the explanations (each map's pixels shuffled): a metric
  that does not react to that cannot see the maps at all.

Each is measured twice. *Intra-consistency* (IAC) asks, per map, whether the scores of the images
change: the p-value of the Wilcoxon signed-rank test between the scores before and after (high is
resilient; one minus it is reactive). *Inter-consistency* (IEC) asks about the ranking of the maps:
under noise, the share of (image, rank position) pairs whose map is unchanged; under an adversary, the
share of (map, image) pairs whose score got worse. Only the images whose prediction stayed (NR) or
changed (AR) count. The four averages, each in [0, 1], and their mean (the meta-consistency MC) are
reported per perturbation type (model, input); 1 is ideal for all of them.

The consistency functions follow MetaQuantus's definitions; a test compares them with its own on the
same arrays. Unlike MetaQuantus, which compares with the true labels, an image counts as unchanged
when the perturbed model predicts what the unperturbed one did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

TEST_KINDS = ("model", "input", "explanation")  # what a reliability test perturbs: weights, images, maps


class Perturbation(NamedTuple):
    kind: str  # one of TEST_KINDS
    adversary: bool  # NR (False) or AR (True)
    strength: float  # std of the multiplicative weight noise, or half-width of the input noise


def perturbed_model(model: nn.Module, std: float, generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` whose every parameter is multiplied by ``1 + std * N(0, 1)`` noise (drawn on the
    CPU from ``generator``, so the copy is the same on every device)."""
    noisy = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in noisy.parameters():
            noise = torch.randn(parameter.shape, generator=generator).to(parameter.device, parameter.dtype)
            parameter.mul_(1 + std * noise)
    return noisy


def perturbed_images(images: torch.Tensor, half_width: float, generator: torch.Generator,
                     bounds: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """``images`` plus uniform noise in ``[-half_width, half_width]``, drawn on the CPU from ``generator``,
    clamped to ``bounds`` (the models' input range, which HAAS checks)."""
    noise = (2 * torch.rand(images.shape, generator=generator) - 1) * half_width
    return (images + noise.to(images.device, images.dtype)).clamp(*bounds)


def shuffle_order(cells: int, generator: torch.Generator) -> torch.Tensor:
    """A random order of ``cells`` positions, drawn on the CPU: the explanation adversary's disruption."""
    return torch.rand(cells, generator=generator).argsort()


def disrupted(maps: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Maps ``(N, H, W)`` with their pixels moved by ``order`` (:func:`shuffle_order` of ``H W``): the
    values stay, the places go, the same way for every image."""
    flat = maps.flatten(1)
    return flat[:, order.to(flat.device)].reshape(maps.shape)


def intra_consistency(before: np.ndarray, after: np.ndarray, keep: np.ndarray, adversary: bool) -> float:
    """IAC of one map under one perturbation: the two-sided Wilcoxon p-value of its scores before and after
    on the kept images (zero differences split), or one minus it for an adversary. NaN with fewer than
    two kept images; 1 (resilient) or 0 (reactive) when nothing changed at all."""
    before, after = np.asarray(before, float)[keep], np.asarray(after, float)[keep]
    if before.size < 2:
        return float("nan")
    if np.allclose(before, after, rtol=0, atol=0):
        p_value = 1.0
    else:
        p_value = float(stats.wilcoxon(before, after, zero_method="zsplit").pvalue)
    return 1 - p_value if adversary else p_value


def inter_consistency(before: np.ndarray, after: np.ndarray, keep: np.ndarray, adversary: bool,
                      higher_is_better: bool) -> float:
    """IEC under one perturbation, from score matrices ``(maps, images)`` before and after: under noise the
    share of kept (image, rank position) pairs whose map is the same; under an adversary the share of kept
    (map, image) pairs whose score got worse."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if not keep.any():
        return float("nan")
    if adversary:
        worse = after < before if higher_is_better else after > before
        return float(worse[:, keep].mean())
    same = np.argsort(before, axis=0) == np.argsort(after, axis=0)
    return float(same[:, keep].mean())


#: ``scorer(model, images, disrupt)``: explain ``images`` with ``model`` (with the explanation adversary, the
#: maps disrupted by orders drawn from the generator ``disrupt``: :func:`shuffle_order`, :func:`disrupted`) and
#: score the maps; returns the per-image scores (rows: images; columns: maps) and the model's predictions.
Scorer = Callable[[nn.Module, torch.Tensor, torch.Generator | None], tuple[pd.DataFrame, torch.Tensor]]


def meta_evaluation(scorer: Scorer, model: nn.Module, images: torch.Tensor, tests: dict[str, Perturbation],
                    higher_is_better: bool, n_perturbations: int = 3, seed: int = 0) -> pd.DataFrame:
    """Run every test ``n_perturbations`` times and return one row per test and draw: the kept images, the
    mean IAC over the maps and the IEC.

    ``scorer`` is a :data:`Scorer`. The draws come from ``seed`` (one generator per test), the same for
    every metric scored with the same seed. The explanation adversary keeps every image.
    """
    clean, predictions = scorer(model, images, None)
    rows = []
    for name, test in tests.items():
        generator = torch.Generator().manual_seed(seed + sum(map(ord, name)))
        for draw in range(n_perturbations):
            if test.kind == "model":
                scores, perturbed = scorer(perturbed_model(model, test.strength, generator), images, None)
            elif test.kind == "input":
                scores, perturbed = scorer(model, perturbed_images(images, test.strength, generator), None)
            else:
                scores, perturbed = scorer(model, images, generator)
            changed = (perturbed != predictions).cpu().numpy()
            keep = np.ones_like(changed) if test.kind == "explanation" else changed if test.adversary else ~changed
            intra = [intra_consistency(clean[m].to_numpy(), scores[m].to_numpy(), keep, test.adversary)
                     for m in clean]
            rows.append({"test": name, "kind": test.kind, "adversary": test.adversary, "draw": draw,
                         "kept": int(keep.sum()), "IAC": float(np.nanmean(intra)) if keep.sum() >= 2 else np.nan,
                         "IEC": inter_consistency(clean.to_numpy().T, scores.to_numpy().T, keep, test.adversary,
                                                  higher_is_better)})
    return pd.DataFrame(rows)


def meta_consistency(draws: pd.DataFrame) -> pd.DataFrame:
    """Per perturbation kind: IAC and IEC under noise (NR) and under the adversary (AR), and MC, the mean of
    the four (MetaQuantus's meta-consistency; the explanation adversary has no noise test, so its MC is the
    mean of its two AR scores), with the mean number of images each counted (NaN where none did)."""
    rows = []
    for kind, part in draws.groupby("kind", sort=False):
        noise, adversary = part[~part["adversary"]], part[part["adversary"]]
        scores = {"IAC NR": noise["IAC"].mean(), "IAC AR": adversary["IAC"].mean(),
                  "IEC NR": noise["IEC"].mean(), "IEC AR": adversary["IEC"].mean()}
        rows.append({"perturbation": kind, **scores, "MC": float(np.nanmean(list(scores.values()))),
                     "images NR": noise["kept"].mean(), "images AR": adversary["kept"].mean()})
    return pd.DataFrame(rows)


def default_tests(model_noise: Sequence[float] = (0.001, 1.0), input_noise: Sequence[float] = (0.001, 1.0)) -> dict:
    """The four tests of MetaQuantus (weak and strong weight noise, weak and strong input noise) and the
    explanation adversary."""
    return {"model resilience": Perturbation("model", False, model_noise[0]),
            "model adversary": Perturbation("model", True, model_noise[1]),
            "input resilience": Perturbation("input", False, input_noise[0]),
            "input adversary": Perturbation("input", True, input_noise[1]),
            "explanation adversary": Perturbation("explanation", True, 1.0)}
