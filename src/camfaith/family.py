"""The CAM family of pytorch-grad-cam, computed the way the theory reads it.

Every map here is a weighted sum over the channels of the target layer's activations ``A``
(``N, F, D1, D2``), or a projection of them; the methods differ in the weights. Eight of them need
nothing but ``A`` and the gradients ``G = dS/dA`` of the class score, so they come from the one
forward and one backward pass of :func:`camfaith.cams.activations_and_gradients`:

- Grad-CAM and HiResCAM (eq. 3-5 of Lamprou 2023, :func:`camfaith.cams.raw_maps`);
- XGrad-CAM (Fu et al. 2020): channel weight ``sum_ij G A / sum_ij A``, which makes the map's total
  the total of HiResCAM's (its conservation axiom);
- Grad-CAM++ (Chattopadhay et al. 2018): ``sum_ij alpha_ij relu(G_ij)`` with the closed-form alpha of
  an exponential score (second and third powers of ``G``);
- Grad-CAM element-wise: ``sum_f relu(G A)``, a ReLU before HiResCAM's channel sum;
- LayerCAM (Jiang et al. 2021): ``sum_f relu(G) A``;
- EigenCAM (Muhammad and Yasin 2020): the projection of the centred activations on their first
  principal component, the same map for every class; EigenGradCAM the same of ``G A``.

Two are perturbation-based. Ablation-CAM (Desai and Ramaswamy 2020) weighs channel ``f`` by the
relative drop of the score when that channel is zeroed, ``(s - s_f) / s``; the target layer feeds the
head directly in every network of this report, so ``s_f`` needs the head alone, not the network.
Score-CAM (Wang et al. 2020) masks the image with each upsampled, min-max scaled channel and weighs
the channel by the softmax over channels of the masked images' scores. The constants (the small
denominators) are pytorch-grad-cam's, so that every map equals the library's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from camfaith.cams import activations_and_gradients, postprocess, raw_maps
from camfaith.device import evaluating
from camfaith.parameters import check_choice

GRADIENT_METHODS = ("gradcam", "hirescam", "xgradcam", "gradcam_plusplus", "gradcam_elementwise", "layercam",
                    "eigencam", "eigengradcam")
FAMILY = (*GRADIENT_METHODS, "ablationcam", "scorecam")
LIBRARY_NAMES = {"gradcam": "GradCAM", "hirescam": "HiResCAM", "xgradcam": "XGradCAM",
                 "gradcam_plusplus": "GradCAMPlusPlus", "gradcam_elementwise": "GradCAMElementWise",
                 "layercam": "LayerCAM", "eigencam": "EigenCAM", "eigengradcam": "EigenGradCAM",
                 "ablationcam": "AblationCAM", "scorecam": "ScoreCAM"}
LEVELS = ("location-exact", "complete", "neither")


def faithfulness_level(method: str, head: str = "flatten") -> str:
    """Where a method stands in the hierarchy of ``book/theory.md`` for a linear head.

    *Location-exact*: each entry of the raw map is that location's share of the logit minus the bias.
    *Complete*: only the map's total is. On a Flatten head HiResCAM is location-exact and XGrad-CAM
    complete; on a GAP head Grad-CAM and XGrad-CAM coincide with HiResCAM (the gradient is constant
    over space), so all three are location-exact. Every other method is neither.
    """
    check_choice("method", method, FAMILY)
    check_choice("head", head, ("flatten", "gap"))
    if method == "hirescam" or (head == "gap" and method in ("gradcam", "xgradcam")):
        return "location-exact"
    return "complete" if method == "xgradcam" else "neither"


def first_component(values: torch.Tensor) -> torch.Tensor:
    """Per image, the projection of the centred ``(D1 D2, F)`` matrix on its first right singular vector
    (``N, D1, D2``).

    The sign of a singular vector is arbitrary, and after the ReLU of the post-processing the two signs
    give different maps. The library keeps the sign NumPy's SVD returns; so does this function (the
    decomposition runs in NumPy, on the CPU), so that its maps are the library's. The reduced decomposition
    returns the same first vector as the library's full one (``tests/test_family.py``) and skips the
    ``F x F`` basis, most of the cost when F is in the hundreds.
    """
    n, channels, height, width = values.shape
    matrix = torch.nan_to_num(values).reshape(n, channels, -1).transpose(1, 2)
    matrix = matrix - matrix.mean(dim=1, keepdim=True)
    right = np.linalg.svd(matrix.detach().cpu().numpy(), full_matrices=False)[2]
    first = torch.from_numpy(right[:, 0, :, None]).to(matrix.device)
    return (matrix @ first).reshape(n, height, width)


def gradient_maps(activations: torch.Tensor, gradients: torch.Tensor, methods=GRADIENT_METHODS) -> dict:
    """The signed maps of the gradient-based methods at the target layer's resolution (``N, D1, D2``)."""
    a, g = activations, gradients
    spatial = (2, 3)

    def weighted(weights):  # a weight per channel, the library's sum over channels
        return (weights.sum(dim=spatial, keepdim=True) * a).sum(dim=1)

    def plusplus():
        g2 = g.pow(2)
        alpha = g2 / (2 * g2 + a.sum(dim=spatial, keepdim=True) * (g2 * g) + 1e-6)
        return weighted(torch.where(g != 0, alpha, 0) * g.clamp(min=0))

    formulas = {"xgradcam": lambda: weighted(g * a / (a.sum(dim=spatial, keepdim=True) + 1e-7)),
                "gradcam_plusplus": plusplus,
                "gradcam_elementwise": lambda: (g * a).clamp(min=0).sum(dim=1),
                "layercam": lambda: (g.clamp(min=0) * a).sum(dim=1),
                "eigencam": lambda: first_component(a),
                "eigengradcam": lambda: first_component(g * a)}
    maps = raw_maps(a, g)
    return {m: maps[m] if m in maps else formulas[m]() for m in methods}


