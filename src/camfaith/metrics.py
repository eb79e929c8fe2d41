"""The three evaluation metrics of the seed (section 2.2): AOPC, Max-Sensitivity and HAAS.

Each metric is a pure function of a model (or an explanation function), a batch of images and
attribution maps. It returns per-image scores, and curves where the metric has one, as tensors on
the device of the model (AOPC, HAAS) or of the images (Max-Sensitivity). Aggregation over a test
set and plotting live elsewhere.

Score directions, also stored as the function attribute ``higher_is_better``:

- :func:`aopc` (Samek et al. 2017, seed eq. 6-7): higher is better.
- :func:`max_sensitivity` (Yeh et al. 2019, seed eq. 8): lower is better.
- :func:`haas` (Lee et al. 2022, seed eq. 9-10): higher is better; above 1 the attribution
  helps the model.
- :func:`relevance_mass` (Arras et al. 2022), for data with ground-truth masks: higher is better.

Randomness (the noise of AOPC and of Max-Sensitivity) comes from an explicit ``torch.Generator``.
It may live on the device of the images, or on the CPU: a CPU generator's draws are made on the
CPU and moved to the device once per block, which gives the same noise on every device. With
``generator=None`` the global RNG of the device is used and results depend on its state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Real
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTRIBUTION_SCALINGS",
    "PERTURBATIONS",
    "AOPCResult",
    "HAASResult",
    "MaxSensitivityResult",
    "aopc",
    "cell_partition",
    "ha_attribution",
    "ha_images",
    "haas",
    "haas_ratio",
    "max_sensitivity",
    "pool_regions",
    "relevance_mass",
]

PERTURBATIONS = ("uniform", "image_range")
ATTRIBUTION_SCALINGS = ("unit", "centered", "signed")
RANGE_TOLERANCE = 1e-4


class AOPCResult(NamedTuple):
    """Output of :func:`aopc`.

    Attributes
    ----------
    scores : Tensor (N,)
        Per-image AOPC, ``1/(L+1) * sum_k (f(x_0) - f(x_k))`` (seed eq. 6-7 before the test-set mean).
    curves : Tensor (N, L+1)
        The MoRF perturbation curves: class probability after ``k = 0..L`` removed cells (seed Fig. 14).
    order : Tensor (N, L)
        Cell indices (row-major, ``row * regions + column``) in removal order, most relevant first.
    targets : Tensor (N,)
        The class whose probability is tracked.
    """

    scores: torch.Tensor
    curves: torch.Tensor
    order: torch.Tensor
    targets: torch.Tensor


class MaxSensitivityResult(NamedTuple):
    """Output of :func:`max_sensitivity`.

    Attributes
    ----------
    scores : Tensor (N,)
        Per-image Max-Sensitivity, the largest of ``distances`` (seed eq. 8).
    distances : Tensor (N, n_samples)
        Frobenius distance between the clean and each perturbed explanation (divided by the norm of
        the clean explanation when ``normalize=True``).
    """

    scores: torch.Tensor
    distances: torch.Tensor


class HAASResult(NamedTuple):
    """Output of :func:`haas`.

    Attributes
    ----------
    score : Tensor ()
        ``ha_accuracy / accuracy`` (seed eq. 10); NaN when ``accuracy`` is 0.
    accuracy, ha_accuracy : Tensor ()
        Accuracy on the original and on the heatmap-assisted (HA) images.
    predictions, ha_predictions : Tensor (N,)
        Predicted classes on the original and on the HA images; pool these over batches and call
        :func:`haas_ratio` to get the score of a whole test set.
    ha_images : Tensor (N, C, H, W) or None
        The HA images (seed eq. 9), only when asked for with ``return_images=True``.
    """

    score: torch.Tensor
    accuracy: torch.Tensor
    ha_accuracy: torch.Tensor
    predictions: torch.Tensor
    ha_predictions: torch.Tensor
    ha_images: torch.Tensor | None


# ----------------------------------------------------------------------------------------------
# Validation and small shared pieces
# ----------------------------------------------------------------------------------------------


def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be a floating-point tensor, got dtype {images.dtype}; convert with .float()"
        )
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch; pass at least one image")
    return images.detach()


def _check_maps(maps, n_images: int, device: torch.device) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor):
        raise ValueError(f"maps must be a torch.Tensor of shape (N, H, W), got {type(maps).__name__}")
    if maps.ndim != 3:
        hint = " (squeeze the channel dimension)" if maps.ndim == 4 and maps.shape[1] == 1 else ""
        raise ValueError(f"maps must have shape (N, H, W), got shape {tuple(maps.shape)}{hint}")
    if maps.shape[0] != n_images:
        raise ValueError(f"got {maps.shape[0]} maps for {n_images} images; pass one map per image")
    maps = maps.detach().to(device)
    if not maps.is_floating_point():
        maps = maps.float()
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("maps contain NaN or infinite values")
    return maps


def _check_targets(targets, n_images: int, device: torch.device, name: str = "targets") -> torch.Tensor:
    targets = torch.as_tensor(targets, device=device)
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {targets.dtype}")
    targets = targets.long().reshape(-1)
    if targets.numel() != n_images:
        raise ValueError(
            f"got {targets.numel()} {name} for {n_images} images; pass one class index per image"
        )
    if bool((targets < 0).any()):
        raise ValueError(f"{name} must be non-negative class indices")
    return targets


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def _check_generator(generator, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}; "
            "pass e.g. torch.Generator().manual_seed(0)"
        )
    if generator.device.type != "cpu" and generator.device != device:
        raise ValueError(
            f"generator is on {generator.device} but the images are on {device}; "
            "use a generator on the images' device or a CPU generator"
        )


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def _uniform(shape, generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Uniform draws in [0, 1); made on the generator's device, returned on ``device``."""
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device, dtype=dtype).to(device)


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(N, h, w)`` maps to ``size`` (no-op when the size already matches)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def _chunks(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, chunk_size):
        yield start, min(start + chunk_size, total)


