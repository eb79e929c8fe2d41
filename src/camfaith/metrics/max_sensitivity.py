"""Max-Sensitivity of an explanation (Yeh et al. 2019; section 2.2.2, eq. 8 of Lamprou 2023).

Score direction: **lower is better** (``max_sensitivity.higher_is_better`` is False): a good
explanation barely changes when the input moves a little.

``SENS_MAX(x) = max_{||y - x||_inf <= r} ||Phi(x) - Phi(y)||_F`` (eq. 8 of Lamprou 2023) is
estimated by Monte Carlo: draw ``n_samples`` points ``y = x + u`` with every coordinate of ``u``
uniform in ``[-r, r]`` and take the largest Frobenius distance between the explanation maps (all
map pixels of one image). Both explanations are of the same class, ``targets``: the class
predicted on the clean image, which the caller passes in.

The metric takes an explanation function, not a model: ``explain(images, targets) -> maps``. The
explainers of :mod:`camfaith.cams` run their model in eval mode, so that a map does not depend on
the other images of its batch; an ``explain`` written by hand must do the same
(:func:`camfaith.device.evaluating`).

The noise is drawn sample by sample, one ``(N, C, H, W)`` block per sample, so that sample ``s``
of image ``n`` is the same for every ``chunk_size``. Perturbed copies are explained in chunks of
``chunk_size`` images that mix images and samples (sample-major order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import NamedTuple

import torch

from camfaith.metrics.checks import check_generator, check_images, check_targets, chunk_bounds
from camfaith.parameters import check_positive_integers
from camfaith.seeds import draw

__all__ = ["MaxSensitivityResult", "map_norms", "max_sensitivity"]


class MaxSensitivityResult(NamedTuple):
    """Output of :func:`max_sensitivity`.

    Attributes
    ----------
    scores : Tensor (N,)
        Per-image Max-Sensitivity, the largest of ``distances`` (eq. 8 of Lamprou 2023).
    distances : Tensor (N, n_samples)
        Frobenius distance between the clean and each perturbed explanation (divided by the norm of
        the clean explanation when ``normalize=True``).
    """

    scores: torch.Tensor
    distances: torch.Tensor


def _explanations(
    explain: Callable, batch: torch.Tensor, targets: torch.Tensor, map_shape=None
) -> torch.Tensor:
    """``explain(batch, targets)``, checked to be one map per image (of ``map_shape`` if given), detached."""
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


def _check_parameters(
    explain, images: torch.Tensor, radius, n_samples, targets, chunk_size, generator, clip
) -> tuple[torch.Tensor, tuple[float, float] | None]:
    """Reject bad parameters (``images`` already checked); return ``targets`` and ``clip`` as used."""
    if isinstance(radius, bool) or not isinstance(radius, Real) or not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
    check_positive_integers(n_samples=n_samples)
    targets = check_targets(targets, images.shape[0], images.device)
    check_positive_integers(chunk_size=chunk_size)
    check_generator(generator, images.device)
    if clip is not None:
        if len(clip) != 2 or not float(clip[0]) < float(clip[1]):
            raise ValueError(f"clip must be None or a pair (low, high) with low < high, got {clip!r}")
        clip = (float(clip[0]), float(clip[1]))
    if not callable(explain):
        raise ValueError("explain must be a callable explain(images, targets) -> maps (N, H, W)")
    return targets, clip


def _perturbed_chunk(
    images: torch.Tensor, noise: _BlockStream, start: int, stop: int, clip: tuple[float, float] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturbed copies ``start..stop-1`` in sample-major order, and the image each one comes from.

    Copy ``p`` is image ``p % N`` plus sample ``p // N`` of the noise, clamped to ``clip`` if given.
    """
    n_images = images.shape[0]
    pieces = []
    for sample in range(start // n_images, (stop - 1) // n_images + 1):
        first = max(start, sample * n_images) - sample * n_images
        last = min(stop, (sample + 1) * n_images) - sample * n_images
        pieces.append(noise[sample][first:last])
    image_index = torch.arange(start, stop, device=images.device) % n_images
    perturbed = images[image_index] + torch.cat(pieces)
    if clip is not None:
        perturbed = perturbed.clamp(*clip)
    return perturbed, image_index


def map_norms(maps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The divisor of normalised Max-Sensitivity (Yeh et al. 2019): the Frobenius norm of each clean map, in
    ``dtype``, and 1 for an all-zero map."""
    norms = torch.linalg.vector_norm(maps.flatten(1).to(dtype), dim=1)
    return torch.where(norms == 0, torch.ones_like(norms), norms)


def _normalized(distances: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Distances divided by the norm of the clean map (:func:`map_norms`)."""
    return distances / map_norms(clean, distances.dtype)[:, None]


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
    """Monte-Carlo Max-Sensitivity of ``explain`` on each image (eq. 8 of Lamprou 2023); lower is better.

    Parameters
    ----------
    explain : callable
        ``explain(images, targets) -> maps (N, H, W)``, e.g. a Grad-CAM or HiResCAM explainer; called
        once on the clean batch, then on batches of perturbed copies. It may need gradients, so it
        is not wrapped in ``torch.no_grad``.
    images : Tensor (N, C, H, W)
    radius : float
        ``r > 0``, the L-infinity radius (Lamprou 2023 uses 0.05 to 0.5 on images in [-1, 1]).
    n_samples : int
        Monte-Carlo samples per image, at least 1.
    targets : Tensor (N,)
        Class explained for each image and all its perturbed copies.
    normalize : bool
        Divide each distance by the Frobenius norm of the clean explanation (the relative form of
        Yeh et al.'s code and of ``captum.metrics.sensitivity_max``); an all-zero map divides by 1.
    generator : torch.Generator, optional
        Source of the noise, on the images' device or on the CPU (see :mod:`camfaith.metrics`).
    chunk_size : int
        Perturbed images per call of ``explain``.
    clip : (float, float), optional
        Clamp perturbed images to this range, e.g. ``(-1, 1)``. Off by default, as in the original
        study and in Yeh et al.; clipping keeps ``y`` in the ball whenever ``x`` lies in the range.

    Returns
    -------
    MaxSensitivityResult
        ``scores (N,)`` (lower is better) and ``distances (N, n_samples)``, on the images' device.
    """
    images = check_images(images)
    device, n_images = images.device, images.shape[0]
    targets, clip = _check_parameters(explain, images, radius, n_samples, targets, chunk_size, generator, clip)

    clean = _explanations(explain, images, targets)
    noise = _BlockStream(lambda: radius * (2 * draw(images.shape, generator, device, images.dtype) - 1))
    n_pairs = n_samples * n_images
    dtype = clean.dtype if clean.is_floating_point() else torch.float32
    distances = torch.empty(n_pairs, device=device, dtype=dtype)
    for start, stop in chunk_bounds(n_pairs, chunk_size):
        perturbed, image_index = _perturbed_chunk(images, noise, start, stop, clip)
        maps = _explanations(explain, perturbed, targets[image_index], clean.shape[1:])
        distances[start:stop] = torch.linalg.vector_norm((maps - clean[image_index]).flatten(1), dim=1)
    distances = distances.view(n_samples, n_images).T
    if normalize:
        distances = _normalized(distances, clean)
    return MaxSensitivityResult(scores=distances.amax(dim=1), distances=distances)


max_sensitivity.higher_is_better = False