def ablation_weights(head: nn.Module, activations: torch.Tensor, targets: torch.Tensor,
                     chunk_size: int = 256) -> torch.Tensor:
    """``(s - s_f) / s`` per image and channel (``N, F``): the relative drop of the target's score when
    channel ``f`` of the target layer is zeroed, through ``head`` alone."""
    n, channels = activations.shape[:2]
    weights = torch.empty(n, channels, device=activations.device)
    with torch.no_grad():
        scores = head(activations).gather(1, targets[:, None])[:, 0]
        for image in range(n):
            for start in range(0, channels, chunk_size):
                chosen = torch.arange(start, min(start + chunk_size, channels), device=activations.device)
                batch = activations[image].repeat(len(chosen), 1, 1, 1)
                batch[torch.arange(len(chosen), device=batch.device), chosen] = 0
                weights[image, chosen] = head(batch)[:, targets[image]]
    return (scores[:, None] - weights) / scores[:, None]


def score_weights(model: nn.Module, images: torch.Tensor, activations: torch.Tensor, targets: torch.Tensor,
                  chunk_size: int = 64) -> torch.Tensor:
    """Score-CAM's channel weights (``N, F``): the softmax over channels of the target's score on the
    image masked by each channel, upsampled (bilinear, corners aligned) and min-max scaled."""
    n, channels = activations.shape[:2]
    scores = torch.empty(n, channels, device=activations.device)
    with torch.no_grad(), evaluating(model):
        masks = F.interpolate(activations, size=images.shape[-2:], mode="bilinear", align_corners=True)
        low, high = masks.amin(dim=(2, 3), keepdim=True), masks.amax(dim=(2, 3), keepdim=True)
        masks = (masks - low) / (high - low + 1e-8)
        for image in range(n):
            for start in range(0, channels, chunk_size):
                masked = images[image][None] * masks[image, start:start + chunk_size, None]
                scores[image, start:start + chunk_size] = model(masked)[:, targets[image]]
    return torch.softmax(scores, dim=1)


