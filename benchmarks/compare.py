"""camfaith's AOPC and Max-Sensitivity against the per-image loops and the anchors, timed and checked.

Where the randomness can be shared, the other implementation gets camfaith's: a constant baseline
(0) and camfaith's own noise for AOPC, camfaith's noise blocks for Max-Sensitivity. Their scores
must then equal camfaith's; the largest difference is the agreement check.
"""

from __future__ import annotations

import torch
from anchors import captum_sensitivity_max, quantus_max_sensitivity, quantus_region_perturbation, road_morf
from baselines import loop_aopc, loop_max_sensitivity, noise_blocks
from harness import timed
from subject import Measured, Subject, aopc_row, auto_path, ours_aopc, ours_sensitivity, row, timed_paths

from camfaith.metrics import aopc


def max_abs_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max())


def quantus_fits(subject: Subject, config: dict) -> bool:
    """Whether Quantus RegionPerturbation runs: anchors asked for, and square patches that tile the image."""
    return config["anchors"] and subject.images.shape[-1] % config["compare_regions"] == 0


def aopc_constant_checks(subject: Subject, config: dict, log) -> dict:
    """AOPC with a constant baseline (0) against the per-image loop and, where it fits, Quantus, on the loop's
    images.

    Quantus sorts cells by their attribution sum with an unstable sort: ties (zero cells of a ReLU'd
    CAM) would be ordered differently, so its check uses random maps without ties.
    """
    k, regions, seed = config["loop_images"], config["compare_regions"], config["seed"]
    model, images, maps, targets = subject.model, subject.images, subject.maps, subject.targets
    log(f"[{subject.arch}] AOPC checks with a constant baseline")
    constant = aopc(model, images[:k], maps[:k], regions, perturbation=0.0, targets=targets[:k]).scores.cpu()
    looped = loop_aopc(model, images[:k], maps[:k], regions, targets[:k], fill=torch.zeros_like(images[:k])).cpu()
    checks = {"aopc_constant_loop_max_abs_difference": max_abs_difference(constant, looped)}
    if quantus_fits(subject, config):
        tie_free = torch.rand(maps[:k].shape, generator=torch.Generator().manual_seed(seed + 2)).to(images.device)
        ours = aopc(model, images[:k], tie_free, regions, perturbation=0.0, targets=targets[:k]).scores.cpu()
        theirs = quantus_region_perturbation(model, images[:k], tie_free, targets[:k], regions,
                                             config["chunks"]["aopc"], 0.0)
        checks["aopc_constant_quantus_max_abs_difference"] = max_abs_difference(ours, theirs)
    return checks


def road_call(subject: Subject, config: dict):
    """pytorch-grad-cam's ROAD on the first ``road_images`` images, with ``road_regions**2 - 1`` thresholds.

    ROAD solves a sparse system per image and threshold on the CPU (seconds at 224 px), so it runs on
    a subset. The maps are jittered so that every percentile threshold removes some pixels and keeps
    others.
    """
    k, regions, count = config["loop_images"], config["road_regions"], config["road_images"]
    percentiles = [100 * (1 - j / regions**2) for j in range(1, regions**2)]
    maps = subject.maps[:k]
    noise = torch.rand(maps.shape, generator=torch.Generator().manual_seed(config["seed"] + 3)).to(maps.device)
    jittered = (maps + 1e-4 * noise)[:count]
    return lambda: road_morf(subject.model, subject.images[:count], jittered, subject.targets[:count], percentiles)


