"""Feature-space deletion: AOPC on the target layer's own grid, tracking the logit.

The locations of the target layer's map (all channels at once) are zeroed from the most to the least
relevant, and the logit of the explained class is tracked through the head alone. The score has the
form of AOPC (eq. 7 of Lamprou 2023): ``sum_{k=1..L} (s_0 - s_k) / (L + 1)`` over the ``L = D1 D2``
locations, so higher is better.

Why this yardstick: on a Flatten head with one Linear layer the logit is ``s = sum_{f,i,j} W A + b``,
so zeroing a set of locations lowers it by exactly the sum of their HiResCAM entries (``book/theory.md``,
the location-exact property). Every prefix of HiResCAM's order therefore removes the most logit a
prefix of that length can remove, HiResCAM's score is the largest any order can reach, and another
map's shortfall is the logit it leaves in place. None of the steps that input-space AOPC adds
(upsampling, ReLU, min-max scaling, pixel noise) happens here, so the two side by side show how much
of a gap between maps survives them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class FeatureDeletionResult(NamedTuple):
    scores: torch.Tensor  # (N,) the AOPC-form area, higher is better
    curves: torch.Tensor  # (N, L + 1) the logit after 0, 1, ..., L locations are zeroed


def deletion_ranks(maps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The position of each location in the removal order (``N, L``; 0 is removed first): by
    decreasing value, equal values in a random order from ``generator`` (a CPU generator, so that
    the same seed gives the same order on every device) or by index without one."""
    flat = maps.detach().flatten(1).float()
    if generator is None:
        order = flat.argsort(dim=1, descending=True, stable=True)
    else:
        shuffle = torch.rand(flat.shape, generator=generator).to(flat.device).argsort(dim=1)
        within = flat.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
        order = shuffle.gather(1, within)
    return order.argsort(dim=1)


def _check(activations: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor) -> None:
    if activations.ndim != 4:
        raise ValueError(f"activations must be (N, F, D1, D2), got shape {tuple(activations.shape)}")
    n, _, height, width = activations.shape
    if tuple(maps.shape) != (n, height, width):
        raise ValueError(f"maps must be on the target layer's grid, (N, D1, D2) = {(n, height, width)}, got "
                         f"{tuple(maps.shape)}; pass the raw maps (raw=True), or pool a map to that grid")
    if targets.shape != (n,):
        raise ValueError(f"got {tuple(targets.shape)} targets for {n} images")


def _target_logits(head: nn.Module, features: torch.Tensor, target: int, chunk_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([head(part)[:, target] for part in features.split(chunk_size)])


def feature_deletion(head: nn.Module, activations: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor,
                     generator: torch.Generator | None = None, chunk_size: int = 256) -> FeatureDeletionResult:
    """Feature-space deletion of one map per image (module docstring).

    ``head`` maps the target layer's activations ``(N, F, D1, D2)`` to class scores (``model.head`` of
    :func:`camfaith.build_model`); ``maps`` are on the same grid ``(N, D1, D2)``, signed or not; ties
    are broken as :func:`deletion_ranks` does. ``chunk_size`` feature tensors go through the head at once.
    """
    _check(activations, maps, targets)
    n, _, height, width = activations.shape
    cells = height * width
    ranks = deletion_ranks(maps, generator)
    steps = torch.arange(cells + 1, device=activations.device)
    curves = torch.empty(n, cells + 1, device=activations.device)
    for image in range(n):
        keep = (ranks[image][None, :] >= steps[:, None]).to(activations.dtype).reshape(cells + 1, 1, height, width)
        curves[image] = _target_logits(head, activations[image][None] * keep, int(targets[image]), chunk_size)
    scores = (curves[:, :1] - curves[:, 1:]).sum(dim=1) / (cells + 1)
    return FeatureDeletionResult(scores, curves)


def feature_occlusion(head: nn.Module, activations: torch.Tensor, targets: torch.Tensor,
                      chunk_size: int = 256) -> torch.Tensor:
    """The positive control of feature deletion (``N, D1, D2``): the drop of the logit when each location
    alone is zeroed. It uses the head, but no CAM; on a one-Linear Flatten head it equals HiResCAM's raw
    map, which is the theory's point, not a flaw of the control."""
    _check(activations, activations[:, 0], targets)
    n, _, height, width = activations.shape
    cells = height * width
    single = 1 - torch.eye(cells, device=activations.device, dtype=activations.dtype)
    single = torch.cat([torch.ones(1, cells, device=activations.device, dtype=activations.dtype), single])
    drops = torch.empty(n, cells, device=activations.device)
    for image in range(n):
        logits = _target_logits(head, activations[image][None] * single.reshape(cells + 1, 1, height, width),
                                int(targets[image]), chunk_size)
        drops[image] = logits[0] - logits[1:]
    return drops.reshape(n, height, width)
