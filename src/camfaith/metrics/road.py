"""Noisy linear imputation: the removal of ROAD (Rong et al. 2022), batched on the model's device.

Rong et al. (2022, "A consistent and efficient evaluation strategy for attribution methods") show
that filling removed pixels with noise or a constant leaks the shape of the removed set to the
model: the score then drops because the image looks perturbed, not because evidence is gone. Their
fix replaces each removed pixel by the weighted mean of its 8 neighbours (weight 1/6 for the 4
edge neighbours, 1/12 for the 4 diagonal ones, renormalised at the image border), where removed
neighbours are themselves unknowns:

    ``d_i x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij y_j``   for every removed pixel ``i``,

with ``d_i`` the summed weight of the in-image neighbours of ``i`` and ``y`` the image. The system
is solved per image and channel, and small Gaussian noise is added to the solution.

Why not the library's imputer: pytorch-grad-cam's ``NoisyLinearImputer`` (the authors' code)
builds a SciPy sparse matrix and factorises it image by image on the CPU, with NumPy arrays and the
global torch RNG for the noise. AOPC needs one imputation per (image, step) pair, ``N * L`` of
them, inside the loop that feeds the model on its device. So :func:`road_impute` solves the same
system for a whole batch at once with the conjugate-gradient method (the matrix is symmetric
positive semi-definite: a graph Laplacian on the removed pixels plus their weights to kept ones),
preconditioned by ``d``, in float64; the tests check it against the library's imputer to 1e-5.

A group of removed pixels with no kept neighbour anywhere (at the last AOPC step: the whole image)
has nothing to interpolate from; its system is singular with a zero right-hand side, and the
solver returns 0 there (the minimum-norm solution), where the library's direct solver fails.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from camfaith.seeds import draw

__all__ = ["ROAD_NOISE", "is_road", "road_impute", "road_noise"]

ROAD_NOISE = 0.01
"""Standard deviation of the noise added to imputed pixels, the default of Rong et al. (2022)."""


def _neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """``sum_j w_ij x_j`` over the in-image neighbours ``j`` of every pixel ``i`` of ``(B, C, H, W)``.

    The weights factor as ``outer([1, 2, 1], [1, 2, 1]) / 12`` minus the centre ``4/12``, so two
    zero-padded 1-D passes compute them without a convolution (slow in float64 on a GPU).
    """
    rows = F.pad(x, (0, 0, 1, 1))
    rows = rows[..., :-2, :] + 2 * rows[..., 1:-1, :] + rows[..., 2:, :]
    both = F.pad(rows, (1, 1))
    both = both[..., :-2] + 2 * both[..., 1:-1] + both[..., 2:]
    return (both - 4 * x) / 12


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(2, 3), keepdim=True)


def road_impute(
    images: torch.Tensor,
    removed: torch.Tensor,
    noise: torch.Tensor | None = None,
    tolerance: float = 1e-7,
    max_iterations: int | None = None,
) -> torch.Tensor:
    """Replace the ``removed`` pixels of each image by the noisy linear imputation of ROAD.

    Parameters
    ----------
    images : Tensor (B, C, H, W)
    removed : Tensor (B, H, W) of bool
        True where a pixel is removed (all channels); the other pixels are kept as they are.
    noise : Tensor (B, C, H, W), optional
        Added to the imputed pixels (e.g. ``ROAD_NOISE * standard normal``); none when omitted.
    tolerance : float
        Stop when every system's residual norm is at most ``tolerance`` times its right-hand side's.
    max_iterations : int, optional
        Conjugate-gradient iterations allowed; by default ``10 * (H + W)``.

    Returns
    -------
    Tensor (B, C, H, W)
        The images with the removed pixels imputed, in the dtype of ``images``.
    """
    if images.ndim != 4 or removed.shape != images.shape[:1] + images.shape[2:] or removed.dtype != torch.bool:
        raise ValueError(
            f"road_impute needs images (B, C, H, W) and a boolean mask (B, H, W), got {tuple(images.shape)} "
            f"and {tuple(removed.shape)} of {removed.dtype}"
        )
    height, width = images.shape[-2:]
    max_iterations = 10 * (height + width) if max_iterations is None else max_iterations
    unknown = removed[:, None].to(torch.float64)
    degree = _neighbour_sum(torch.ones_like(unknown[:1]))
    rhs = unknown * _neighbour_sum(images.to(torch.float64) * (1 - unknown))
    solution = _conjugate_gradient(unknown, degree, rhs, tolerance, max_iterations)
    imputed = solution.to(images.dtype) if noise is None else solution.to(images.dtype) + noise
    return torch.where(removed[:, None], imputed, images)


def _conjugate_gradient(
    unknown: torch.Tensor, degree: torch.Tensor, rhs: torch.Tensor, tolerance: float, max_iterations: int
) -> torch.Tensor:
    """Solve ``unknown * (degree * x - neighbour_sum(x)) = rhs`` for every image and channel at once.

    Jacobi-preconditioned conjugate gradients (each system has its own step sizes), from ``x = 0``;
    the convergence test runs every 10 iterations, as it synchronises with the device.
    """
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual / degree
    rz = _batch_dot(residual, direction)
    goal = tolerance * _batch_dot(rhs, rhs).sqrt()
    for iteration in range(max_iterations + 1):
        checkpoint = iteration % 10 == 0 or iteration == max_iterations
        if checkpoint and bool((_batch_dot(residual, residual).sqrt() <= goal).all()):
            return solution
        product = unknown * (degree * direction - _neighbour_sum(direction))
        curvature = _batch_dot(direction, product)
        step = torch.where(curvature > 0, rz / curvature.clamp(min=1e-300), 0.0)
        solution += step * direction
        residual -= step * product
        preconditioned = residual / degree
        rz_next = _batch_dot(residual, preconditioned)
        direction = preconditioned + torch.where(rz > 0, rz_next / rz.clamp(min=1e-300), 0.0) * direction
        rz = rz_next
    raise RuntimeError(f"the ROAD imputation did not converge in {max_iterations} iterations; raise max_iterations")


def is_road(perturbation) -> bool:
    """Whether an AOPC removal is ROAD (a removal is a name or a constant fill value)."""
    return isinstance(perturbation, str) and perturbation == "road"


def road_noise(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``ROAD_NOISE`` times standard normal draws of the shape of ``images``, made on the generator's
    device (the CPU or the images' one) and returned on the images' device."""
    return ROAD_NOISE * draw(images.shape, generator, images.device, images.dtype, normal=True)