def aopc_runs(subject: Subject, config: dict, auto: str) -> tuple[dict, dict]:
    """Timed runs of camfaith's AOPC on both paths, the loop with camfaith's noise, Quantus and ROAD, with the bound.

    ROAD is timed against camfaith's AOPC with as many removal steps (on the ``auto`` path, the default): interleaved
    with the others when that is the setting compared here, else in a run of its own. Returns ``(run, road_run)``.
    """
    k, regions, seed, repeats = config["loop_images"], config["compare_regions"], config["seed"], config["repeats"]
    chunk, device = config["chunks"]["aopc"], subject.images.device
    model, images, maps, targets = subject.model, subject.images, subject.maps, subject.targets
    fill = (2 * torch.rand(images.shape, generator=torch.Generator().manual_seed(seed)) - 1).to(device)
    functions = {f"camfaith {path}": (lambda path=path: ours_aopc(subject, regions, chunk, seed, targets, path))
                 for path in timed_paths(regions, config)}
    functions["loop"] = lambda: loop_aopc(model, images[:k], maps[:k], regions, targets[:k], fill=fill[:k])
    if quantus_fits(subject, config):
        functions["quantus"] = lambda: quantus_region_perturbation(model, images, maps, targets, regions, chunk,
                                                                   "uniform")
    road = {"road": road_call(subject, config)} if config["anchors"] else {}
    together = config["road_regions"] == regions and config["road_repeats"] == repeats
    bound = subject.bounds.passes(("forward", chunk))
    run = timed({**functions, **(road if together else {}), **bound}, repeats, device, warmup=False)
    road_run = run
    if road and not together:
        road_run = timed({f"camfaith {auto}": lambda: ours_aopc(subject, config["road_regions"], chunk, seed, targets,
                                                                auto), **road, **bound},
                         config["road_repeats"], device, warmup=False)
    return run, road_run


def aopc_anchor_rows(subject: Subject, config: dict, run: dict, road_run: dict, auto: str, checks: dict) -> list[dict]:
    """The loop's, Quantus's and ROAD's rows; *camfaith faster by* against camfaith's ``auto`` path."""
    n, k, chunk, regions = config["images"], config["loop_images"], config["chunks"]["aopc"], config["compare_regions"]
    steps, setting, arch, bounds = regions * regions + 1, f"{regions}x{regions}", subject.arch, subject.bounds
    ours = 1e3 * run[f"camfaith {auto}"]["median"] / n
    loop_ms = 1e3 * run["loop"]["median"] / k
    allowed = bounds.seconds(run, steps, 0, chunk) * 1e3
    rows = [row(arch, "AOPC", setting, f"per-image loop ({k} images)", f"{steps} fwd", loop_ms, allowed / loop_ms,
                loop_ms / ours, f"{checks['aopc_constant_loop_max_abs_difference']:.1e} (constant), "
                f"{checks['aopc_uniform_loop_max_abs_difference']:.1e} (shared noise)")]
    if "quantus" in run:
        quantus_ms = 1e3 * run["quantus"]["median"] / n
        rows.append(row(arch, "AOPC", setting, "Quantus RegionPerturbation", f"{steps} fwd", quantus_ms,
                        allowed / quantus_ms, quantus_ms / ours,
                        f"{checks['aopc_constant_quantus_max_abs_difference']:.1e} (constant)"))
    if "road" in road_run:
        road_images, thresholds = config["road_images"], config["road_regions"] ** 2 - 1
        road_ms = 1e3 * road_run["road"]["median"] / road_images
        road_allowed = bounds.seconds(road_run, 2 * thresholds, 0, chunk) * 1e3
        ours_road = 1e3 * road_run[f"camfaith {auto}"]["median"] / n
        rows.append(row(arch, "AOPC", f"{thresholds} thresholds", f"pytorch-grad-cam ROAD, MoRF ({road_images} images)",
                        f"{2 * thresholds} fwd", road_ms, road_allowed / road_ms, road_ms / ours_road,
                        "different metric"))
    return rows


def compare_aopc(subject: Subject, config: dict, log) -> Measured:
    """camfaith's AOPC on both paths against the per-image loop, Quantus RegionPerturbation and ROAD.

    The loop is timed with camfaith's own noise (one uniform draw per image, from the same random
    seed), so its scores must equal camfaith's full-forward path's, and the incremental path's must
    equal those up to float rounding; a constant baseline is checked as well (:func:`aopc_constant_checks`).
    """
    k, regions = config["loop_images"], config["compare_regions"]
    auto, _ = auto_path(subject, regions, config["chunks"]["aopc"])
    constant = aopc_constant_checks(subject, config, log)
    log(f"[{subject.arch}] AOPC {regions}x{regions} timings: camfaith on both paths, loop and anchors")
    run, road_run = aopc_runs(subject, config, auto)
    full = run["camfaith full forward"]["result"].scores.cpu()
    checks = {**constant, "aopc_uniform_loop_max_abs_difference": max_abs_difference(full[:k],
                                                                                     run["loop"]["result"].cpu()),
              "aopc_incremental_full_max_abs_difference": max_abs_difference(
                  run["camfaith incremental"]["result"].scores.cpu(), full)}
    rows = [aopc_row(subject, regions, path, run, f"camfaith {path}", config) for path in timed_paths(regions, config)]
    rows += aopc_anchor_rows(subject, config, run, road_run, auto, checks)
    return Measured(rows, checks, [run] if road_run is run else [run, road_run])


