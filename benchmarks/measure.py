"""One architecture's measurements: camfaith's CAMs and metrics against the bound, and the assembly.

:func:`benchmark_arch` builds the model and one batch of random images, then runs each measurement
in turn: the CAMs against pytorch-grad-cam, each metric at every setting against the bound, HAAS
against its per-image loop, then the comparisons of :mod:`compare`. Each measurement returns a
:class:`~subject.Measured`; :func:`benchmark_arch` assembles them into the architecture's entry of
the result file. The order of the measurements is the order of the random draws, so it is fixed.
"""

from __future__ import annotations

import statistics

import torch
from anchors import library_cam
from baselines import loop_haas
from compare import compare_aopc, compare_sensitivity
from crossover import crossover
from harness import Bound, bound_table, profile, random_images, timed
from settings import NUM_CLASSES
from subject import (
    PATHS,
    Measured,
    Subject,
    aopc_row,
    aopc_sizes,
    auto_path,
    ours_aopc,
    ours_haas,
    ours_sensitivity,
    row,
    timed_paths,
)
from targets import auto_paths, missed_metrics

import camfaith


def cam_comparison(model, target_layer, images, targets, repeats: int) -> dict:
    """camfaith's one :func:`camfaith.cams` call (both maps) against pytorch-grad-cam's two classes."""
    times = timed(
        {
            "camfaith": lambda: camfaith.cams(model, target_layer, images, targets),
            "gradcam": lambda: library_cam(model, target_layer, images, targets, "gradcam"),
            "hirescam": lambda: library_cam(model, target_layer, images, targets, "hirescam"),
        },
        repeats,
        images.device,
        warmup=repeats > 1,  # a single timed run follows the model's own warm-up
    )
    ours = times["camfaith"]["result"]
    differences = {
        method: float((ours[method].cpu() - torch.from_numpy(times[method]["result"])).abs().max())
        for method in ("gradcam", "hirescam")
    }
    n = images.shape[0]
    seconds = {name: entry["median"] for name, entry in times.items()}
    one_library = statistics.mean([seconds["gradcam"], seconds["hirescam"]])
    return {
        "images": n,
        "camfaith_ms_per_image": 1e3 * seconds["camfaith"] / n,
        "gradcam_ms_per_image": 1e3 * seconds["gradcam"] / n,
        "hirescam_ms_per_image": 1e3 * seconds["hirescam"] / n,
        "camfaith_over_one_library": seconds["camfaith"] / one_library,
        "two_library_over_camfaith": (seconds["gradcam"] + seconds["hirescam"]) / seconds["camfaith"],
        "max_abs_difference": differences,
    }


def time_aopc(subject: Subject, config: dict, log) -> Measured:
    """camfaith's AOPC on its paths at every heatmap size but the one :func:`compare.compare_aopc` times beside the
    anchors, interleaved with one forward pass of a chunk."""
    chunk, seed = config["chunks"]["aopc"], config["seed"]
    sizes = [r for r in config["regions"] if r != config["compare_regions"]]
    if not sizes:
        return Measured()
    calls = {(r, path): f"camfaith {path} {r}" for r in sizes for path in timed_paths(r, config)}
    log(f"[{subject.arch}] AOPC at {', '.join(f'{r}x{r}' for r in sizes)}: {', '.join(calls.values())}")
    functions = {name: (lambda r=r, path=path: ours_aopc(subject, r, chunk, seed, path=path))
                 for (r, path), name in calls.items()}
    run = timed({**functions, **subject.bounds.passes(("forward", chunk))}, config["repeats"],
                subject.images.device, warmup=False)
    rows = [aopc_row(subject, r, path, run, name, config) for (r, path), name in calls.items()]
    return Measured(rows, {}, [run])


def time_sensitivity(subject: Subject, config: dict, log) -> Measured:
    """camfaith's Max-Sensitivity at every (radius, samples) but the one :func:`compare.compare_sensitivity` times
    beside the anchors, interleaved with one forward + backward of a chunk."""
    n, chunk, seed = config["images"], config["chunks"]["max_sensitivity"], config["seed"]
    settings = [tuple(s) for s in config["sensitivity"] if tuple(s) != tuple(config["compare_sensitivity"])]
    if not settings:
        return Measured()
    log(f"[{subject.arch}] Max-Sensitivity at {', '.join(f'(r={r}, {s})' for r, s in settings)}")
    run = timed({**{f"camfaith {r} {s}": (lambda r=r, s=s: ours_sensitivity(subject, r, s, chunk, seed))
                    for r, s in settings},
                 **subject.bounds.passes(("forward_backward", chunk))},
                config["repeats"], subject.images.device, warmup=False)
    rows = []
    for radius, samples in settings:
        seconds = run[f"camfaith {radius} {samples}"]["median"]
        allowed = subject.bounds.seconds(run, 0, n * (samples + 1), 1, chunk)
        rows.append(row(subject.arch, "Max-Sensitivity", f"r={radius}, {samples} samples", "camfaith",
                        f"{samples + 1} fwd+bwd", 1e3 * seconds / n, allowed / seconds))
    return Measured(rows, {}, [run])


