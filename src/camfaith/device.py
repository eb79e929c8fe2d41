"""Where a model runs and in which mode: the two things every map and metric must get right.

Per-image maps from a batched backward pass, and per-image scores from batched forward passes, are
only independent of the other images of the batch when BatchNorm uses its running statistics, that
is, in eval mode. :func:`evaluating` sets it for the duration of a computation and then gives every
module back the mode it had.

On a GPU the forward passes of training and of the metrics may also run in bfloat16 and in the
channels_last memory format. Both are passed explicitly: :func:`set_memory_format` converts a model's
parameters (the default, contiguous, changes nothing), and :func:`forward_precision` is the
context of one forward pass in a given precision (float32, the default, changes nothing). The metrics'
forward helper (:func:`camfaith.metrics.checks.model_logits`) and training (:func:`camfaith.train.train`)
take a ``precision`` argument; the CAMs run their own passes in float32 (see :func:`forward_precision`).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn

__all__ = ["DEVICES", "PRECISIONS", "check_precision", "evaluating", "forward_precision", "model_device",
           "resolve_device", "set_memory_format"]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")


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


def check_precision(precision: str, channels_last: bool, device: torch.device | str) -> None:
    """Raise a clear error unless ``precision`` and ``channels_last`` can run on ``device``.

    bfloat16 is the autocast of CUDA (:func:`torch.autocast`) and is refused on the CPU: its CPU
    kernels are slow on most processors and the CPU path is the report's float32 reference.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not known; choose one of: {', '.join(PRECISIONS)}")
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be true or false, got {channels_last!r}")
    device = torch.device(device)
    if precision == "bfloat16" and device.type != "cuda":
        raise ValueError(f"precision='bfloat16' runs the forward passes under CUDA autocast, but the model is on "
                         f"{device}; use precision='float32' on the CPU, or device='cuda' on a machine with a GPU")
    if precision == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision='bfloat16' needs a GPU with bfloat16 support (NVIDIA Ampere or newer); "
                         "use precision='float32' on this GPU")


def set_memory_format(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """Convert ``model``'s parameters to the channels_last memory format when ``channels_last``; returns it.

    The same values in another layout, which cuDNN's convolutions prefer; False leaves the model as it is.
    """
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be true or false, got {channels_last!r}")
    return model.to(memory_format=torch.channels_last) if channels_last else model


def forward_precision(precision: str, device: torch.device | str):
    """The context of one forward pass on ``device`` in ``precision``.

    ``"float32"``, the default everywhere, is no context at all. ``"bfloat16"`` is
    ``torch.autocast("cuda", dtype=torch.bfloat16)``: convolutions and matrix products in bfloat16, the
    parameters and everything outside the pass in float32 (checked by :func:`check_precision`).

    Only the passes that score or train a model take it. A CAM's own forward and backward pass stays in
    float32: in bfloat16 the activations and gradients at the target layer, and the maps built from
    them, would carry its rounding (8 significant bits), so the explanation itself would change, and
    AOPC, HAAS and Max-Sensitivity would no longer judge the same maps whatever the precision
    (``benchmarks/precision.py`` measures both choices).
    """
    if precision == "float32":
        return nullcontext()
    device = torch.device(device)
    check_precision(precision, False, device)
    return torch.autocast(device.type, dtype=torch.bfloat16)
