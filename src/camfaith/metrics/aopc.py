"""AOPC: Area Over the MoRF Perturbation Curve (Samek et al. 2017; eq. 6-7 of Lamprou 2023).

Score direction: **higher is better** (``aopc.higher_is_better``): removing the cells an explanation
calls most relevant first should make the tracked class probability fall fast.

The map is resized bilinearly to the image size (if needed) and averaged over a ``regions x
regions`` grid of cells (:func:`pool_regions`, the heatmap H of section 2.2.1 of Lamprou 2023).
Cells are removed most relevant first (MoRF), ties broken by the lower cell index. Step ``k``
replaces the pixels of the ``k``-th cell (all channels) and keeps the earlier cells removed:
``x_k = g(x_{k-1}, r_k)``. The tracked score ``f`` is the softmax probability of the class predicted
on the clean image (or of ``targets``). With ``L = regions**2`` the per-image score is

    ``AOPC(x) = 1/(L+1) * sum_{k=1..L} (f(x_0) - f(x_k))``          (eq. 6 of Lamprou 2023)

and eq. 7 of Lamprou (2023) is its mean over the test set, which is left to the caller.

Each removed cell gets noise drawn fresh for it, and the draw is made once per image for the
whole image up front, so ``x_k`` is the clean image with the first ``k`` cells taken from that
draw. The ``N * L`` perturbed images are then built with cumulative cell masks and go through the
model in chunks; the noise does not depend on ``chunk_size``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import torch
from torch import nn

from camfaith.device import evaluating, model_device
from camfaith.metrics.checks import (
    check_generator,
    check_images,
    check_maps,
    check_targets,
    chunk_bounds,
    draw_uniform,
    model_logits,
    resize_maps,
    softmax_probabilities,
)
from camfaith.parameters import check_positive_integers

__all__ = ["PERTURBATIONS", "AOPCResult", "aopc", "cell_partition", "pool_regions"]

PERTURBATIONS = ("uniform", "image_range")


class AOPCResult(NamedTuple):
    """Output of :func:`aopc`.

    Attributes
    ----------
    scores : Tensor (N,)
        Per-image AOPC, ``1/(L+1) * sum_k (f(x_0) - f(x_k))`` (eq. 6-7 of Lamprou 2023 before the
        test-set mean).
    curves : Tensor (N, L+1)
        The MoRF perturbation curves: class probability after ``k = 0..L`` removed cells (Figure 14
        of the original study).
    order : Tensor (N, L)
        Cell indices (row-major, ``row * regions + column``) in removal order, most relevant first.
    targets : Tensor (N,)
        The class whose probability is tracked.
    """

    scores: torch.Tensor
    curves: torch.Tensor
    order: torch.Tensor
    targets: torch.Tensor


def cell_partition(
    height: int, width: int, regions: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Cell index of every pixel for a ``regions x regions`` grid over a ``height x width`` image.

    Rows ``floor(i * height / regions) .. floor((i + 1) * height / regions) - 1`` form cell row
    ``i`` (columns alike), so the cells partition the image: every pixel belongs to exactly one
    cell and cells never overlap. When the size is divisible by ``regions`` (224 px into 4, 8 or 14)
    these are exactly the windows of adaptive average pooling; otherwise (224 px into 11) cells are
    20 or 21 px wide, where adaptive pooling would let neighbouring windows share a pixel.

    Returns
    -------
    Tensor (height, width) of int64
        ``row * regions + column`` of the cell that holds each pixel.
    """
    if isinstance(regions, bool) or not isinstance(regions, int) or not 1 <= regions <= min(height, width):
        raise ValueError(
            f"regions must be an integer in 1..{min(height, width)} (the smaller image side), got {regions!r}"
        )

    def along(size: int) -> torch.Tensor:
        ends = torch.arange(1, regions + 1, device=device) * size // regions
        return torch.searchsorted(ends, torch.arange(size, device=device), right=True)

    return along(height)[:, None] * regions + along(width)[None, :]


def pool_regions(maps: torch.Tensor, regions: int) -> torch.Tensor:
    """Average an ``(N, H, W)`` map over the cells of :func:`cell_partition` (the heatmap H of
    section 2.2.1 of Lamprou 2023).

    Returns
    -------
    Tensor (N, regions, regions)
        The mean map value of each cell.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W), got shape {tuple(maps.shape)}")
    n_images, height, width = maps.shape
    cells = cell_partition(height, width, regions, maps.device).flatten()
    sums = maps.new_zeros(n_images, regions * regions).index_add_(1, cells, maps.flatten(1))
    counts = torch.bincount(cells, minlength=regions * regions).to(maps.dtype)
    return (sums / counts).view(n_images, regions, regions)


def _removal_fill(images: torch.Tensor, perturbation, generator) -> torch.Tensor:
    """What a removed pixel becomes (``g``); one full draw per image, so removed cells keep their noise."""
    if isinstance(perturbation, str):
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"unknown perturbation {perturbation!r}; use one of {PERTURBATIONS} or a float constant"
            )
        draws = draw_uniform(images.shape, generator, images.device, images.dtype)
        if perturbation == "uniform":
            return 2 * draws - 1
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        high = images.amax(dim=(1, 2, 3), keepdim=True)
        return low + (high - low) * draws
    if (
        isinstance(perturbation, bool)
        or not isinstance(perturbation, Real)
        or not math.isfinite(perturbation)
    ):
        raise ValueError(
            f"perturbation must be one of {PERTURBATIONS} or a finite float constant, got {perturbation!r}"
        )
    return images.new_tensor(float(perturbation)).expand_as(images)


def _morf_order(maps: torch.Tensor, cells: torch.Tensor, regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells most relevant first, and the MoRF step (1..L) at which each pixel is removed.

    Returns ``order (N, L)`` and ``removal_step (N, 1, H, W)``, where ``removal_step[n, 0, h, w]``
    is the step at which pixel ``(h, w)`` of image ``n`` is removed.
    """
    n_cells = regions * regions
    heat = pool_regions(resize_maps(maps, tuple(cells.shape)), regions).flatten(1)
    order = torch.sort(heat, dim=1, descending=True, stable=True).indices
    steps = torch.arange(n_cells, device=maps.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, steps)
    return order, (rank[:, cells] + 1).unsqueeze(1)