def time_haas(subject: Subject, config: dict, log) -> Measured:
    """camfaith's HAAS with its maps against the per-image loop, interleaved with the passes they need."""
    n, k, chunk = config["images"], config["loop_images"], config["chunks"]["haas"]
    batch = min(chunk, n)
    log(f"[{subject.arch}] HAAS")

    def loop():
        return loop_haas(subject.model, subject.target_layer, subject.images[:k], subject.labels[:k])

    run = timed({"camfaith": lambda: ours_haas(subject, chunk), "loop": loop,
                 **subject.bounds.passes(("forward", batch), ("forward_backward", batch))},
                config["repeats"], subject.images.device, warmup=config["repeats"] > 1)
    seconds = run["camfaith"]["median"]
    allowed = subject.bounds.seconds(run, 2 * n, n, batch, batch)
    loop_seconds = run["loop"]["median"] / k
    loop_allowed = subject.bounds.seconds(run, 2, 1, batch, batch)
    ours_result = run["camfaith"]["result"]
    loop_predictions, loop_ha = run["loop"]["result"]
    same = bool((ours_result.predictions[:k].cpu() == loop_predictions).all()
                and (ours_result.ha_predictions[:k].cpu() == loop_ha).all())
    setting, passes = "unit scaling, with maps", "2 fwd + 1 fwd+bwd"
    rows = [row(subject.arch, "HAAS", setting, "camfaith", passes, 1e3 * seconds / n, allowed / seconds),
            row(subject.arch, "HAAS", setting, f"per-image loop ({k} images)", passes, 1e3 * loop_seconds,
                loop_allowed / loop_seconds, loop_seconds / (seconds / n),
                "same predictions" if same else "predictions differ")]
    return Measured(rows, {"haas_loop_same_predictions": same}, [run])


def profile_misses(subject: Subject, config: dict, rows: list[dict], cams: dict, auto: list[dict]) -> dict:
    """A profile of one camfaith call for each metric (or the CAMs) that misses a target on this architecture."""
    seed, chunks = config["seed"], config["chunks"]
    calls = {
        "AOPC": lambda: ours_aopc(subject, config["compare_regions"], chunks["aopc"], seed),
        "Max-Sensitivity": lambda: ours_sensitivity(subject, *config["compare_sensitivity"],
                                                    chunks["max_sensitivity"], seed),
        "HAAS": lambda: ours_haas(subject, chunks["haas"]),
        "CAMs": lambda: camfaith.cams(subject.model, subject.target_layer, subject.images, subject.targets),
    }
    missed = missed_metrics(subject.arch, rows, cams, auto_paths({"aopc_auto": auto}), config["input_size"])
    return {metric: profile(calls[metric]) for metric in sorted(missed)}


def prepare(arch: str, config: dict, device: torch.device, log) -> tuple[Subject, dict]:
    """The model, the batch, the warmed-up bound, the CAM comparison, then the predicted classes' maps."""
    size, n, seed, chunks = config["input_size"], config["images"], config["seed"], config["chunks"]
    model, target_layer = camfaith.build_model(arch, NUM_CLASSES, input_size=size, small_input=config["small_input"],
                                               variant=config["variant"])
    model = model.to(device).eval()
    images = random_images(n, size, device, seed)
    labels = torch.randint(NUM_CLASSES, (n,), generator=torch.Generator().manual_seed(seed)).to(device)
    bounds = Bound(model, size, device, seed + 1)
    # The bound is timed alongside each metric, at the batch size the metric runs; warm it up first.
    log(f"[{arch}] warm-up")
    haas_batch = min(chunks["haas"], n)
    bounds.warm_up(("forward", chunks["aopc"]), ("forward_backward", chunks["max_sensitivity"]),
                   ("forward", haas_batch), ("forward_backward", haas_batch))
    log(f"[{arch}] CAMs")
    with torch.no_grad():
        targets = model(images).argmax(1)
    cams = cam_comparison(model, target_layer, images, targets, config["repeats"])
    maps = camfaith.cams(model, target_layer, images, targets)["hirescam"]
    hirescam = camfaith.explainer(model, target_layer, "hirescam")
    return Subject(arch, model, target_layer, images, labels, targets, maps, hirescam, bounds), cams


def ordered(rows: list[dict], config: dict) -> list[dict]:
    """camfaith's rows first, by metric, then heatmap size or sample count and path; the others as measured."""
    settings = [f"{r}x{r}" for r in aopc_sizes(config)]
    settings += [f"r={r}, {s} samples" for r, s in [config["compare_sensitivity"], *config["sensitivity"]]]
    metrics, paths = ["AOPC", "Max-Sensitivity", "HAAS"], list(PATHS)

    def key(entry):
        if entry["implementation"] != "camfaith":
            return (1,)
        setting = settings.index(entry["setting"]) if entry["setting"] in settings else len(settings)
        return (0, metrics.index(entry["metric"]), setting, paths.index(entry["path"]) if entry["path"] else 0)

    return sorted(rows, key=key)


def aopc_auto(subject: Subject, config: dict) -> list[dict]:
    """The path ``incremental="auto"`` takes at each heatmap size timed, and the speed-up it estimates."""
    entries = []
    for regions in aopc_sizes(config):
        path, speedup = auto_path(subject, regions, config["chunks"]["aopc"])
        entries.append({"regions": regions, "auto": path, "estimated_speedup": speedup})
    return entries


def benchmark_arch(arch: str, config: dict, device: torch.device, log) -> dict:
    """Every measurement of one architecture, as its entry of the result file (without the memory)."""
    subject, cams = prepare(arch, config, device, log)
    parts = [measure(subject, config, log)
             for measure in (time_aopc, time_sensitivity, time_haas, compare_aopc, compare_sensitivity)]
    rows = ordered([entry for part in parts for entry in part.rows], config)
    auto = aopc_auto(subject, config)
    return {
        "arch": arch,
        "feature_shape": list(subject.model.feature_shape),
        "rows": rows,
        "checks": {name: value for part in parts for name, value in part.checks.items()},
        "profiles": profile_misses(subject, config, rows, cams, auto),
        "cams": cams,
        "bound": bound_table([run for part in parts for run in part.runs]),
        "aopc_auto": auto,
        "crossover": crossover(arch, config, device, log) if config["crossover"] else [],
    }
