"""Where a model runs and in which mode: the two things every map and metric must get right.

Per-image maps from a batched backward pass, and per-image scores from batched forward passes, are
only independent of the other images of the batch when BatchNorm uses its running statistics, that
is, in eval mode. :func:`evaluating` sets it for the duration of a computation and then gives every
module back the mode it had.

On a GPU the forward passes of training and of the metrics may also run in bfloat16 and in the
channels_last memory format: :func:`set_precision` records the choice on the model (float32 and the
contiguous format, the defaults, change nothing), and :func:`inference_precision` applies it around
one forward pass. It is applied where the model is run to be scored (the metrics' forward helper,
:func:`camfaith.metrics.checks.model_logits`) and trained (:func:`camfaith.train.train`); the CAMs
run their own passes in float32 (see :func:`set_precision`).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn

__all__ = ["DEVICES", "PRECISIONS", "check_precision", "evaluating", "inference_precision", "model_device",
           "resolve_device", "set_precision"]

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


def set_precision(model: nn.Module, precision: str = "float32", channels_last: bool = False) -> nn.Module:
    """Choose how :func:`inference_precision` runs ``model``: ``precision`` and memory format; returns ``model``.

    ``channels_last`` converts the parameters to the channels_last memory format now (the same
    values in another layout, which cuDNN's convolutions prefer; back to contiguous when a later call
    turns it off). ``precision="bfloat16"`` makes each forward pass inside :func:`inference_precision`
    run under ``torch.autocast("cuda", dtype=torch.bfloat16)``: convolutions and matrix products in
    bfloat16, the parameters and everything outside the pass in float32. The defaults, float32 and
    contiguous, change nothing. Checked against the model's device (:func:`check_precision`).

    Only the passes that score or train a model use it. A CAM's own forward and backward pass stays in
    float32: in bfloat16 the activations and gradients at the target layer, and the maps built from
    them, would carry its rounding (8 significant bits), so the explanation itself would change, and
    AOPC, HAAS and Max-Sensitivity would no longer judge the same maps whatever the precision
    (``benchmarks/precision.py`` measures both choices).
    """
    check_precision(precision, channels_last, model_device(model))
    if channels_last or getattr(model, "channels_last", False):
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    model.forward_precision, model.channels_last = precision, channels_last
    return model


def inference_precision(model: nn.Module):
    """A context for one forward pass of ``model`` in the precision :func:`set_precision` chose.

    bfloat16: CUDA autocast (checked again against the model's device, which may have changed);
    float32, the default, and any model :func:`set_precision` never saw: nothing at all.
    """
    precision = getattr(model, "forward_precision", "float32")
    if precision == "float32":
        return nullcontext()
    device = model_device(model)
    check_precision(precision, bool(getattr(model, "channels_last", False)), device)
    return torch.autocast(device.type, dtype=torch.bfloat16)
