"""Input checks and the small pieces every metric shares.

Each check raises a ``ValueError`` that names the problem and the fix, and returns the input in
the form the metrics compute with (detached, on the right device, of a usable dtype).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from camfaith.device import forward_precision

__all__ = [
    "RANGE_TOLERANCE",
    "check_generator",
    "check_images",
    "check_in_range",
    "check_maps",
    "check_targets",
    "chunk_bounds",
    "model_logits",
    "resize_maps",
    "softmax_probabilities",
]

RANGE_TOLERANCE = 1e-4


def check_images(images) -> torch.Tensor:
    """A non-empty floating-point ``(N, C, H, W)`` batch, detached."""
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


def check_maps(maps, n_images: int, device: torch.device) -> torch.Tensor:
    """One finite ``(h, w)`` map per image, detached, floating point, on ``device``."""
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


def check_targets(targets, n_images: int, device: torch.device, name: str = "targets") -> torch.Tensor:
    """One non-negative integer class index per image, as int64 on ``device``."""
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


def check_generator(generator, device: torch.device) -> None:
    """None, or a ``torch.Generator`` on the CPU or on ``device`` (see :mod:`camfaith.metrics`)."""
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


def check_in_range(tensor: torch.Tensor, what: str, fix: str, tolerance: float = RANGE_TOLERANCE) -> None:
    """Reject values outside [-1, 1] (up to ``tolerance``); ``fix`` tells the caller what to do."""
    low, high = tensor.aminmax()
    if float(low) < -1 - tolerance or float(high) > 1 + tolerance:
        raise ValueError(
            f"{what} must lie in [-1, 1], got values in [{float(low):.4g}, {float(high):.4g}]; {fix}"
        )


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(N, h, w)`` maps to ``size`` (no-op when the size already matches)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def chunk_bounds(total: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``chunk_size`` out of ``total`` items."""
    for start in range(0, total, chunk_size):
        yield start, min(start + chunk_size, total)


def model_logits(model: nn.Module, batch: torch.Tensor, precision: str = "float32") -> torch.Tensor:
    """The model's class scores for ``batch``, checked to have shape ``(N, classes)``.

    The pass runs in ``precision`` (:func:`camfaith.device.forward_precision`; float32, the default,
    untouched); bfloat16 scores are returned in float32, so that the metrics' probabilities, sums and
    argmaxes are computed as they are in float32.
    """
    with forward_precision(precision, batch.device):
        logits = model(batch)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return class scores of shape (N, classes), got {shape}")
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def softmax_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities over the last dimension, computed in float32 at least (half-precision logits are
    upcast first)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.softmax(dim=-1)