def _clean_scores(
    model: nn.Module, images: torch.Tensor, targets, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(x_0)`` of every image and the tracked classes (the predicted ones when ``targets`` is None)."""
    n_images = images.shape[0]
    clean_logits = torch.cat([model_logits(model, images[a:b]) for a, b in chunk_bounds(n_images, chunk_size)])
    if targets is None:
        targets = clean_logits.argmax(dim=1)
    else:
        targets = check_targets(targets, n_images, images.device)
        if bool((targets >= clean_logits.shape[1]).any()):
            raise ValueError(f"targets must be class indices below {clean_logits.shape[1]}")
    return softmax_probabilities(clean_logits).gather(1, targets[:, None]).squeeze(1), targets


def _perturbed_scores(
    model: nn.Module,
    images: torch.Tensor,
    fill: torch.Tensor,
    removal_step: torch.Tensor,
    n_cells: int,
    targets: torch.Tensor,
    clean_scores: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """``f(x_k)`` for every image and step ``k = 1..L``, shape ``(N, L)``, the dtype of ``clean_scores``.

    Pair ``p`` of the ``N * L`` (image, step) pairs is image ``p // L`` with its first ``p % L + 1``
    cells removed: the cumulative mask ``removal_step <= k`` takes those pixels from ``fill``.
    """
    n_images = images.shape[0]
    n_pairs = n_images * n_cells
    scores = clean_scores.new_empty(n_pairs)
    for start, stop in chunk_bounds(n_pairs, chunk_size):
        pair = torch.arange(start, stop, device=images.device)
        image_index, step = pair // n_cells, pair % n_cells + 1
        removed = removal_step[image_index] <= step.view(-1, 1, 1, 1)
        batch = torch.where(removed, fill[image_index], images[image_index])
        probabilities = softmax_probabilities(model_logits(model, batch))
        scores[start:stop] = probabilities.gather(1, targets[image_index, None]).squeeze(1)
    return scores.view(n_images, n_cells)


def aopc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    regions: int = 8,
    perturbation: str | float = "uniform",
    generator: torch.Generator | None = None,
    chunk_size: int = 64,
    targets: torch.Tensor | None = None,
) -> AOPCResult:
    """Per-image AOPC of MoRF removal (Samek et al. 2017; section 2.2.1, eq. 6-7 of Lamprou 2023).

    See the module docstring for the definition; higher is better.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, classes)``. It runs in eval mode under ``torch.no_grad``;
        each module's train/eval mode is restored afterwards.
    images : Tensor (N, C, H, W)
        Moved to the model's device.
    maps : Tensor (N, h, w)
        Attribution maps of any resolution; larger is more relevant.
    regions : int
        Cells per side, ``1 <= regions <= min(H, W)``; Lamprou (2023) uses 4, 8, 11 and 14 on 224 px.
    perturbation : {"uniform", "image_range"} or float
        ``g``: ``"uniform"`` noise in [-1, 1] (the choice of the original study for images in [-1, 1]),
        ``"image_range"`` uniform noise in each image's own [min, max], or a constant value.
    generator : torch.Generator, optional
        Source of the noise, on the model's device or on the CPU (see :mod:`camfaith.metrics`).
    chunk_size : int
        Perturbed images per forward pass.
    targets : Tensor (N,), optional
        Classes to track; by default the class predicted on each clean image.

    Returns
    -------
    AOPCResult
        ``scores (N,)`` (higher is better), ``curves (N, L+1)``, ``order (N, L)``, ``targets (N,)``.
    """
    images = check_images(images)
    device = model_device(model, images.device)
    images = images.to(device)
    n_images, _, height, width = images.shape
    maps = check_maps(maps, n_images, device)
    check_positive_integers(chunk_size=chunk_size)
    check_generator(generator, device)
    cells = cell_partition(height, width, regions, device)
    fill = _removal_fill(images, perturbation, generator)
    n_cells = regions * regions
    order, removal_step = _morf_order(maps, cells, regions)
    with evaluating(model), torch.no_grad():
        clean_scores, targets = _clean_scores(model, images, targets, chunk_size)
        perturbed = _perturbed_scores(model, images, fill, removal_step, n_cells, targets, clean_scores, chunk_size)
    curves = torch.cat([clean_scores[:, None], perturbed], dim=1)
    scores = (curves[:, :1] - curves[:, 1:]).sum(dim=1) / (n_cells + 1)
    return AOPCResult(scores=scores, curves=curves, order=order, targets=targets)


aopc.higher_is_better = True
