"""Grad-CAM and HiResCAM from one forward and one backward pass.

Both maps are built from the same two tensors at the target layer: the activations ``A`` and the
gradients ``dS/dA`` of the class score. Grad-CAM weights each feature map by its spatially averaged
gradient (Lamprou 2023, eq. 3-4); HiResCAM multiplies activations and gradients element-wise (eq. 5).
Computing both from one pass costs what one of them costs.

The backward pass stops at the target layer: the layers before it record no graph, and its output
is re-entered into the graph as a leaf, so the gradient flows through the head only. This works
with frozen backbones and never touches the parameters' ``.grad``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from camfaith.device import evaluating
from camfaith.parameters import check_positive_integers

METHODS = ("gradcam", "hirescam")


def activations_and_gradients(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run one forward and one backward pass.

    Returns ``(activations, gradients, logits, targets)``: activations and gradients of the class
    score ``s^m`` (the raw logit, before softmax) at ``target_layer``, shape ``(N, F, D1, D2)``; the
    logits ``(N, M)``; and the explained classes ``(N,)`` (the predicted ones when ``targets`` is None).
    The pass runs in eval mode (each image's map must not depend on the others of the batch) and
    leaves every module in the mode it found it.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be a batch of shape (N, C, H, W), got shape {tuple(images.shape)}")
    captured = {}

    def keep_as_leaf(module, inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"the target layer {type(module).__name__} must return a single tensor")
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        captured["activations"] = leaf
        return leaf.clone()  # later in-place layers (ReLU(inplace=True)) must not modify the leaf

    def record_no_graph(module, inputs):  # layers before the target: the gradient starts at the target
        torch.set_grad_enabled(False)

    no_graph = model.register_forward_pre_hook(record_no_graph)
    handle = target_layer.register_forward_hook(keep_as_leaf)
    try:
        with evaluating(model), torch.enable_grad():
            try:
                logits = model(images)
            except RuntimeError as error:
                raise ValueError(
                    f"the model cannot process images of shape {tuple(images.shape)} on {images.device} "
                    f"({str(error).splitlines()[0]}); check the channels, the input size and the device"
                ) from error
            if "activations" not in captured:
                raise ValueError("the target layer was not called during the forward pass; is it part of the model?")
            activations = captured["activations"]
            if activations.ndim != 4:
                raise ValueError(
                    f"the target layer must output feature maps (N, F, D1, D2), got shape {tuple(activations.shape)}"
                )
            if targets is None:
                targets = logits.argmax(dim=1)
            else:
                targets = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
                if targets.numel() != logits.shape[0]:
                    raise ValueError(f"got {targets.numel()} targets for {logits.shape[0]} images")
                if targets.min() < 0 or targets.max() >= logits.shape[1]:
                    raise ValueError(f"targets must lie in [0, {logits.shape[1] - 1}]")
            scores = logits.gather(1, targets[:, None]).sum()
            (gradients,) = torch.autograd.grad(scores, activations)
    finally:
        handle.remove()
        no_graph.remove()
    return activations.detach(), gradients, logits.detach(), targets


def raw_maps(activations: torch.Tensor, gradients: torch.Tensor) -> dict[str, torch.Tensor]:
    """Signed Grad-CAM and HiResCAM maps at the target layer's resolution, before the ReLU.

    Grad-CAM: ``sum_f mean_ij(dS/dA^f_ij) A^f`` (Lamprou 2023, eq. 3-4); HiResCAM:
    ``sum_f dS/dA^f * A^f`` (eq. 5).
    """
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return {
        "gradcam": (weights * activations).sum(dim=1),
        "hirescam": (gradients * activations).sum(dim=1),
    }


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """Each map shifted and scaled to [0, 1] as pytorch-grad-cam scales it (a constant map becomes 0)."""
    low = maps.amin(dim=(1, 2), keepdim=True)
    shifted = maps - low
    return shifted / (1e-7 + shifted.amax(dim=(1, 2), keepdim=True))


def postprocess(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The post-processing of pytorch-grad-cam: ReLU, per-image min-max, bilinear resize, min-max.

    The second min-max is the library's aggregation step over target layers, kept so that the
    maps equal the library's to float precision.
    """
    maps = min_max(maps.clamp(min=0))
    maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return min_max(maps.clamp(min=0))


def cams(
    model: nn.Module,
    target_layer: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | None = None,
    raw: bool = False,
) -> dict[str, torch.Tensor]:
    """Grad-CAM and HiResCAM maps of a batch from one forward and one backward pass.

    Parameters
    ----------
    model, target_layer : e.g. from :func:`camfaith.build_model`. The model should be in eval mode.
    images : ``(N, C, H, W)`` on the model's device.
    targets : classes to explain, ``(N,)``; the predicted classes when None.
    raw : if True, return the signed maps at the target layer's resolution ``(N, D1, D2)`` with no
        ReLU and no scaling (the quantities of eq. 3 and 5 of Lamprou 2023, before the ReLU); else maps
        ``(N, H, W)`` in [0, 1] post-processed as pytorch-grad-cam does.

    Returns
    -------
    dict with keys ``"gradcam"``, ``"hirescam"`` and ``"targets"`` (the explained classes).
    """
    activations, gradients, _, targets = activations_and_gradients(model, target_layer, images, targets)
    maps = raw_maps(activations, gradients)
    if not raw:
        maps = {name: postprocess(m, images.shape[-2:]) for name, m in maps.items()}
    maps["targets"] = targets
    return maps


def explain(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, batch_size: int = 32, raw: bool = False
) -> dict[str, torch.Tensor]:
    """:func:`cams` of many images, ``batch_size`` at a time (the batch bounds the memory).

    Returns the post-processed maps (keys of :data:`METHODS`) and the explained classes
    (``"targets"``); with ``raw=True`` also the signed maps at the target layer's resolution
    (``"raw_gradcam"``, ``"raw_hirescam"``), taken from the same passes.
    """
    check_positive_integers(batch_size=batch_size)
    if len(images) == 0:
        raise ValueError("no images to explain: images has length 0")
    parts = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        activations, gradients, _, targets = activations_and_gradients(model, target_layer, batch)
        signed = raw_maps(activations, gradients)
        part = {name: postprocess(m, batch.shape[-2:]) for name, m in signed.items()} | {"targets": targets}
        if raw:
            part |= {f"raw_{name}": m for name, m in signed.items()}
        parts.append(part)
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def explainer(model: nn.Module, target_layer: nn.Module, method: str, raw: bool = False) -> Callable:
    """An explanation function ``explain(images, targets) -> maps (N, H, W)`` for one method.

    This is the form :func:`camfaith.max_sensitivity` takes (eq. 8 of Lamprou 2023, the explanation method Phi).
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")

    def explain(images: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return cams(model, target_layer, images, targets, raw=raw)[method]

    explain.__name__ = method
    return explain
