"""The propositions of chapter 3 of Lamprou (2023), the original study, as numerical checks.

For a batch, :func:`identity_residuals` measures per image how far each map is from adding up to the
class score: ``s^m = sum_ij A_ij + b^m`` (Proposition 1 of the original study for CAM with the
1/(D1 D2) factor, Propositions 2-3 for Grad-CAM and HiResCAM on a GAP head, eq. 20 of Proposition 4
for HiResCAM on a Flatten head). :func:`table1` runs the checks over the settings of Table 1 of the
original study.

Residuals are relative to the size of the terms being summed, ``sum_ij |HiResCAM_ij| + |b^m|``, the
natural scale of float rounding in such a sum; the identity "holds" when the residual is below a
tolerance (1e-4 by default in float32).
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from camfaith.cams import activations_and_gradients, raw_maps
from camfaith.models import build_model, earlier_target_layer


def _final_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no Linear layer producing the class scores")
    return linears[-1]


def identity_residuals(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None
) -> pd.DataFrame:
    """Per-image class score, bias, map sums and residuals of the identities of Propositions 1-4.

    Columns: ``target``, ``score`` (raw logit s^m), ``bias`` (b^m of the final Linear),
    ``cam_sum`` (sum of the CAM map, eq. 2 of Lamprou 2023, from the final Linear's weights; NaN
    unless the head is GAP -> Linear and the target feeds it), ``gradcam_sum``, ``hirescam_sum`` (sums of the raw,
    signed maps), ``cam_residual`` (of s = cam_sum / (D1 D2) + b, Proposition 1),
    ``gradcam_residual`` and ``hirescam_residual`` (of s = map sum + b), ``gradcam_vs_cam`` and
    ``hirescam_vs_cam`` (max |map - CAM/(D1 D2)| over max |CAM/(D1 D2)|, Propositions 2-3) and
    ``gradcam_vs_hirescam`` (the same distance between the two maps).
    """
    activations, gradients, logits, targets = activations_and_gradients(model, target_layer, images, targets)
    maps = raw_maps(activations, gradients)
    linear = _final_linear(model)
    bias = linear.bias[targets].detach() if linear.bias is not None else torch.zeros_like(targets, dtype=logits.dtype)
    score = logits.gather(1, targets[:, None])[:, 0]
    cells = activations.shape[2] * activations.shape[3]
    scale = maps["hirescam"].abs().sum(dim=(1, 2)) + bias.abs()

    def residual(total):
        return (total + bias - score).abs() / scale

    def distance(a, b):
        return (a - b).abs().amax(dim=(1, 2)) / b.abs().amax(dim=(1, 2)).clamp(min=1e-12)

    nan = torch.full_like(score, float("nan"))
    cam_sum = cam_residual = gradcam_vs_cam = hirescam_vs_cam = nan
    if linear.in_features == activations.shape[1]:  # GAP head: one weight per map (eq. 11 of Lamprou 2023)
        weights = linear.weight.detach()[targets]  # (N, F)
        cam = torch.einsum("nf,nfij->nij", weights, activations)
        cam_sum = cam.sum(dim=(1, 2))
        cam_residual = residual(cam_sum / cells)
        gradcam_vs_cam = distance(maps["gradcam"], cam / cells)
        hirescam_vs_cam = distance(maps["hirescam"], cam / cells)

    columns = {
        "target": targets,
        "score": score,
        "bias": bias,
        "cam_sum": cam_sum,
        "gradcam_sum": maps["gradcam"].sum(dim=(1, 2)),
        "hirescam_sum": maps["hirescam"].sum(dim=(1, 2)),
        "cam_residual": cam_residual,
        "gradcam_residual": residual(maps["gradcam"].sum(dim=(1, 2))),
        "hirescam_residual": residual(maps["hirescam"].sum(dim=(1, 2))),
        "gradcam_vs_cam": gradcam_vs_cam,
        "hirescam_vs_cam": hirescam_vs_cam,
        "gradcam_vs_hirescam": distance(maps["gradcam"], maps["hirescam"]),
    }
    return pd.DataFrame({name: value.detach().cpu().double().numpy() for name, value in columns.items()})


def randomise_offsets(model: nn.Module, generator: torch.Generator, scale: float = 0.1) -> nn.Module:
    """Give every BatchNorm, convolution and Linear layer random offsets, as training would (in place).

    torchvision initialises convolution biases to zero and BatchNorm to the identity. A ReLU network
    without offsets is positively homogeneous, so by Euler's theorem ``sum(dS/dA * A) = S - b`` at
    *every* layer: the HiResCAM identity would then hold far beyond Proposition 4 and hide the
    failures of Table 1. Drawing BatchNorm scales, shifts and running statistics and convolution
    and Linear biases at random removes that accident.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(1 + scale * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(scale * torch.randn(module.bias.shape, generator=generator))
                module.running_mean.copy_(scale * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(1 + scale * torch.rand(module.running_var.shape, generator=generator))
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.copy_(scale * torch.randn(module.bias.shape, generator=generator))
    return model


def random_network(arch: str, head: str, input_size: int, seed: int = 0, num_classes: int = 5,
                   variant: str = "intact", small_input: bool = True, random_offsets: bool = True, **options):
    """A network of Table 1's checks, ``(model, target_layer)``: built with weights drawn from ``seed`` and, with
    ``random_offsets``, the offsets of :func:`randomise_offsets` drawn from the same seed; ``options`` go to
    :func:`camfaith.build_model` (e.g. ``stages``)."""
    torch.manual_seed(seed)
    model, target = build_model(arch, num_classes, head=head, input_size=input_size, variant=variant,
                                small_input=small_input, **options)
    if random_offsets:
        randomise_offsets(model, torch.Generator().manual_seed(seed))
    return model, target


TABLE1_SETTINGS = (
    # (structure of Table 1 of Lamprou 2023, head of build_model, target the last block?)
    ("Conv - GAP - Class Scores", "gap", True),
    ("Conv - GAP - Class Scores", "gap", False),
    ("Conv - Flatten - Class Scores", "flatten", True),
    ("Conv - Flatten - Class Scores", "flatten", False),
    ("Conv - Flatten - Dense - Class Scores", "dense", True),
    ("Conv - GAP - Dense - Class Scores", "gap_dense", True),
)


def table1(
    arch: str = "resnet18",
    input_size: int = 64,
    n_images: int = 4,
    num_classes: int = 5,
    seed: int = 0,
    tolerance: float = 1e-4,
    variant: str = "intact",
    small_input: bool = True,
    random_offsets: bool = True,
) -> pd.DataFrame:
    """Check every row of Table 1 of Lamprou (2023) on a seeded, randomly initialised torchvision network.

    For each (structure, target layer) setting, build the network, explain the predicted class of
    ``n_images`` seeded Gaussian images and report the largest residual of each identity, and whether
    it holds (below ``tolerance``). With ``random_offsets`` the networks get the random biases of
    :func:`randomise_offsets`, as trained networks have. Expected (Table 1): on a GAP head at the last block all three
    maps agree and sum to the score; on a Flatten head at the last block only HiResCAM does; with an
    earlier target layer or a dense head none does.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, 3, input_size, input_size, generator=generator)
    rows = []
    for structure, head, last in TABLE1_SETTINGS:
        model, target = random_network(arch, head, input_size, seed, num_classes, variant, small_input, random_offsets)
        if not last:
            target = earlier_target_layer(model)
        worst = identity_residuals(model, target, images).max(numeric_only=True)
        rows.append(
            {
                "structure": structure,
                "target layer": "last block" if last else "earlier block",
                "gradcam_residual": worst["gradcam_residual"],
                "hirescam_residual": worst["hirescam_residual"],
                "gradcam_vs_hirescam": worst["gradcam_vs_hirescam"],
                "Grad-CAM sums to score": bool(worst["gradcam_residual"] < tolerance),
                "HiResCAM sums to score": bool(worst["hirescam_residual"] < tolerance),
                "equivalent": bool(worst["gradcam_vs_hirescam"] < tolerance),
            }
        )
    return pd.DataFrame(rows)