@contextmanager
def _evaluating(model: nn.Module):
    """Put every module in eval mode (batch-independent outputs) and restore each one's mode after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _logits(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return class scores of shape (N, classes), got {shape}")
    return logits


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.softmax(dim=1)


def _check_in_range(tensor: torch.Tensor, what: str, fix: str, tolerance: float = RANGE_TOLERANCE) -> None:
    low, high = tensor.aminmax()
    if float(low) < -1 - tolerance or float(high) > 1 + tolerance:
        raise ValueError(
            f"{what} must lie in [-1, 1], got values in [{float(low):.4g}, {float(high):.4g}]; {fix}"
        )


# ----------------------------------------------------------------------------------------------
# AOPC
# ----------------------------------------------------------------------------------------------


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
    """Average an ``(N, H, W)`` map over the cells of :func:`cell_partition` (the seed's heatmap H).

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
    """What a removed pixel becomes; one full draw per image, so removed cells keep their noise."""
    if isinstance(perturbation, str):
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"unknown perturbation {perturbation!r}; use one of {PERTURBATIONS} or a float constant"
            )
        draws = _uniform(images.shape, generator, images.device, images.dtype)
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
    """Area Over the MoRF Perturbation Curve (Samek et al. 2017; seed section 2.2.1, eq. 6-7).

    The map is resized bilinearly to the image size (if needed) and averaged over a
    ``regions x regions`` grid of cells (:func:`pool_regions`). Cells are removed most relevant
    first, ties broken by the lower cell index. Step ``k`` replaces the pixels of the ``k``-th cell
    (all channels) and keeps the earlier cells removed: ``x_k = g(x_{k-1}, r_k)``. The tracked score
    ``f`` is the softmax probability of the class predicted on the clean image (or of ``targets``).
    With ``L = regions**2``, the per-image score is ``1/(L+1) * sum_{k=1..L} (f(x_0) - f(x_k))``;
    the seed's eq. 7 is its mean over the test set.

    Each removed cell gets noise drawn fresh for it, and the draw is made once per image for the
    whole image up front, so ``x_k`` is the clean image with the first ``k`` cells taken from that
    draw. The ``N * L`` perturbed images are then built with cumulative cell masks and go through
    the model in chunks; the noise does not depend on ``chunk_size``.

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
        Cells per side, ``1 <= regions <= min(H, W)``; the seed uses 4, 8, 11 and 14 on 224 px.
    perturbation : {"uniform", "image_range"} or float
        ``g``: ``"uniform"`` noise in [-1, 1] (the seed's choice for images in [-1, 1]),
        ``"image_range"`` uniform noise in each image's own [min, max], or a constant value.
    generator : torch.Generator, optional
        Source of the noise, on the model's device or on the CPU (see the module docstring).
    chunk_size : int
        Perturbed images per forward pass.
    targets : Tensor (N,), optional
        Classes to track; by default the class predicted on each clean image.

    Returns
    -------
    AOPCResult
        ``scores (N,)`` (higher is better), ``curves (N, L+1)``, ``order (N, L)``, ``targets (N,)``.
    """
    images = _check_images(images)
    device = _model_device(model, images.device)
    images = images.to(device)
    n_images, _, height, width = images.shape
    maps = _check_maps(maps, n_images, device)
    chunk_size = _check_chunk_size(chunk_size)
    _check_generator(generator, device)
    cells = cell_partition(height, width, regions, device)
    fill = _removal_fill(images, perturbation, generator)
    n_cells = regions * regions

    heat = pool_regions(_resize(maps, (height, width)), regions).flatten(1)
    order = torch.sort(heat, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_cells, device=device).expand_as(order))
    # removal_step[n, 0, h, w]: the MoRF step (1..L) at which pixel (h, w) of image n is removed
    removal_step = (rank[:, cells] + 1).unsqueeze(1)

    with _evaluating(model), torch.no_grad():
        clean_logits = torch.cat([_logits(model, images[a:b]) for a, b in _chunks(n_images, chunk_size)])
        if targets is None:
            targets = clean_logits.argmax(dim=1)
        else:
            targets = _check_targets(targets, n_images, device)
            if bool((targets >= clean_logits.shape[1]).any()):
                raise ValueError(f"targets must be class indices below {clean_logits.shape[1]}")
        clean_scores = _probabilities(clean_logits).gather(1, targets[:, None]).squeeze(1)

        n_pairs = n_images * n_cells
        perturbed_scores = clean_scores.new_empty(n_pairs)
        for start, stop in _chunks(n_pairs, chunk_size):
            pair = torch.arange(start, stop, device=device)
            image_index, step = pair // n_cells, pair % n_cells + 1
            removed = removal_step[image_index] <= step.view(-1, 1, 1, 1)
            batch = torch.where(removed, fill[image_index], images[image_index])
            probabilities = _probabilities(_logits(model, batch))
            perturbed_scores[start:stop] = probabilities.gather(1, targets[image_index, None]).squeeze(1)

    curves = torch.cat([clean_scores[:, None], perturbed_scores.view(n_images, n_cells)], dim=1)
    scores = (curves[:, :1] - curves[:, 1:]).sum(dim=1) / (n_cells + 1)
    return AOPCResult(scores=scores, curves=curves, order=order, targets=targets)