def family_maps(model: nn.Module, target_layer: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None,
                methods=FAMILY, raw: bool = False, chunk_size: int = 64) -> dict[str, torch.Tensor]:
    """Maps of the CAM family for a batch: the gradient-based ones from one forward and one backward
    pass, Ablation-CAM through the head, Score-CAM in batches of ``chunk_size`` masked images.

    Returns the post-processed maps (``N, H, W`` in [0, 1], as pytorch-grad-cam returns them), the
    explained classes (``"targets"``) and, with ``raw=True``, the signed maps at the target layer's
    resolution (``"raw_<method>"``).
    """
    for method in methods:
        check_choice("CAM method", method, FAMILY)
    activations, gradients, logits, targets = activations_and_gradients(model, target_layer, images, targets)
    signed = gradient_maps(activations, gradients, [m for m in methods if m in GRADIENT_METHODS])
    if "ablationcam" in methods:
        head = getattr(model, "head", None)
        try:
            with torch.no_grad():
                feeds_head = head is not None and torch.allclose(head(activations), logits, rtol=1e-4, atol=1e-4)
        except RuntimeError:  # the head does not take the target layer's shape
            feeds_head = False
        if not feeds_head:
            raise ValueError("Ablation-CAM is computed through the head: the target layer must feed model.head "
                             "directly (the default target layer of camfaith.build_model does)")
        weights = ablation_weights(head, activations, targets)
        signed["ablationcam"] = (weights[:, :, None, None] * activations).sum(dim=1)
    if "scorecam" in methods:
        weights = score_weights(model, images, activations, targets, chunk_size)
        signed["scorecam"] = (weights[:, :, None, None] * activations).sum(dim=1)
    maps = {m: postprocess(signed[m], images.shape[-2:]) for m in methods}
    if raw:
        maps |= {f"raw_{m}": signed[m] for m in methods}
    return maps | {"targets": targets}


def family_explainer(model: nn.Module, target_layer: nn.Module, method: str, chunk_size: int = 64) -> Callable:
    """An explanation function ``explain(images, targets) -> maps (N, H, W)`` for one method of the family,
    the form :func:`camfaith.max_sensitivity` takes."""
    check_choice("CAM method", method, FAMILY)

    def explain(images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return family_maps(model, target_layer, images, targets, (method,), chunk_size=chunk_size)[method]

    explain.__name__ = method
    return explain


def logit_shares(model: nn.Module, activations: torch.Tensor,
                 targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each location's share of the logit minus the bias (``N, D1, D2``), and that total (``N``), for a
    head of one Linear layer after Flatten or GAP: ``sum_f W_fij A_fij`` (GAP: ``W_f A_fij / (D1 D2)``)."""
    head_type = getattr(model, "head_type", None)
    if head_type not in ("flatten", "gap"):
        raise ValueError(f"the shares of the logit are exact for one Linear after Flatten or GAP; this head is "
                         f"{head_type!r} (build the model with head='flatten' or 'gap')")
    linear = model.head[-1]
    weights = linear.weight[targets].detach()
    if head_type == "flatten":
        shares = (weights.reshape(activations.shape) * activations).sum(dim=1)
    else:
        shares = (weights[:, :, None, None] * activations).sum(dim=1) / activations[0, 0].numel()
    return shares, shares.sum(dim=(1, 2))


def hierarchy_table(model: nn.Module, target_layer: nn.Module, images: torch.Tensor, methods=FAMILY) -> pd.DataFrame:
    """The hierarchy of faithfulness measured on a network: per method, its level by the theory, the
    largest distance of its raw map from the shares of the logit (relative to the largest share: 0 for a
    location-exact map), and the mean relative distance of its total from the logit minus the bias (0 for
    a complete map)."""
    maps = family_maps(model, target_layer, images, methods=methods, raw=True)
    activations, _, _, targets = activations_and_gradients(model, target_layer, images, maps["targets"])
    shares, totals = logit_shares(model, activations, targets)
    scale = shares.abs().amax(dim=(1, 2))
    rows = []
    for method in methods:
        raw = maps[f"raw_{method}"]
        rows.append({"method": method, "level": faithfulness_level(method, model.head_type),
                     "location error": float(((raw - shares).abs().amax(dim=(1, 2)) / scale).max()),
                     "total error": float(((raw.sum(dim=(1, 2)) - totals).abs() / totals.abs()).mean())})
    return pd.DataFrame(rows)
