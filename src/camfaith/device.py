"""Where a model runs and in which mode: the two things every map and metric must get right.

Per-image maps from a batched backward pass, and per-image scores from batched forward passes, are
only independent of the other images of the batch when BatchNorm uses its running statistics, that
is, in eval mode. :func:`evaluating` sets it for the duration of a computation and then gives every
module back the mode it had.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU (``"auto"`` means the same as None)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device; use one of {', '.join(DEVICES)}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but this machine has no CUDA GPU; use 'cpu' or 'auto'")
    return resolved


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's first parameter (or buffer); ``fallback`` for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device(fallback)


@contextmanager
def evaluating(model: nn.Module):
    """Put every module in eval mode (batch-independent outputs) and restore each one's mode after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
