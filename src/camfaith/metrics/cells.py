"""The heatmap H of AOPC: a ``regions x regions`` grid of cells over the image (section 2.2.1 of
Lamprou 2023), the mean map value of each cell, and how many cells tie.

AOPC ranks cells, not pixels, so what matters about a map is its pooled heatmap: two maps with
the same cell ranking get the same AOPC. Equal cells are ranked by a tie-break, and CAM maps have
many of them (whole regions are 0 after the ReLU); :func:`zero_shares` says how many.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from camfaith.metrics.checks import resize_maps

__all__ = ["ZeroShares", "cell_partition", "pool_regions", "zero_shares"]


class ZeroShares(NamedTuple):
    """Output of :func:`zero_shares`: how much of a map's ranking is decided by the tie-break.

    Attributes
    ----------
    all_zero : Tensor (N,) of bool
        The map is 0 everywhere (nothing survived the ReLU), so its removal order is pure tie-break.
    tie_share : Tensor (N,)
        Share of the ``regions x regions`` cells whose pooled value equals the image's most common
        cell value (``1 / L`` when all cells differ, 1 for a constant map).
    """

    all_zero: torch.Tensor
    tie_share: torch.Tensor


def cell_partition(
    height: int, width: int, regions: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Cell index of every pixel for a ``regions x regions`` grid over a ``height x width`` image.

    Rows ``floor(i * height / regions) .. floor((i + 1) * height / regions) - 1`` form cell row
    ``i`` (columns alike), so the cells partition the image: every pixel belongs to exactly one
    cell and cells never overlap. When the size is divisible by ``regions`` (224 px into 4, 8 or 14)
    these are exactly the windows of adaptive average pooling; otherwise (224 px into 11) cells are
    20 or 21 px wide, where adaptive pooling would let neighbouring windows share a pixel.

    Returns
    -------
    Tensor (height, width) of int64
        ``row * regions + column`` of the cell that holds each pixel.
    """
    if isinstance(regions, bool) or not isinstance(regions, int) or not 1 <= regions <= min(height, width):
        raise ValueError(
            f"regions must be an integer in 1..{min(height, width)} (the smaller image side), got {regions!r}"
        )

    def along(size: int) -> torch.Tensor:
        ends = torch.arange(1, regions + 1, device=device) * size // regions
        return torch.searchsorted(ends, torch.arange(size, device=device), right=True)

    return along(height)[:, None] * regions + along(width)[None, :]


def pool_regions(maps: torch.Tensor, regions: int) -> torch.Tensor:
    """Average an ``(N, H, W)`` map over the cells of :func:`cell_partition` (the heatmap H of
    section 2.2.1 of Lamprou 2023).

    Returns
    -------
    Tensor (N, regions, regions)
        The mean map value of each cell.
    """
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W), got shape {tuple(maps.shape)}")
    n_images, height, width = maps.shape
    cells = cell_partition(height, width, regions, maps.device).flatten()
    sums = maps.new_zeros(n_images, regions * regions).index_add_(1, cells, maps.flatten(1))
    counts = torch.bincount(cells, minlength=regions * regions).to(maps.dtype)
    return (sums / counts).view(n_images, regions, regions)


def zero_shares(maps: torch.Tensor, regions: int, size: tuple[int, int] | None = None) -> ZeroShares:
    """Per image: is the map all zero, and what share of its pooled cells ties with the most common value.

    ``size`` resizes the maps first as :func:`~camfaith.metrics.aopc.aopc` does (to the image
    size), so the cells are the ones AOPC sorts; by default the maps are pooled at their own size.
    """
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3:
        raise ValueError(f"maps must be a tensor of shape (N, H, W), got {getattr(maps, 'shape', type(maps))}")
    maps = maps.detach()
    heat = pool_regions(maps if size is None else resize_maps(maps, tuple(size)), regions).flatten(1)
    equal = (heat[:, :, None] == heat[:, None, :]).sum(dim=2)
    tie_share = equal.amax(dim=1).to(heat.dtype) / heat.shape[1]
    return ZeroShares(all_zero=(maps == 0).flatten(1).all(dim=1), tie_share=tie_share)
