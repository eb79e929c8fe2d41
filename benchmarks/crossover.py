"""Where incremental AOPC pays off: the path ``incremental="auto"`` takes and the measured speed-up, by size.

For each input size and heatmap size of the grid the network is built for that input size (the
run's architecture, surgery and ``small_input``), and
:func:`~camfaith.incremental.incremental_plan` says which path ``aopc(..., incremental="auto")``
takes and what speed-up it estimates. The measured speed-up comes from short measurements on a few
random images rather than whole AOPC calls (a full-forward 14x14 AOPC of VGG19 at 224 px takes
minutes per image on one CPU thread):

- the full-forward path costs ``L`` forward passes per image (one per removal step): one forward
  pass of a chunk of images is timed, per image;
- the incremental path costs one seeding pass plus ``L`` steps per image: it is timed over one step
  and over ``steps`` steps (:func:`~camfaith.incremental.incremental_logits` along a random
  removal order); their difference gives the cost of a step, the first minus a step the seeding.

The measured speed-up is ``L * forward / (seeding + L * step)``, for the ``L`` perturbed images of one
image (the clean pass, the same on both paths, is left out, as in the estimate).
"""

from __future__ import annotations

import math

import torch
from harness import random_images, timed
from settings import NUM_CLASSES

import camfaith
from camfaith.costs import PATH_NAMES
from camfaith.incremental import incremental_logits, incremental_plan, schedule_for


def incremental_calls(model, images, regions: int, chunk: int, steps: int, seed: int) -> dict:
    """The incremental path over one step and over ``steps`` steps of a random removal order, as timed functions."""
    n = images.shape[0]
    generator = torch.Generator().manual_seed(seed)
    fill = (2 * torch.rand(images.shape, generator=generator) - 1).to(images.device)
    order = torch.argsort(torch.rand(n, regions * regions, generator=generator), dim=1).to(images.device)
    schedule = schedule_for(model, images, regions, "uniform", True, min(n, chunk))
    return {f"{regions} {k}": (lambda k=k: incremental_logits(model, images, fill, order[:, :k], regions, chunk,
                                                              schedule))
            for k in (1, steps)}


def cell(plan, regions: int, forward_s: float, one_s: float, many_s: float, steps: int, n: int) -> dict:
    """One entry of the table: the plan, the per-image costs and the measured speed-up (NaN when the step's cost
    cannot be told from the noise)."""
    cells = regions * regions
    step = (many_s - one_s) / ((steps - 1) * n)
    seeding = one_s / n - step
    measured = cells * forward_s / (seeding + cells * step) if step > 0 and seeding + cells * step > 0 else math.nan
    faster = None if math.isnan(measured) else PATH_NAMES[measured > 1]
    return {"regions": regions, "auto": PATH_NAMES[plan.incremental], "estimated_speedup": plan.speedup,
            "measured_speedup": measured, "faster_measured": faster, "forward_ms": 1e3 * forward_s,
            "seeding_ms": 1e3 * seeding, "step_ms": 1e3 * step}


def crossover_size(arch: str, size: int, config: dict, device: torch.device) -> list[dict]:
    """The row of every heatmap size at one input size: plans, then one interleaved timed call."""
    grid, chunk, seed = config["crossover"], config["chunks"]["aopc"], config["seed"]
    model, _ = camfaith.build_model(arch, NUM_CLASSES, input_size=size, small_input=config["small_input"],
                                    variant=config["variant"])
    model = model.to(device).eval()
    n, steps = grid["images"], grid["steps"]
    images = random_images(n, size, device, seed)
    batch = random_images(chunk, size, device, seed + 1)
    plans = {r: incremental_plan(model, size, r, batch=min(n, chunk), device=device) for r in grid["regions"]}
    supported = [r for r, plan in plans.items() if plan.units and r <= size]
    functions = {}
    for regions in supported:
        functions |= incremental_calls(model, images, regions, chunk, min(steps, regions * regions), seed)
    with torch.no_grad():
        model(images)  # warm-up at this size

        def forward():
            return model(batch)

        run = timed({"forward": forward, **functions}, config["repeats"], device, warmup=False)
    forward_s = run["forward"]["median"] / chunk
    rows = []
    for regions, plan in plans.items():
        if regions not in supported:
            rows.append({"regions": regions, "auto": PATH_NAMES[False], "estimated_speedup": plan.speedup,
                         "measured_speedup": math.nan, "faster_measured": None, "reason": plan.reason})
            continue
        k = min(steps, regions * regions)
        rows.append(cell(plan, regions, forward_s, run[f"{regions} 1"]["median"], run[f"{regions} {k}"]["median"],
                         k, n))
    return [{"arch": arch, "input_size": size, **entry} for entry in rows]


def crossover(arch: str, config: dict, device: torch.device, log) -> list[dict]:
    """The crossover table of one architecture: every input size and heatmap size of ``config["crossover"]``."""
    grid = config["crossover"]
    log(f"[{arch}] crossover of incremental AOPC: {grid['sizes']} px x {grid['regions']} regions")
    return [entry for size in grid["sizes"] for entry in crossover_size(arch, size, config, device)]
