"""Relevance mass accuracy (Arras et al. 2022): how much of a map lies on the object.

Score direction: **higher is better** (``relevance_mass.higher_is_better``), from 0 (no positive
mass on the object) to 1 (all of it). Not one of the metrics of Lamprou (2023): it needs data with
ground-truth object masks, such as the report's synthetic data set.
"""

from __future__ import annotations

import torch

from camfaith.metrics.checks import resize_maps

__all__ = ["relevance_mass"]


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive mass that lies on the ground-truth object.

    ``RMA = sum_{p in mask} max(0, R_p) / sum_p max(0, R_p)`` (Arras et al. 2022). Maps (N, h, w)
    are clamped at 0 and resized bilinearly to the masks' size (N, H, W); a map with no positive
    mass scores 0.
    """
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps (N, h, w) and masks (N, H, W) must match in N; got {tuple(maps.shape)} and "
                         f"{tuple(masks.shape)}")
    maps = resize_maps(maps.float(), tuple(masks.shape[-2:])).clamp(min=0)
    masks = masks.to(maps.device, torch.bool)
    total = maps.sum(dim=(1, 2))
    inside = (maps * masks).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


relevance_mass.higher_is_better = True
