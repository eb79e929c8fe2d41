"""Localisation against ground-truth masks: does a map lie on the object (or lesion)?

- :func:`relevance_mass`, relevance mass accuracy (Arras et al. 2022): the share of the map's
  positive mass on the mask;
- :func:`relevance_rank`, relevance rank accuracy (Arras et al. 2022): the share of the ``K`` most
  relevant pixels that fall on the mask, ``K`` the mask's size;
- :func:`energy_pointing_game` (Wang et al. 2020, Score-CAM): the share of the map's energy inside
  the mask's bounding box.

All three: **higher is better**, from 0 to 1. None is a metric of Lamprou (2023): they need data with
ground-truth masks, such as the report's synthetic data set or the HAM10000 lesion segmentations.
"""

from __future__ import annotations

import torch

from camfaith.metrics.checks import resize_maps

__all__ = ["energy_pointing_game", "relevance_mass", "relevance_rank"]


def _prepared(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps clamped at 0 and resized bilinearly to the masks' size; masks as bool on the maps' device."""
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[0] != masks.shape[0]:
        raise ValueError(f"maps (N, h, w) and masks (N, H, W) must match in N; got {tuple(maps.shape)} and "
                         f"{tuple(masks.shape)}")
    maps = resize_maps(maps.float(), tuple(masks.shape[-2:])).clamp(min=0)
    return maps, masks.to(maps.device, torch.bool)


def _share(inside: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive mass that lies on the ground-truth object.

    ``RMA = sum_{p in mask} max(0, R_p) / sum_p max(0, R_p)`` (Arras et al. 2022). Maps (N, h, w)
    are clamped at 0 and resized bilinearly to the masks' size (N, H, W); a map with no positive
    mass scores 0.
    """
    maps, masks = _prepared(maps, masks)
    return _share((maps * masks).sum(dim=(1, 2)), maps.sum(dim=(1, 2)))


def relevance_rank(maps: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Share of the ``K`` highest-ranked pixels that lie on the mask, ``K = |mask|`` (Arras et al. 2022).

    Equal pixels (the zeros a ReLU leaves) are ordered at random with keys from ``generator`` (a CPU
    generator, so the keys are the same on every device), or by pixel index (a stable sort) without
    one: a raster order is a map nobody proposed. An empty mask scores 0.
    """
    maps, masks = _prepared(maps, masks)
    flat, on_mask = maps.flatten(1), masks.flatten(1)
    sizes = on_mask.sum(dim=1)
    if generator is None:
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    else:
        shuffle = torch.rand(flat.shape, generator=generator).to(flat.device).argsort(dim=1)
        ranked = torch.sort(flat.gather(1, shuffle), dim=1, descending=True, stable=True).indices
        order = shuffle.gather(1, ranked)
    ranked_on_mask = on_mask.gather(1, order)
    top = torch.arange(flat.shape[1], device=flat.device)[None, :] < sizes[:, None]
    return _share((ranked_on_mask & top).sum(dim=1).float(), sizes.float())


def energy_pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share of each map's positive energy inside the bounding box of its mask (Wang et al. 2020)."""
    maps, masks = _prepared(maps, masks)
    rows, columns = masks.any(dim=2), masks.any(dim=1)
    def span(present: torch.Tensor) -> torch.Tensor:  # True from the first to the last True, per image
        return (present.cumsum(1) > 0) & (present.flip(1).cumsum(1) > 0).flip(1)
    box = span(rows)[:, :, None] & span(columns)[:, None, :]
    return _share((maps * box).sum(dim=(1, 2)), maps.sum(dim=(1, 2)))


for _metric in (relevance_mass, relevance_rank, energy_pointing_game):
    _metric.higher_is_better = True