aopc.higher_is_better = True


# ----------------------------------------------------------------------------------------------
# Max-Sensitivity
# ----------------------------------------------------------------------------------------------


def _explanations(
    explain: Callable, batch: torch.Tensor, targets: torch.Tensor, map_shape=None
) -> torch.Tensor:
    maps = explain(batch, targets)
    try:
        maps = torch.as_tensor(maps, device=batch.device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"explain must return maps of shape (N, H, W), got {type(maps).__name__}") from error
    if maps.ndim != 3 or maps.shape[0] != batch.shape[0]:
        raise ValueError(
            f"explain must return one map per image, shape ({batch.shape[0]}, H, W); got {tuple(maps.shape)}"
        )
    if map_shape is not None and maps.shape[1:] != map_shape:
        raise ValueError(
            f"explain returned maps of size {tuple(maps.shape[1:])} for perturbed images but "
            f"{tuple(map_shape)} for the clean ones"
        )
    return maps.detach()


class _BlockStream:
    """Blocks of noise drawn one after the other on demand, so their values do not depend on how
    consumers slice them into chunks."""

    def __init__(self, draw: Callable[[], torch.Tensor]):
        self._draw = draw
        self._index = -1
        self._block = None

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < self._index:
            raise IndexError("blocks must be read in increasing order")
        while self._index < index:
            self._block = self._draw()
            self._index += 1
        return self._block


