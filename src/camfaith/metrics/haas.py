"""HAAS: Heatmap Assisted Accuracy Score (Lee et al. 2022; section 2.2.3, eq. 9-10 of Lamprou 2023).

Score direction: **higher is better** (``haas.higher_is_better``); above 1 the attribution helps
the model, below 1 it hurts.

The maps become attributions ``a`` in [-1, 1] (:func:`ha_attribution`), the images (scaled to
[-1, 1]) become heatmap-assisted images

    ``HA(x, a) = max(-1, min(1, x * (1 + a)))``                      (eq. 9 of Lamprou 2023)

(:func:`ha_images`), and the model classifies both. The score is

    ``HAAS = Acc(f(HA(x, a))) / Acc(f(x))``                           (eq. 10 of Lamprou 2023)

a ratio of accuracies over the whole test set (:func:`haas_ratio`), not a mean of per-batch ratios.
HAAS has no hyper-parameters and draws no random numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from camfaith.device import check_precision, evaluating, model_device
from camfaith.metrics.checks import (
    RANGE_TOLERANCE,
    check_images,
    check_in_range,
    check_maps,
    check_targets,
    chunk_bounds,
    model_logits,
    resize_maps,
)
from camfaith.parameters import check_positive_integers

__all__ = ["ATTRIBUTION_SCALINGS", "HAASResult", "ha_attribution", "ha_images", "haas", "haas_ratio"]

ATTRIBUTION_SCALINGS = ("unit", "centered", "signed")


class HAASResult(NamedTuple):
    """Output of :func:`haas`.

    Attributes
    ----------
    score : Tensor ()
        ``ha_accuracy / accuracy`` (eq. 10 of Lamprou 2023); NaN when ``accuracy`` is 0.
    accuracy, ha_accuracy : Tensor ()
        Accuracy on the original and on the heatmap-assisted (HA) images.
    predictions, ha_predictions : Tensor (N,)
        Predicted classes on the original and on the HA images; pool these over batches and call
        :func:`haas_ratio` to get the score of a whole test set.
    ha_images : Tensor (N, C, H, W) or None
        The HA images (eq. 9 of Lamprou 2023), only when asked for with ``return_images=True``.
    """

    score: torch.Tensor
    accuracy: torch.Tensor
    ha_accuracy: torch.Tensor
    predictions: torch.Tensor
    ha_predictions: torch.Tensor
    ha_images: torch.Tensor | None


def ha_attribution(maps: torch.Tensor, size: tuple[int, int], scaling: str = "unit") -> torch.Tensor:
    """The attribution ``a`` of eq. 9 of Lamprou (2023): maps resized to the image size, scaled into [-1, 1].

    Maps are first resized bilinearly to ``size`` (a convex interpolation, so value ranges hold),
    then scaled per image:

    - ``"unit"``: a CAM already in [0, 1] (pytorch-grad-cam's output), used as is; it can only
      emphasise pixels, never de-emphasise them.
    - ``"centered"``: ``2a - 1`` for a CAM in [0, 1], so the least relevant pixels get -1.
    - ``"signed"``: a raw signed map divided by its largest absolute value (an all-zero map stays 0),
      as in Lee et al. 2022.

    Returns
    -------
    Tensor (N, H, W)
        Values in [-1, 1].
    """
    if scaling not in ATTRIBUTION_SCALINGS:
        raise ValueError(f"unknown attribution_scaling {scaling!r}; use one of {ATTRIBUTION_SCALINGS}")
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"maps must be a tensor of shape (N, H, W), got {shape}")
    maps = maps.detach()
    if not maps.is_floating_point():
        maps = maps.float()
    maps = resize_maps(maps, size)
    if scaling == "signed":
        peak = maps.abs().amax(dim=(1, 2), keepdim=True)
        return maps / torch.where(peak == 0, torch.ones_like(peak), peak)
    low, high = maps.aminmax()
    if float(low) < -RANGE_TOLERANCE or float(high) > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"attribution_scaling={scaling!r} needs maps in [0, 1], got values in [{float(low):.4g}, "
            f"{float(high):.4g}]; use attribution_scaling='signed' for raw signed maps"
        )
    maps = maps.clamp(0, 1)
    return maps if scaling == "unit" else 2 * maps - 1


def ha_images(images: torch.Tensor, attribution: torch.Tensor) -> torch.Tensor:
    """Heatmap-assisted images ``HA(x, a) = max(-1, min(1, x * (1 + a)))`` (eq. 9 of Lamprou 2023).

    Where ``a > 0`` a pixel moves away from 0 (emphasised), where ``a < 0`` towards 0
    (de-emphasised); e.g. ``x = 1/2, a = 1/2`` gives ``3/4`` and ``x = 1/2, a = -1/2`` gives ``1/4``
    (the example of section 2.2.3 of Lamprou 2023).

    Parameters
    ----------
    images : Tensor (N, C, H, W)
        Values in [-1, 1].
    attribution : Tensor (N, H, W) or (N, C, H, W)
        Values in [-1, 1]; an ``(N, H, W)`` map applies to every channel.
    """
    images = check_images(images)
    if not isinstance(attribution, torch.Tensor):
        raise ValueError(f"attribution must be a torch.Tensor, got {type(attribution).__name__}")
    attribution = attribution.detach().to(images.device)
    if attribution.ndim == 3:
        attribution = attribution.unsqueeze(1)
    if (
        attribution.ndim != 4
        or attribution.shape[0] != images.shape[0]
        or attribution.shape[2:] != images.shape[2:]
    ):
        raise ValueError(
            f"attribution must have shape (N, H, W) or (N, C, H, W) matching images {tuple(images.shape)}, "
            f"got {tuple(attribution.shape)}; resize maps with ha_attribution first"
        )
    if attribution.shape[1] not in (1, images.shape[1]):
        raise ValueError(f"attribution has {attribution.shape[1]} channels, images {images.shape[1]}")
    check_in_range(
        images, "images", "scale them to [-1, 1] as in section 4.2 of Lamprou (2023) (e.g. 2 * x - 1 for x in [0, 1])"
    )
    check_in_range(attribution, "attribution", "scale it with ha_attribution")
    return (images * (1 + attribution)).clamp(-1, 1)


def _accuracies(
    labels: torch.Tensor, predictions: torch.Tensor, ha_predictions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy on the original and on the HA images."""
    return (predictions == labels).float().mean(), (ha_predictions == labels).float().mean()


def _ratio(accuracy: torch.Tensor, ha_accuracy: torch.Tensor) -> torch.Tensor:
    """``ha_accuracy / accuracy`` (eq. 10 of Lamprou 2023), NaN where ``accuracy`` is 0."""
    return torch.where(accuracy > 0, ha_accuracy / accuracy, torch.full_like(accuracy, math.nan))


def haas_ratio(labels: torch.Tensor, predictions: torch.Tensor, ha_predictions: torch.Tensor) -> torch.Tensor:
    """``Acc(f(HA(x, a))) / Acc(f(x))`` over a set of predictions (eq. 10 of Lamprou 2023).

    HAAS is a ratio of accuracies over the whole test set, not a mean of per-batch ratios: pool the
    predictions of all batches and call this once. Returns NaN when no original prediction is
    correct (the ratio is undefined).
    """
    labels = torch.as_tensor(labels)
    predictions = torch.as_tensor(predictions, device=labels.device)
    ha_predictions = torch.as_tensor(ha_predictions, device=labels.device)
    if (
        not (labels.shape == predictions.shape == ha_predictions.shape)
        or labels.ndim != 1
        or labels.numel() == 0
    ):
        raise ValueError(
            "labels, predictions and ha_predictions must be non-empty 1-d tensors of one length, got shapes "
            f"{tuple(labels.shape)}, {tuple(predictions.shape)}, {tuple(ha_predictions.shape)}"
        )
    return _ratio(*_accuracies(labels, predictions, ha_predictions))


def _predictions(model: nn.Module, images: torch.Tensor, chunk_size: int, precision: str) -> torch.Tensor:
    """The class the model predicts for each image, ``chunk_size`` images per forward pass."""
    return torch.cat(
        [model_logits(model, images[a:b], precision).argmax(1) for a, b in chunk_bounds(images.shape[0], chunk_size)]
    )


def haas(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    maps: torch.Tensor,
    attribution_scaling: str = "unit",
    chunk_size: int = 64,
    return_images: bool = False,
    precision: str = "float32",
) -> HAASResult:
    """HAAS of one batch (eq. 9-10 of Lamprou 2023); higher is better, above 1 the maps help.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits; runs in eval mode under ``torch.no_grad`` (modes restored).
    images : Tensor (N, C, H, W)
        Scaled to [-1, 1] as in section 4.2 of Lamprou (2023); anything else is rejected.
    labels : Tensor (N,)
        True classes.
    maps : Tensor (N, h, w)
        Attribution maps of any resolution, resized bilinearly to the image size.
    attribution_scaling : {"unit", "centered", "signed"}
        How maps become ``a`` (see :func:`ha_attribution`).
    chunk_size : int
        Images per forward pass.
    return_images : bool
        Also return the HA images.
    precision : {"float32", "bfloat16"}
        Of the forward passes (:func:`camfaith.device.forward_precision`; bfloat16 needs CUDA).

    Returns
    -------
    HAASResult
        ``score`` (NaN when the original accuracy is 0), both accuracies and both prediction vectors.
    """
    images = check_images(images)
    device = model_device(model, images.device)
    images = images.to(device)
    n_images = images.shape[0]
    labels = check_targets(labels, n_images, device, name="labels")
    maps = check_maps(maps, n_images, device)
    check_positive_integers(chunk_size=chunk_size)
    check_precision(precision, False, device)
    check_in_range(
        images, "images", "HAAS needs images scaled to [-1, 1] as in section 4.2 of Lamprou (2023) (e.g. 2 * x - 1)"
    )
    assisted = ha_images(images, ha_attribution(maps, tuple(images.shape[2:]), attribution_scaling))
    with evaluating(model), torch.no_grad():
        predictions = _predictions(model, images, chunk_size, precision)
        ha_predictions = _predictions(model, assisted, chunk_size, precision)
    accuracy, ha_accuracy = _accuracies(labels, predictions, ha_predictions)
    return HAASResult(
        score=_ratio(accuracy, ha_accuracy),
        accuracy=accuracy,
        ha_accuracy=ha_accuracy,
        predictions=predictions,
        ha_predictions=ha_predictions,
        ha_images=assisted if return_images else None,
    )


haas.higher_is_better = True