def sensitivity_runs(subject: Subject, config: dict, blocks: list[torch.Tensor]) -> dict:
    """Timed runs of camfaith's Max-Sensitivity, the loop, Captum and Quantus (all with ``blocks``), with the bound."""
    k, seed, chunk = config["loop_images"], config["seed"], config["chunks"]["max_sensitivity"]
    radius, samples = config["compare_sensitivity"]
    model, images, targets, explain = subject.model, subject.images, subject.targets, subject.hirescam
    functions = {
        "camfaith": lambda: ours_sensitivity(subject, radius, samples, chunk, seed),
        "loop": lambda: loop_max_sensitivity(model, subject.target_layer, images[:k], targets[:k], radius, samples,
                                             noise=lambda i, s: blocks[s][i]),
    }
    if config["anchors"]:
        functions["captum"] = lambda: captum_sensitivity_max(explain, images, targets, radius, samples, chunk, blocks)
        functions["quantus"] = lambda: quantus_max_sensitivity(explain, model, images, targets, radius, samples,
                                                               chunk, blocks)
    return timed({**functions, **subject.bounds.passes(("forward_backward", chunk))}, config["repeats"],
                 images.device, warmup=False)


def sensitivity_checks(subject: Subject, run: dict, k: int) -> dict:
    """Largest differences from camfaith's scores: absolute for the loop, relative to the clean map's norm
    (camfaith's ``normalize=True``) for Captum and Quantus."""
    ours = run["camfaith"]["result"].scores.cpu().double()
    checks = {"sensitivity_loop_max_abs_difference": max_abs_difference(ours[:k], run["loop"]["result"])}
    clean_norm = torch.linalg.vector_norm(subject.hirescam(subject.images, subject.targets).flatten(1), dim=1)
    clean_norm = clean_norm.cpu().double()
    relative = ours / torch.where(clean_norm == 0, torch.ones_like(clean_norm), clean_norm)
    for name in ("captum", "quantus"):
        if name in run:
            theirs = torch.as_tensor(run[name]["result"]).cpu().double()
            checks[f"sensitivity_{name}_max_abs_difference"] = max_abs_difference(relative, theirs)
    return checks


def compare_sensitivity(subject: Subject, config: dict, log) -> Measured:
    """camfaith's Max-Sensitivity against the per-image loop, Quantus MaxSensitivity and Captum sensitivity_max.

    All of them are timed with camfaith's noise (one block per sample from the same random seed), so
    their scores must equal camfaith's (:func:`sensitivity_checks`).
    """
    n, k, chunk, arch = config["images"], config["loop_images"], config["chunks"]["max_sensitivity"], subject.arch
    radius, samples = config["compare_sensitivity"]
    setting, passes = f"r={radius}, {samples} samples", f"{samples + 1} fwd+bwd"
    blocks = noise_blocks(subject.images, radius, samples, config["seed"])
    log(f"[{arch}] Max-Sensitivity timings: camfaith, loop and anchors")
    run = sensitivity_runs(subject, config, blocks)
    checks = sensitivity_checks(subject, run, k)

    ours = 1e3 * run["camfaith"]["median"] / n
    loop_ms = 1e3 * run["loop"]["median"] / k
    allowed = subject.bounds.seconds(run, 0, samples + 1, 1, chunk) * 1e3
    rows = [row(arch, "Max-Sensitivity", setting, "camfaith", passes, ours, allowed / ours),
            row(arch, "Max-Sensitivity", setting, f"per-image loop ({k} images)", passes, loop_ms,
                allowed / loop_ms, loop_ms / ours,
                f"{checks['sensitivity_loop_max_abs_difference']:.1e} (shared noise)")]
    for name, label in (("captum", "Captum sensitivity_max"), ("quantus", "Quantus MaxSensitivity")):
        if name in run:
            their_ms = 1e3 * run[name]["median"] / n
            rows.append(row(arch, "Max-Sensitivity", setting, label, passes, their_ms, allowed / their_ms,
                            their_ms / ours,
                            f"{checks[f'sensitivity_{name}_max_abs_difference']:.1e} (shared noise, relative)"))
    return Measured(rows, checks, [run])