def max_sensitivity(
    explain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    radius: float,
    n_samples: int,
    targets: torch.Tensor,
    normalize: bool = False,
    generator: torch.Generator | None = None,
    chunk_size: int = 32,
    clip: tuple[float, float] | None = None,
) -> MaxSensitivityResult:
    """Monte-Carlo Max-Sensitivity (Yeh et al. 2019; seed section 2.2.2, eq. 8).

    ``SENS_MAX(x) = max_{||y - x||_inf <= r} ||Phi(x) - Phi(y)||_F`` is estimated by drawing
    ``n_samples`` points ``y = x + u`` with every coordinate of ``u`` uniform in ``[-r, r]`` and
    taking the largest Frobenius distance between the explanation maps (all map pixels of one
    image). Both explanations are of the same class, ``targets``: the class predicted on the clean
    image, which the caller passes in.

    The noise is drawn sample by sample, one ``(N, C, H, W)`` block per sample, so that sample ``s``
    of image ``n`` is the same for every ``chunk_size``. Perturbed copies are explained in chunks of
    ``chunk_size`` images that mix images and samples (sample-major order).

    Parameters
    ----------
    explain : callable
        ``explain(images, targets) -> maps (N, H, W)``, e.g. a Grad-CAM or HiResCAM explainer. It is
        called once on the clean batch and then on batches of perturbed copies; it may need
        gradients, so it is not wrapped in ``torch.no_grad``.
    images : Tensor (N, C, H, W)
    radius : float
        ``r > 0``, the L-infinity radius (the seed uses 0.05 to 0.5 on images in [-1, 1]).
    n_samples : int
        Monte-Carlo samples per image, at least 1.
    targets : Tensor (N,)
        Class explained for each image and all its perturbed copies.
    normalize : bool
        Divide each distance by the Frobenius norm of the clean explanation (the relative form used
        by Yeh et al.'s code and by ``captum.metrics.sensitivity_max``). An all-zero clean map is
        divided by 1, as captum does.
    generator : torch.Generator, optional
        Source of the noise, on the images' device or on the CPU (see the module docstring).
    chunk_size : int
        Perturbed images per call of ``explain``.
    clip : (float, float), optional
        Clamp perturbed images to this range, e.g. ``(-1, 1)``. Off by default, as in the seed and
        in Yeh et al.; clipping keeps ``y`` in the ball whenever ``x`` lies in the range.

    Returns
    -------
    MaxSensitivityResult
        ``scores (N,)`` (lower is better) and ``distances (N, n_samples)``, on the images' device.
    """
    images = _check_images(images)
    device = images.device
    n_images = images.shape[0]
    if isinstance(radius, bool) or not isinstance(radius, Real) or not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    targets = _check_targets(targets, n_images, device)
    chunk_size = _check_chunk_size(chunk_size)
    _check_generator(generator, device)
    if clip is not None:
        if len(clip) != 2 or not float(clip[0]) < float(clip[1]):
            raise ValueError(f"clip must be None or a pair (low, high) with low < high, got {clip!r}")
        clip = (float(clip[0]), float(clip[1]))
    if not callable(explain):
        raise ValueError("explain must be a callable explain(images, targets) -> maps (N, H, W)")

    clean = _explanations(explain, images, targets)
    noise = _BlockStream(lambda: radius * (2 * _uniform(images.shape, generator, device, images.dtype) - 1))

    n_pairs = n_samples * n_images
    distances = torch.empty(
        n_pairs, device=device, dtype=clean.dtype if clean.is_floating_point() else torch.float32
    )
    for start, stop in _chunks(n_pairs, chunk_size):
        pieces = []
        for sample in range(start // n_images, (stop - 1) // n_images + 1):
            first = max(start, sample * n_images) - sample * n_images
            last = min(stop, (sample + 1) * n_images) - sample * n_images
            pieces.append(noise[sample][first:last])
        image_index = torch.arange(start, stop, device=device) % n_images
        perturbed = images[image_index] + torch.cat(pieces)
        if clip is not None:
            perturbed = perturbed.clamp(*clip)
        maps = _explanations(explain, perturbed, targets[image_index], clean.shape[1:])
        distances[start:stop] = torch.linalg.vector_norm((maps - clean[image_index]).flatten(1), dim=1)

    distances = distances.view(n_samples, n_images).T
    if normalize:
        clean_norm = torch.linalg.vector_norm(clean.flatten(1).to(distances.dtype), dim=1)
        distances = distances / torch.where(clean_norm == 0, torch.ones_like(clean_norm), clean_norm)[:, None]
    return MaxSensitivityResult(scores=distances.amax(dim=1), distances=distances)


max_sensitivity.higher_is_better = False


# ----------------------------------------------------------------------------------------------
# HAAS
# ----------------------------------------------------------------------------------------------


def ha_attribution(maps: torch.Tensor, size: tuple[int, int], scaling: str = "unit") -> torch.Tensor:
    """The attribution ``a`` of seed eq. 9: maps resized to the image size and scaled into [-1, 1].

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
    maps = _resize(maps, size)
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
    """Heatmap-assisted images ``HA(x, a) = max(-1, min(1, x * (1 + a)))`` (seed eq. 9).

    Where ``a > 0`` a pixel moves away from 0 (emphasised), where ``a < 0`` towards 0
    (de-emphasised); e.g. ``x = 1/2, a = 1/2`` gives ``3/4`` and ``x = 1/2, a = -1/2`` gives ``1/4``
    (seed section 2.2.3).

    Parameters
    ----------
    images : Tensor (N, C, H, W)
        Values in [-1, 1].
    attribution : Tensor (N, H, W) or (N, C, H, W)
        Values in [-1, 1]; an ``(N, H, W)`` map applies to every channel.
    """
    images = _check_images(images)
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
    _check_in_range(
        images, "images", "scale them to [-1, 1] as in seed section 4.2 (e.g. 2 * x - 1 for x in [0, 1])"
    )
    _check_in_range(attribution, "attribution", "scale it with ha_attribution")
    return (images * (1 + attribution)).clamp(-1, 1)


def haas_ratio(labels: torch.Tensor, predictions: torch.Tensor, ha_predictions: torch.Tensor) -> torch.Tensor:
    """``Acc(f(HA(x, a))) / Acc(f(x))`` over a set of predictions (seed eq. 10).

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
    accuracy = (predictions == labels).float().mean()
    ha_accuracy = (ha_predictions == labels).float().mean()
    return torch.where(accuracy > 0, ha_accuracy / accuracy, torch.full_like(accuracy, math.nan))


def haas(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    maps: torch.Tensor,
    attribution_scaling: str = "unit",
    chunk_size: int = 64,
    return_images: bool = False,
) -> HAASResult:
    """Heatmap Assisted Accuracy Score (Lee et al. 2022; seed section 2.2.3, eq. 9-10).

    The maps become attributions in [-1, 1] (:func:`ha_attribution`), the images become HA images
    (:func:`ha_images`), and the model classifies both. The score is the accuracy on HA images over
    the accuracy on the original ones: above 1 the attribution helps the model.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits; runs in eval mode under ``torch.no_grad`` (modes restored).
    images : Tensor (N, C, H, W)
        Scaled to [-1, 1] as in seed section 4.2; anything else is rejected.
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

    Returns
    -------
    HAASResult
        ``score`` (NaN when the original accuracy is 0), both accuracies and both prediction vectors.
    """
    images = _check_images(images)
    device = _model_device(model, images.device)
    images = images.to(device)
    n_images = images.shape[0]
    labels = _check_targets(labels, n_images, device, name="labels")
    maps = _check_maps(maps, n_images, device)
    chunk_size = _check_chunk_size(chunk_size)
    _check_in_range(
        images, "images", "HAAS needs images scaled to [-1, 1] as in seed section 4.2 (e.g. 2 * x - 1)"
    )

    assisted = ha_images(images, ha_attribution(maps, tuple(images.shape[2:]), attribution_scaling))
    with _evaluating(model), torch.no_grad():
        predictions = torch.cat(
            [_logits(model, images[a:b]).argmax(1) for a, b in _chunks(n_images, chunk_size)]
        )
        ha_predictions = torch.cat(
            [_logits(model, assisted[a:b]).argmax(1) for a, b in _chunks(n_images, chunk_size)]
        )
    accuracy = (predictions == labels).float().mean()
    ha_accuracy = (ha_predictions == labels).float().mean()
    return HAASResult(
        score=haas_ratio(labels, predictions, ha_predictions),
        accuracy=accuracy,
        ha_accuracy=ha_accuracy,
        predictions=predictions,
        ha_predictions=ha_predictions,
        ha_images=assisted if return_images else None,
    )


haas.higher_is_better = True


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's mass that lies on the ground-truth object (relevance mass accuracy).

    Arras et al. (2022) score an explanation by the fraction of its positive relevance inside the
    true object's mask. Maps (N, h, w) are clamped at 0 and resized bilinearly to the masks' size
    (N, H, W); a map with no positive mass scores 0. Needs data with known object locations, such as
    the report's synthetic data set.
    """
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps (N, h, w) and masks (N, H, W) must match in N; got {tuple(maps.shape)} and "
                         f"{tuple(masks.shape)}")
    maps = _resize(maps.float(), tuple(masks.shape[-2:])).clamp(min=0)
    masks = masks.to(maps.device, torch.bool)
    total = maps.sum(dim=(1, 2))
    inside = (maps * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


relevance_mass.higher_is_better = True
