"""What a measurement reads and what it returns, and camfaith's calls on it.

A :class:`Subject` is one architecture and the batch it is measured on; a :class:`Measured` is what
one measurement gives back (table rows, agreement checks, its timed runs). The ``ours_*`` functions
are camfaith's metric calls as every measurement times them, so that the timed call, the checked
call and the profiled call are one and the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from harness import Bound
from torch import nn

from camfaith.cams import explain
from camfaith.incremental import incremental_plan
from camfaith.metrics import aopc, haas, max_sensitivity


@dataclass(frozen=True)
class Subject:
    """One architecture and the batch it is measured on: what every measurement of it reads."""

    arch: str
    model: nn.Module
    target_layer: nn.Module
    images: torch.Tensor
    labels: torch.Tensor  # random labels, for HAAS
    targets: torch.Tensor  # the predicted classes, the ones explained
    maps: torch.Tensor  # camfaith's HiResCAM of ``targets``
    hirescam: Callable  # the explanation function Phi of Max-Sensitivity (eq. 8 of Lamprou 2023)
    bounds: Bound


@dataclass
class Measured:
    """What one measurement returns: rows of the metrics table, agreement checks, and its :func:`timed` runs."""

    rows: list[dict] = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)


PATHS = {"incremental": True, "full forward": False}
"""AOPC's two paths (the ``incremental`` argument of :func:`camfaith.aopc` that forces each)."""


def row(arch, metric, setting, implementation, passes, ms, efficiency=None, ours_faster_by=None, agreement=None,
        path=None):
    """One row of the metrics table (the keys are the column names of the result file); ``path`` names
    AOPC's path (a key of :data:`PATHS`) on camfaith's AOPC rows."""
    return {
        "arch": arch,
        "metric": metric,
        "setting": setting,
        "implementation": implementation,
        "path": path,
        "passes per image": passes,
        "ms per image": ms,
        "efficiency": efficiency,
        "camfaith faster by": ours_faster_by,
        "agreement": agreement,
    }


def ours_aopc(subject: Subject, regions: int, chunk: int, seed: int, targets: torch.Tensor | None = None,
              path: str | None = None):
    """camfaith's AOPC (eq. 6-7 of Lamprou 2023) of the HiResCAM maps, noise from a generator seeded with ``seed``,
    on the ``path`` of :data:`PATHS` (None: the one ``incremental="auto"`` takes)."""
    return aopc(subject.model, subject.images, subject.maps, regions, chunk_size=chunk, targets=targets,
                generator=torch.Generator().manual_seed(seed), incremental=PATHS[path] if path else "auto")


def auto_path(subject: Subject, regions: int, chunk: int) -> tuple[str, float]:
    """The path ``aopc(..., incremental="auto")`` takes on this subject at ``regions``, and the speed-up that
    :func:`~camfaith.incremental.incremental_plan` estimates for the incremental one."""
    images = subject.images
    plan = incremental_plan(subject.model, tuple(images.shape[-2:]), regions, images.shape[1],
                            batch=min(len(images), chunk), device=images.device)
    return ("incremental" if plan.incremental else "full forward"), plan.speedup


def ours_sensitivity(subject: Subject, radius: float, samples: int, chunk: int, seed: int):
    """camfaith's Max-Sensitivity (eq. 8 of Lamprou 2023) of HiResCAM, noise from a generator seeded with ``seed``."""
    return max_sensitivity(subject.hirescam, subject.images, radius, samples, subject.targets, chunk_size=chunk,
                           generator=torch.Generator().manual_seed(seed))


def ours_haas(subject: Subject, chunk: int):
    """camfaith's HAAS (eq. 9-10 of Lamprou 2023) with its maps: :func:`camfaith.cams.explain` in chunks of
    ``chunk`` images (at most the batch), then :func:`camfaith.haas`."""
    batch = min(chunk, len(subject.images))
    maps = explain(subject.model, subject.target_layer, subject.images, batch_size=batch)["hirescam"]
    return haas(subject.model, subject.images, subject.labels, maps, chunk_size=chunk)


def aopc_sizes(config: dict) -> list[int]:
    """Every heatmap size AOPC is timed at: the setting's, and the one compared with the anchors."""
    return sorted(set(config["regions"]) | {config["compare_regions"]})


def timed_paths(regions: int, config: dict) -> list[str]:
    """AOPC's paths timed at ``regions``: the incremental one always, the full-forward one at ``full_regions``
    and at the size compared with the anchors."""
    full = regions in config["full_regions"] or regions == config["compare_regions"]
    return [path for path in PATHS if path == "incremental" or full]


def aopc_row(subject: Subject, regions: int, path: str, run: dict, name: str, config: dict) -> dict:
    """camfaith's AOPC on one path: time per image, and efficiency against the bound (for the incremental path,
    its speed-up over what the full forward passes alone would take)."""
    n, chunk, steps = config["images"], config["chunks"]["aopc"], regions * regions + 1
    seconds = run[name]["median"]
    allowed = subject.bounds.seconds(run, n * steps, 0, chunk)
    return row(subject.arch, "AOPC", f"{regions}x{regions}", "camfaith", f"{steps} fwd", 1e3 * seconds / n,
               allowed / seconds, path=path)
