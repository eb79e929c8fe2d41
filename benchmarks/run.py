"""What the study's metrics cost: camfaith against the model's own passes, a per-image loop and other libraries.

For each architecture this script measures, in one run and on one batch of random images:

1. the bound: the model's throughput for a forward pass without gradients and for a forward plus a
   full backward pass (to the input and every parameter, as in a training step), at the batch sizes
   the metrics use;
2. Grad-CAM and HiResCAM from one :func:`camfaith.cams` call against pytorch-grad-cam's ``GradCAM``
   and ``HiResCAM`` run one after the other on the same batch;
3. :func:`camfaith.aopc`, :func:`camfaith.max_sensitivity` and :func:`camfaith.haas` at the seed's
   settings, as time per image and as efficiency: the time the bound allows for the passes a metric
   needs divided by the measured time (1 means "costs exactly its passes");
4. the same metrics computed by a straightforward per-image loop (one image and one step at a time),
   and checked against ours where the randomness can be shared;
5. the anchors: Quantus ``MaxSensitivity`` and ``RegionPerturbation``, Captum ``sensitivity_max`` and
   pytorch-grad-cam's ``ROADMostRelevantFirstAverage``;
6. peak memory per metric at its chunk size, and the per-image memory of VGG19 at 224 px, from which
   the largest chunk that fits a 16 GB GPU is estimated.

Every timing is the median of ``--repeats`` runs after a warm-up of the model; timings compared with
each other, and the bound, are taken interleaved, so that a change in machine load affects all sides
alike. Results go to ``benchmarks/results/<device>-<date>.json`` and ``.md``, copied to
``latest-<device>.json`` / ``.md``.

Run ``python benchmarks/run.py --help`` for the options, or ``make benchmark``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import camfaith
from camfaith.metrics import aopc, haas, max_sensitivity

RESULTS = Path(__file__).resolve().parent / "results"
SEED_SENSITIVITY = ((0.05, 20), (0.1, 20), (0.2, 30), (0.3, 30), (0.4, 40), (0.5, 40))  # seed Table 6
QUICK_SENSITIVITY = ((0.05, 20), (0.5, 40))  # the smallest and the largest sample count of Table 6
SEED_REGIONS = (4, 8, 11, 14)  # seed Table 5
QUICK_REGIONS = (4, 8)
DEFAULT_CHUNKS = {"aopc": 64, "max_sensitivity": 32, "haas": 64}  # the metrics' own defaults
GPU_MEMORY = 16 * 2**30  # the GPU the memory estimate is for (a 16 GB V100, as in the seed)
NUM_CLASSES = 7
# what aopc holds per image of the batch passed in, at 224 px: the image and its noise (3 x float32),
# the removal step of every pixel (int64) and the map (float32)
AOPC_INPUT_BYTES_224 = (2 * 3 * 4 + 8 + 4) * 224 * 224
TARGETS = {"efficiency": 0.8, "cam_over_one_library": 1.15, "two_library_over_cam": 1.7}


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(functions: dict, repeats: int, device: torch.device, warmup: bool = True) -> dict:
    """Median wall time of each function, run interleaved ``repeats`` times after one warm-up each.

    Returns ``{name: {"median": s, "runs": [s, ...], "result": last return value}}``.
    """
    results = {name: {"runs": [], "result": None} for name in functions}
    if warmup:
        for name, function in functions.items():
            results[name]["result"] = function()
    for _ in range(repeats):
        for name, function in functions.items():
            gc.collect()
            synchronize(device)
            start = time.perf_counter()
            results[name]["result"] = function()
            synchronize(device)
            results[name]["runs"].append(time.perf_counter() - start)
    for entry in results.values():
        entry["median"] = statistics.median(entry["runs"])
    return results


# ----------------------------------------------------------------------------------------------
# The bound: the model's own passes
# ----------------------------------------------------------------------------------------------


def random_images(n: int, size: int, device: torch.device, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, 3, size, size, generator=generator) - 1).to(device)


class Bound:
    """The model's own passes, timed interleaved with the metrics they are the yardstick for.

    ``passes(("forward", 64), ...)`` gives functions to add to a :func:`timed` call: one forward pass
    without grad, or one forward plus full backward pass (to the input and every parameter, as in a
    training step), on a fixed batch of that size. ``seconds(run, ...)`` then reads that call's medians,
    so the bound and the metric see the same machine load.
    """

    def __init__(self, model, size: int, device: torch.device, seed: int):
        self.model, self.size, self.device, self.seed = model, size, device, seed
        self.batches = {}
        self.observed = {}

    def _images(self, batch: int) -> torch.Tensor:
        if batch not in self.batches:
            self.batches[batch] = random_images(batch, self.size, self.device, self.seed + batch)
        return self.batches[batch]

    def _function(self, kind: str, batch: int):
        model, images = self.model, self._images(batch)

        def forward():
            with torch.no_grad():
                return model(images)

        def forward_backward():
            model.zero_grad(set_to_none=True)
            logits = model(images.clone().requires_grad_(True))
            logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
            model.zero_grad(set_to_none=True)

        return forward if kind == "forward" else forward_backward

    def passes(self, *needs: tuple[str, int]) -> dict:
        return {f"bound {kind} {batch}": self._function(kind, batch) for kind, batch in needs}

    def warm_up(self, *needs: tuple[str, int]) -> None:
        for function in self.passes(*needs).values():
            function()

    def per_image(self, run: dict, kind: str, batch: int) -> float:
        return run[f"bound {kind} {batch}"]["median"] / batch

    def record(self, run: dict) -> None:
        for name, entry in run.items():
            if name.startswith("bound "):
                _, kind, batch = name.split()
                self.observed.setdefault((kind, int(batch)), []).append(entry["median"] / int(batch))

    def seconds(self, run: dict, forwards: int, forward_backwards: int, batch_forward: int = 1,
                batch_backward: int = 1) -> float:
        """Time the bound allows for ``forwards`` and ``forward_backwards`` passes of one image each."""
        total = 0.0
        if forwards:
            total += forwards * self.per_image(run, "forward", batch_forward)
        if forward_backwards:
            total += forward_backwards * self.per_image(run, "forward_backward", batch_backward)
        return total

    def table(self) -> list[dict]:
        """Images per second of each pass: the median over the measurements, and their range."""
        return [{"pass": kind, "batch": batch, "measurements": len(times),
                 "images_per_s": 1 / statistics.median(times), "lowest": 1 / max(times), "highest": 1 / min(times)}
                for (kind, batch), times in sorted(self.observed.items())]


# ----------------------------------------------------------------------------------------------
# The library CAMs (pytorch-grad-cam)
# ----------------------------------------------------------------------------------------------


def library_cam(model, target_layer, images, targets, method: str) -> np.ndarray:
    """pytorch-grad-cam's map for a batch, the way its README runs it (hooks released afterwards)."""
    from pytorch_grad_cam import GradCAM, HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_class = {"gradcam": GradCAM, "hirescam": HiResCAM}[method]
    with cam_class(model=model, target_layers=[target_layer]) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    model.zero_grad(set_to_none=True)  # the library's backward fills every parameter's .grad
    return maps


def cam_comparison(model, target_layer, images, targets, device, repeats) -> dict:
    times = timed(
        {
            "camfaith": lambda: camfaith.cams(model, target_layer, images, targets),
            "gradcam": lambda: library_cam(model, target_layer, images, targets, "gradcam"),
            "hirescam": lambda: library_cam(model, target_layer, images, targets, "hirescam"),
        },
        repeats,
        device,
    )
    ours = times["camfaith"]["result"]
    differences = {
        method: float((ours[method].cpu() - torch.from_numpy(times[method]["result"])).abs().max())
        for method in ("gradcam", "hirescam")
    }
    n = images.shape[0]
    one_library = statistics.mean([times["gradcam"]["median"], times["hirescam"]["median"]])
    return {
        "images": n,
        "camfaith_ms_per_image": 1e3 * times["camfaith"]["median"] / n,
        "gradcam_ms_per_image": 1e3 * times["gradcam"]["median"] / n,
        "hirescam_ms_per_image": 1e3 * times["hirescam"]["median"] / n,
        "camfaith_over_one_library": times["camfaith"]["median"] / one_library,
        "two_library_over_camfaith": (times["gradcam"]["median"] + times["hirescam"]["median"])
        / times["camfaith"]["median"],
        "max_abs_difference": differences,
    }


# ----------------------------------------------------------------------------------------------
# Per-image loops: the metrics the way the original study's code computed them
# ----------------------------------------------------------------------------------------------


def cell_slices(size: int, regions: int) -> list[slice]:
    """Row (or column) ranges of a regions x regions grid; ``floor(i * size / regions)`` boundaries."""
    return [slice(i * size // regions, (i + 1) * size // regions) for i in range(regions)]


def loop_aopc(model, images, maps, regions, targets, fill=None, generator=None) -> torch.Tensor:
    """AOPC one image and one removal step at a time.

    ``fill`` (N, C, H, W) gives the value of every removed pixel; when None, each removed cell gets
    uniform noise in [-1, 1] drawn when it is removed, as a straightforward implementation would.
    """
    _, _, height, width = images.shape
    rows, cols = cell_slices(height, regions), cell_slices(width, regions)
    scores = []
    with torch.no_grad():
        for n in range(images.shape[0]):
            image = images[n : n + 1].clone()
            target = int(targets[n])
            clean = model(image).softmax(1)[0, target]
            heat = torch.stack([maps[n, r, c].mean() for r in rows for c in cols])
            order = torch.sort(heat, descending=True, stable=True).indices.tolist()
            drop = image.new_zeros(())
            for cell in order:
                r, c = rows[cell // regions], cols[cell % regions]
                if fill is None:
                    patch = 2 * torch.rand(image[0, :, r, c].shape, generator=generator) - 1
                    image[0, :, r, c] = patch.to(image.device)
                else:
                    image[0, :, r, c] = fill[n, :, r, c]
                drop += clean - model(image).softmax(1)[0, target]
            scores.append(drop / (regions * regions + 1))
    return torch.stack(scores)


def loop_max_sensitivity(model, target_layer, images, targets, radius, n_samples, noise=None, generator=None):
    """Max-Sensitivity one image and one perturbed sample at a time, explained by pytorch-grad-cam's HiResCAM.

    ``noise(n, s)`` gives the perturbation of sample ``s`` of image ``n``; when None it is drawn
    uniformly in [-radius, radius] per sample.
    """
    from pytorch_grad_cam import HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    scores = []
    with HiResCAM(model=model, target_layers=[target_layer]) as cam:
        for n in range(images.shape[0]):
            image = images[n : n + 1]
            target = [ClassifierOutputTarget(int(targets[n]))]
            clean = cam(input_tensor=image, targets=target)[0]
            largest = 0.0
            for s in range(n_samples):
                if noise is None:
                    delta = radius * (2 * torch.rand(image.shape, generator=generator) - 1)
                else:
                    delta = noise(n, s)
                perturbed = cam(input_tensor=image + delta.to(image.device), targets=target)[0]
                largest = max(largest, float(np.linalg.norm(perturbed - clean)))
            scores.append(largest)
    model.zero_grad(set_to_none=True)
    return torch.tensor(scores)


def loop_haas(model, target_layer, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """HAAS one image at a time: a pytorch-grad-cam HiResCAM map, the HA image, two predictions."""
    from pytorch_grad_cam import HiResCAM

    predictions, ha_predictions = [], []
    with HiResCAM(model=model, target_layers=[target_layer]) as cam:
        for n in range(images.shape[0]):
            image = images[n : n + 1]
            attribution = torch.from_numpy(cam(input_tensor=image, targets=None)).to(image.device)
            assisted = (image * (1 + attribution[:, None])).clamp(-1, 1)
            with torch.no_grad():
                predictions.append(int(model(image).argmax(1)))
                ha_predictions.append(int(model(assisted).argmax(1)))
    model.zero_grad(set_to_none=True)
    return torch.tensor(predictions), torch.tensor(ha_predictions)


def noise_blocks(images, radius, n_samples, seed):
    """The noise :func:`camfaith.max_sensitivity` draws from ``torch.Generator().manual_seed(seed)``:
    one ``(N, C, H, W)`` block per sample, uniform in [-radius, radius]."""
    generator = torch.Generator().manual_seed(seed)
    return [radius * (2 * torch.rand(images.shape, generator=generator) - 1) for _ in range(n_samples)]


# ----------------------------------------------------------------------------------------------
# Anchors: other libraries computing the same (or the nearest) metric
# ----------------------------------------------------------------------------------------------


def quantus_max_sensitivity(explain, model, images, targets, radius, n_samples, chunk, blocks=None):
    """Quantus ``MaxSensitivity``: relative distance ``||Phi(x) - Phi(y)|| / ||Phi(x)||``, one batch per sample.

    The explanation is camfaith's HiResCAM (called through Quantus's numpy interface), so that only
    the metric machinery differs. ``blocks`` replaces Quantus's own noise by camfaith's for the check.
    """
    import quantus

    def explain_numpy(model, inputs, targets, **kwargs):
        inputs = torch.as_tensor(inputs, device=images.device)
        return explain(inputs, torch.as_tensor(targets, device=images.device)).cpu().numpy()

    options = {}
    if blocks is not None:
        counter = iter(range(n_samples))

        def shared_noise(arr, indices, **kwargs):
            return arr + blocks[next(counter)].reshape(arr.shape[0], -1).numpy()

        options["perturb_func"] = shared_noise
    metric = quantus.MaxSensitivity(
        nr_samples=n_samples, lower_bound=radius, normalise=False, abs=False, disable_warnings=True, **options
    )
    scores = metric(
        model=model,
        x_batch=images.cpu().numpy(),
        y_batch=targets.cpu().numpy(),
        a_batch=None,
        explain_func=explain_numpy,
        device=str(images.device),
        batch_size=chunk if blocks is None else images.shape[0],  # shared noise: one batch of all images
    )
    return torch.tensor(np.asarray(scores, dtype=np.float64))


def captum_sensitivity_max(explain, images, targets, radius, n_samples, chunk, blocks=None):
    """Captum ``sensitivity_max`` (relative distance, like Quantus) with camfaith's HiResCAM.

    Captum runs the explanation function under ``torch.no_grad``; camfaith's CAMs enable gradients
    themselves. ``blocks`` replaces Captum's noise by camfaith's for the check.
    """
    from captum.metrics import sensitivity_max

    def explain_tensors(inputs, target):
        if isinstance(inputs, tuple):  # Captum passes the clean inputs as a tuple and wants a tuple back
            return (explain(inputs[0], target),)
        return explain(inputs, target)

    options = {}
    if blocks is not None:
        position = {"sample": 0}

        def shared_noise(inputs, radius):
            per_image = inputs.shape[0] // images.shape[0]
            first = position["sample"]
            position["sample"] += per_image
            noise = torch.stack([torch.stack(blocks[first : first + per_image])[:, n] for n in range(images.shape[0])])
            return inputs + noise.flatten(0, 1).to(inputs.device)

        options["perturb_func"] = shared_noise
    return sensitivity_max(
        explain_tensors,
        images,
        perturb_radius=radius,
        n_perturb_samples=n_samples,
        max_examples_per_batch=max(chunk, images.shape[0]),
        target=targets,
        **options,
    )


def quantus_region_perturbation(model, images, maps, targets, regions, chunk, baseline):
    """Quantus ``RegionPerturbation`` (MoRF) on square patches of ``size / regions`` pixels.

    Returns per-image AOPC ``sum_k (f(x_0) - f(x_k)) / (L + 1)`` from its curve of differences.
    Quantus runs one forward pass per removal step on the whole batch.
    """
    import quantus

    size = images.shape[-1]
    if size % regions:
        raise ValueError(f"Quantus patches need the image size ({size}) to be a multiple of regions ({regions})")
    options = {"perturb_baseline": baseline}
    if baseline == "uniform":
        options["perturb_func_kwargs"] = {"uniform_low": -1.0, "uniform_high": 1.0}
    metric = quantus.RegionPerturbation(
        patch_size=size // regions,
        order="morf",
        regions_evaluation=regions * regions,
        normalise=False,
        abs=False,
        disable_warnings=True,
        **options,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = metric(
            model=model,
            x_batch=images.cpu().numpy(),
            y_batch=targets.cpu().numpy(),
            a_batch=maps[:, None].cpu().numpy(),
            softmax=True,
            device=str(images.device),
            batch_size=chunk,
        )
    return torch.tensor(np.asarray(curves, dtype=np.float64)).sum(1) / (regions * regions + 1)


def road_morf(model, images, maps, targets, percentiles):
    """pytorch-grad-cam ``ROADMostRelevantFirstAverage``: mean drop of the class probability after
    removing the top pixels (by percentile of the map) and filling them by noisy linear imputation.

    A different metric from AOPC (pixel ranks instead of cells, imputation instead of noise, the
    mean over thresholds instead of an area), with one forward pass of the whole batch per threshold
    plus one of the clean batch, and a sparse linear solve per image and threshold on the CPU.
    """
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    metric = ROADMostRelevantFirstAverage(percentiles=list(percentiles))
    scores = metric(images, maps.cpu().numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model)
    return torch.as_tensor(np.asarray(scores))


# ----------------------------------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------------------------------


class PeakRSS:
    """Largest resident set size above the level at entry, sampled every millisecond in a thread."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.peak = 0

    def __enter__(self):
        gc.collect()
        self.start = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss - self.start)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss - self.start)


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """Yield a dict whose ``"bytes"`` is, after the block, the peak memory it allocated."""
    record = {}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield record
        synchronize(device)
        record["bytes"] = torch.cuda.max_memory_allocated(device) - start
    else:
        with PeakRSS() as sampler:
            yield record
        record["bytes"] = sampler.peak


def memory_job(job: dict, device: torch.device) -> int:
    """Peak bytes of one metric call described by ``job`` (built here, so the model is not counted)."""
    model, target_layer = camfaith.build_model(
        job["arch"], NUM_CLASSES, input_size=job["size"], small_input=job["small_input"]
    )
    model = model.to(device)
    images = random_images(job["images"], job["size"], device, seed=1)
    targets = torch.zeros(job["images"], dtype=torch.long, device=device)
    maps = torch.rand(job["images"], job["size"], job["size"], device=device)
    explain = camfaith.explainer(model, target_layer, "hirescam")
    generator = torch.Generator().manual_seed(0)
    calls = {
        "aopc": lambda: aopc(model, images, maps, job.get("regions", 8), generator=generator, chunk_size=job["chunk"]),
        "max_sensitivity": lambda: max_sensitivity(
            explain, images, 0.05, job.get("n_samples", 2), targets, generator=generator, chunk_size=job["chunk"]
        ),
        "haas": lambda: haas(model, images, targets, maps, chunk_size=job["chunk"]),
        "cams": lambda: camfaith.cams(model, target_layer, images[: job["chunk"]], targets[: job["chunk"]]),
        "forward": lambda: _no_grad(model, images[: job["chunk"]]),
    }
    with peak_memory(device) as record:
        calls[job["metric"]]()
    return int(record["bytes"])


def _no_grad(model, images):
    with torch.no_grad():
        return model(images)


def measure_memory(jobs: list[dict], device: torch.device) -> list[int]:
    """Peak bytes of each job. On the CPU the jobs run in a fresh process whose allocator returns freed
    memory to the system (``MALLOC_MMAP_THRESHOLD_``), so that resident memory follows live tensors."""
    if device.type == "cuda":
        return [memory_job(job, device) for job in jobs]
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    completed = subprocess.run(
        [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--memory-jobs", json.dumps(jobs)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def memory_estimate(device: torch.device, extra_jobs: list[dict] = ()) -> tuple[dict, list[int]]:
    """Per-image memory of 14x14 AOPC and of Max-Sensitivity for VGG19 at 224 px, from a few chunk sizes.

    The slope of peak memory against chunk size is the memory one more image in a chunk costs; the
    intercept holds what does not depend on the chunk (the images, their noise and masks). The
    estimate for a 16 GB GPU adds the weights and a 20 % margin for the allocator and cuDNN workspaces.
    ``extra_jobs`` run in the same process (one process start on the CPU); their peaks are returned too.
    """
    chunks = (1, 2, 4)
    jobs = [
        {"arch": "vgg19", "size": 224, "small_input": False, "metric": "aopc", "images": 1, "regions": 14, "chunk": c}
        for c in chunks
    ] + [
        {"arch": "vgg19", "size": 224, "small_input": False, "metric": "max_sensitivity", "images": 1,
         "n_samples": max(chunks), "chunk": c}
        for c in chunks
    ]
    if device.type != "cuda":  # on the CPU 14x14 takes minutes; 2x2 has the same per-image slope
        for job in jobs[: len(chunks)]:
            job["regions"] = 2
    peaks = measure_memory(jobs + list(extra_jobs), device)
    extra_peaks = peaks[len(jobs):]
    model, _ = camfaith.build_model("vgg19", NUM_CLASSES, input_size=224)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    estimate = {"weights_bytes": weights, "chunks": list(chunks), "gpu_bytes": GPU_MEMORY}
    for index, metric in enumerate(("aopc", "max_sensitivity")):
        peak = peaks[index * len(chunks) : (index + 1) * len(chunks)]
        slope, intercept = np.polyfit(chunks, peak, 1)
        default = DEFAULT_CHUNKS[metric]
        needed = 1.2 * (weights + intercept + slope * default)
        largest = int((GPU_MEMORY / 1.2 - weights - intercept) // max(slope, 1))
        estimate[metric] = {
            "peak_bytes": [int(p) for p in peak],
            "per_image_bytes": float(slope),
            "fixed_bytes": float(intercept),
            "default_chunk": default,
            "estimated_bytes_at_default_chunk": float(needed),
            "fits_16gb_at_default_chunk": bool(needed < GPU_MEMORY),
            "largest_chunk_for_16gb": largest,
        }
    return estimate, extra_peaks


# ----------------------------------------------------------------------------------------------
# Profiles, for targets that are missed
# ----------------------------------------------------------------------------------------------


MODEL_OPS = ("conv", "mkldnn", "cudnn", "addmm", "mm", "linear", "batch_norm", "relu", "threshold", "pool", "gemm")


def profile(function, rows: int = 8) -> dict:
    """The operators with the largest self CPU time in one call of ``function``, and the share of all
    operator time spent in the model's own layers (convolutions, matrix products, norms, ReLUs, pools)."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's own log lines out of the output
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with torch_profile(activities=activities) as prof:
        function()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    in_model = sum(e.self_cpu_time_total for e in events if any(word in e.key for word in MODEL_OPS))
    return {
        "model_share": in_model / total,
        "top": [
            {"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
             "calls": e.count}
            for e in events[:rows]
        ],
    }


# ----------------------------------------------------------------------------------------------
# One architecture
# ----------------------------------------------------------------------------------------------


def row(arch, metric, setting, implementation, passes, ms, efficiency=None, ours_faster_by=None, agreement=None):
    return {
        "arch": arch,
        "metric": metric,
        "setting": setting,
        "implementation": implementation,
        "passes per image": passes,
        "ms per image": ms,
        "efficiency": efficiency,
        "camfaith faster by": ours_faster_by,
        "agreement": agreement,
    }


def benchmark_arch(arch: str, config: dict, device: torch.device, log) -> dict:
    size, n, repeats, seed = config["input_size"], config["images"], config["repeats"], config["seed"]
    chunks = config["chunks"]
    model, target_layer = camfaith.build_model(arch, NUM_CLASSES, input_size=size, small_input=config["small_input"])
    model = model.to(device).eval()
    images = random_images(n, size, device, seed)
    labels = torch.randint(NUM_CLASSES, (n,), generator=torch.Generator().manual_seed(seed)).to(device)
    bounds = Bound(model, size, device, seed + 1)
    result = {"arch": arch, "feature_shape": list(model.feature_shape), "rows": [], "checks": {}, "profiles": {},
              "bounds": bounds}
    rows = result["rows"]

    # The bound is timed alongside each metric, at the batch size the metric runs; warm it up first.
    log(f"[{arch}] warm-up")
    aopc_batch = chunks["aopc"]
    sens_batch = chunks["max_sensitivity"]
    haas_batch = min(chunks["haas"], n)
    bounds.warm_up(("forward", aopc_batch), ("forward_backward", sens_batch), ("forward", haas_batch),
                   ("forward_backward", haas_batch))

    # Grad-CAM and HiResCAM: one camfaith call against the two library classes.
    log(f"[{arch}] CAMs")
    with torch.no_grad():
        targets = model(images).argmax(1)
    result["cams"] = cam_comparison(model, target_layer, images, targets, device, repeats)
    maps = camfaith.cams(model, target_layer, images, targets)
    hirescam_maps = maps["hirescam"]
    explain = camfaith.explainer(model, target_layer, "hirescam")

    # AOPC at the seed's region counts, all interleaved with one forward pass of a chunk.
    log(f"[{arch}] AOPC at {', '.join(f'{r}x{r}' for r in config['regions'])}")
    run = timed(
        {**{f"camfaith {r}": (lambda r=r: aopc(model, images, hirescam_maps, r, chunk_size=chunks["aopc"],
                                               generator=torch.Generator().manual_seed(seed)))
            for r in config["regions"]},
         **bounds.passes(("forward", aopc_batch))},
        repeats, device, warmup=False,
    )
    bounds.record(run)
    for regions in config["regions"]:
        steps = regions * regions + 1
        seconds = run[f"camfaith {regions}"]["median"]
        allowed = bounds.seconds(run, n * steps, 0, aopc_batch)
        rows.append(row(arch, "AOPC", f"{regions}x{regions}", "camfaith", f"{steps} fwd", 1e3 * seconds / n,
                        allowed / seconds))

    # Max-Sensitivity at the seed's (radius, samples), interleaved with one forward + backward of a chunk.
    log(f"[{arch}] Max-Sensitivity at {', '.join(f'(r={r}, {s})' for r, s in config['sensitivity'])}")
    run = timed(
        {**{f"camfaith {r} {s}": (lambda r=r, s=s: max_sensitivity(
            explain, images, r, s, targets, generator=torch.Generator().manual_seed(seed),
            chunk_size=chunks["max_sensitivity"])) for r, s in config["sensitivity"]},
         **bounds.passes(("forward_backward", sens_batch))},
        repeats, device, warmup=False,
    )
    bounds.record(run)
    for radius, samples in config["sensitivity"]:
        seconds = run[f"camfaith {radius} {samples}"]["median"]
        allowed = bounds.seconds(run, 0, n * (samples + 1), 1, sens_batch)
        rows.append(row(arch, "Max-Sensitivity", f"r={radius}, {samples} samples", "camfaith",
                        f"{samples + 1} fwd+bwd", 1e3 * seconds / n, allowed / seconds))

    # HAAS: the maps (one camfaith call per chunk) and the two forward passes.
    log(f"[{arch}] HAAS")

    def ours_haas():
        pieces = [camfaith.cams(model, target_layer, images[a : a + haas_batch], targets[a : a + haas_batch])
                  ["hirescam"] for a in range(0, n, haas_batch)]
        return haas(model, images, labels, torch.cat(pieces), chunk_size=chunks["haas"])

    def straightforward_haas():
        return loop_haas(model, target_layer, images[: config["loop_images"]], labels[: config["loop_images"]])

    run = timed({"camfaith": ours_haas, "loop": straightforward_haas,
                 **bounds.passes(("forward", haas_batch), ("forward_backward", haas_batch))}, repeats, device)
    bounds.record(run)
    seconds = run["camfaith"]["median"]
    allowed = bounds.seconds(run, 2 * n, n, haas_batch, haas_batch)
    loop_seconds = run["loop"]["median"] / config["loop_images"]
    loop_allowed = bounds.seconds(run, 2, 1, haas_batch, haas_batch)
    ours_result = run["camfaith"]["result"]
    loop_predictions, loop_ha = run["loop"]["result"]
    k = config["loop_images"]
    same = bool((ours_result.predictions[:k].cpu() == loop_predictions).all()
                and (ours_result.ha_predictions[:k].cpu() == loop_ha).all())
    rows.append(row(arch, "HAAS", "unit scaling, with maps", "camfaith", "2 fwd + 1 fwd+bwd", 1e3 * seconds / n,
                    allowed / seconds))
    rows.append(row(arch, "HAAS", "unit scaling, with maps", f"per-image loop ({k} images)", "2 fwd + 1 fwd+bwd",
                    1e3 * loop_seconds, loop_allowed / loop_seconds, loop_seconds / (seconds / n),
                    "same predictions" if same else "predictions differ"))
    result["checks"]["haas_loop_same_predictions"] = same

    compare_aopc(arch, config, model, images, hirescam_maps, targets, bounds, result, log)
    compare_sensitivity(arch, config, model, target_layer, explain, images, targets, bounds, result, log)
    profile_misses(arch, config, model, target_layer, explain, images, hirescam_maps, targets, labels, result)
    return result


def compare_aopc(arch, config, model, images, maps, targets, bounds, result, log):
    """The per-image loop, Quantus RegionPerturbation and ROAD against camfaith's AOPC.

    The loop is timed with camfaith's own noise (one uniform draw per image, from the same seed), so
    its scores must equal camfaith's; a constant baseline is checked as well, against the loop and
    against Quantus.
    """
    n, repeats, seed, rows = config["images"], config["repeats"], config["seed"], result["rows"]
    device, chunk, k = images.device, config["chunks"]["aopc"], config["loop_images"]
    regions = config["compare_regions"]
    steps = regions * regions + 1
    setting = f"{regions}x{regions}"
    subset, subset_maps, subset_targets = images[:k], maps[:k], targets[:k]
    quantus_fits = config["anchors"] and images.shape[-1] % regions == 0

    log(f"[{arch}] AOPC checks with a constant baseline")
    checks = result["checks"]
    constant = aopc(model, subset, subset_maps, regions, perturbation=0.0, targets=subset_targets).scores.cpu()
    looped = loop_aopc(model, subset, subset_maps, regions, subset_targets, fill=torch.zeros_like(subset)).cpu()
    checks["aopc_constant_loop_max_abs_difference"] = float((constant - looped).abs().max())
    if quantus_fits:
        # Quantus sorts cells by their attribution sum with an unstable sort: ties (zero cells of a
        # ReLU'd CAM) would be ordered differently, so this check uses maps without ties.
        tie_free = torch.rand(maps.shape, generator=torch.Generator().manual_seed(seed + 2)).to(device)
        ours_constant = aopc(model, images, tie_free, regions, perturbation=0.0, targets=targets).scores.cpu()
        theirs = quantus_region_perturbation(model, images, tie_free, targets, regions, chunk, 0.0)
        checks["aopc_constant_quantus_max_abs_difference"] = float((ours_constant - theirs).abs().max())

    log(f"[{arch}] AOPC timings: camfaith, loop and anchors")
    fill = (2 * torch.rand(images.shape, generator=torch.Generator().manual_seed(seed)) - 1).to(device)

    def ours_at(r):
        return lambda: aopc(model, images, maps, r, chunk_size=chunk, targets=targets,
                            generator=torch.Generator().manual_seed(seed))

    functions = {
        "camfaith": ours_at(regions),
        "loop": lambda: loop_aopc(model, subset, subset_maps, regions, subset_targets, fill=fill[:k]),
    }
    if quantus_fits:
        functions["quantus"] = lambda: quantus_region_perturbation(model, images, maps, targets, regions, chunk,
                                                                   "uniform")
    road_regions, road_images = config["road_regions"], config["road_images"]
    road = {}
    if config["anchors"]:
        # ROAD solves a sparse system per image and threshold on the CPU (seconds at 224 px), so it runs
        # on a subset. It is timed against camfaith's AOPC with as many removal steps: interleaved with
        # the others when that is the setting compared here, else on its own. The maps are jittered so
        # that every percentile threshold removes some pixels and keeps others.
        percentiles = [100 * (1 - j / road_regions**2) for j in range(1, road_regions**2)]
        noise = torch.rand(subset_maps.shape, generator=torch.Generator().manual_seed(seed + 3)).to(device)
        jittered = (subset_maps + 1e-4 * noise)[:road_images]
        road["road"] = lambda: road_morf(model, subset[:road_images], jittered, subset_targets[:road_images],
                                         percentiles)
    together = road_regions == regions and config["road_repeats"] == repeats
    bound = bounds.passes(("forward", chunk))
    run = timed({**functions, **(road if together else {}), **bound}, repeats, device, warmup=False)
    bounds.record(run)
    road_run = run
    if road and not together:
        road_run = timed({"camfaith": ours_at(road_regions), **road, **bound}, config["road_repeats"], device,
                         warmup=False)
        bounds.record(road_run)
    checks["aopc_uniform_loop_max_abs_difference"] = float(
        (run["camfaith"]["result"].scores[:k].cpu() - run["loop"]["result"].cpu()).abs().max())

    ours = 1e3 * run["camfaith"]["median"] / n
    loop_ms = 1e3 * run["loop"]["median"] / k
    rows.append(row(arch, "AOPC", setting, f"per-image loop ({k} images)", f"{steps} fwd", loop_ms,
                    bounds.seconds(run, steps, 0, chunk) * 1e3 / loop_ms, loop_ms / ours,
                    f"{checks['aopc_constant_loop_max_abs_difference']:.1e} (constant), "
                    f"{checks['aopc_uniform_loop_max_abs_difference']:.1e} (shared noise)"))
    if "quantus" in run:
        quantus_ms = 1e3 * run["quantus"]["median"] / n
        rows.append(row(arch, "AOPC", setting, "Quantus RegionPerturbation", f"{steps} fwd", quantus_ms,
                        bounds.seconds(run, steps, 0, chunk) * 1e3 / quantus_ms, quantus_ms / ours,
                        f"{checks['aopc_constant_quantus_max_abs_difference']:.1e} (constant)"))
    if config["anchors"]:
        road_ms = 1e3 * road_run["road"]["median"] / road_images
        road_passes = 2 * (road_regions**2 - 1)
        ours_road = 1e3 * road_run["camfaith"]["median"] / n
        rows.append(row(arch, "AOPC", f"{road_regions**2 - 1} thresholds",
                        f"pytorch-grad-cam ROAD, MoRF ({road_images} images)",
                        f"{road_passes} fwd", road_ms, bounds.seconds(road_run, road_passes, 0, chunk) * 1e3 / road_ms,
                        road_ms / ours_road, "different metric"))


def compare_sensitivity(arch, config, model, target_layer, explain, images, targets, bounds, result, log):
    """The per-image loop, Quantus MaxSensitivity and Captum sensitivity_max against camfaith's.

    All of them are timed with camfaith's noise (one block per sample from the same seed), so their
    scores must equal camfaith's: absolute distances for the loop, distances relative to the norm of
    the clean map for Captum and Quantus.
    """
    n, repeats, seed, rows = config["images"], config["repeats"], config["seed"], result["rows"]
    chunk, k = config["chunks"]["max_sensitivity"], config["loop_images"]
    radius, samples = config["compare_sensitivity"]
    setting = f"r={radius}, {samples} samples"
    passes = f"{samples + 1} fwd+bwd"
    subset, subset_targets = images[:k], targets[:k]
    blocks = noise_blocks(images, radius, samples, seed)

    log(f"[{arch}] Max-Sensitivity timings: camfaith, loop and anchors")
    functions = {
        "camfaith": lambda: max_sensitivity(explain, images, radius, samples, targets, chunk_size=chunk,
                                            generator=torch.Generator().manual_seed(seed)),
        "loop": lambda: loop_max_sensitivity(model, target_layer, subset, subset_targets, radius, samples,
                                             noise=lambda i, s: blocks[s][i]),
    }
    if config["anchors"]:
        functions["captum"] = lambda: captum_sensitivity_max(explain, images, targets, radius, samples, chunk, blocks)
        functions["quantus"] = lambda: quantus_max_sensitivity(explain, model, images, targets, radius, samples,
                                                               chunk, blocks)
    run = timed({**functions, **bounds.passes(("forward_backward", chunk))}, repeats, images.device, warmup=False)
    bounds.record(run)

    checks = result["checks"]
    ours_scores = run["camfaith"]["result"].scores.cpu().double()
    checks["sensitivity_loop_max_abs_difference"] = float((ours_scores[:k] - run["loop"]["result"]).abs().max())
    clean_norm = torch.linalg.vector_norm(explain(images, targets).flatten(1), dim=1).cpu().double()
    relative = ours_scores / torch.where(clean_norm == 0, torch.ones_like(clean_norm), clean_norm)
    for name in ("captum", "quantus"):
        if name in run:
            theirs = torch.as_tensor(run[name]["result"]).cpu().double()
            checks[f"sensitivity_{name}_max_abs_difference"] = float((relative - theirs).abs().max())

    ours_time = 1e3 * run["camfaith"]["median"] / n
    loop_ms = 1e3 * run["loop"]["median"] / k
    rows.append(row(arch, "Max-Sensitivity", setting, f"per-image loop ({k} images)", passes, loop_ms,
                    bounds.seconds(run, 0, samples + 1, 1, chunk) * 1e3 / loop_ms, loop_ms / ours_time,
                    f"{checks['sensitivity_loop_max_abs_difference']:.1e} (shared noise)"))
    for name, label in (("captum", "Captum sensitivity_max"), ("quantus", "Quantus MaxSensitivity")):
        if name in run:
            their_ms = 1e3 * run[name]["median"] / n
            rows.append(row(arch, "Max-Sensitivity", setting, label, passes, their_ms,
                            bounds.seconds(run, 0, samples + 1, 1, chunk) * 1e3 / their_ms, their_ms / ours_time,
                            f"{checks[f'sensitivity_{name}_max_abs_difference']:.1e} (shared noise, relative)"))


def profile_misses(arch, config, model, target_layer, explain, images, maps, targets, labels, result):
    """Profile one camfaith call for each metric (or the CAMs) that misses a target on this architecture."""
    seed, chunks = config["seed"], config["chunks"]
    calls = {
        "AOPC": lambda: aopc(model, images, maps, config["compare_regions"], chunk_size=chunks["aopc"],
                             generator=torch.Generator().manual_seed(seed)),
        "Max-Sensitivity": lambda: max_sensitivity(explain, images, *config["compare_sensitivity"], targets,
                                                   generator=torch.Generator().manual_seed(seed),
                                                   chunk_size=chunks["max_sensitivity"]),
        "HAAS": lambda: haas(model, images, labels, camfaith.cams(model, target_layer, images, targets)["hirescam"],
                             chunk_size=chunks["haas"]),
        "CAMs": lambda: camfaith.cams(model, target_layer, images, targets),
    }
    missed = set()
    for entry in result["rows"]:
        if entry["implementation"] == "camfaith" and entry["efficiency"] < TARGETS["efficiency"]:
            missed.add(entry["metric"])
        if entry["camfaith faster by"] is not None and entry["camfaith faster by"] <= 1:
            missed.add(entry["metric"])
    cams = result["cams"]
    if (cams["camfaith_over_one_library"] > TARGETS["cam_over_one_library"]
            or cams["two_library_over_camfaith"] < TARGETS["two_library_over_cam"]):
        missed.add("CAMs")
    for metric in sorted(missed):
        result["profiles"][metric] = profile(calls[metric])


# ----------------------------------------------------------------------------------------------
# The whole run
# ----------------------------------------------------------------------------------------------


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "torchvision", "grad-cam", "captum", "quantus", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def targets_summary(archs: list[dict], memory: dict | None) -> list[dict]:
    """Each target of the benchmark, its measured value per architecture and whether it is met."""
    summary = []
    for entry in archs:
        arch = entry["arch"]
        for r in entry["rows"]:
            if r["implementation"] == "camfaith":
                summary.append({"target": f"{r['metric']} {r['setting']}: efficiency >= {TARGETS['efficiency']}",
                                "arch": arch, "value": r["efficiency"],
                                "met": r["efficiency"] >= TARGETS["efficiency"]})
            elif r["camfaith faster by"] is not None:
                summary.append({"target": f"{r['metric']} {r['setting']}: faster than {r['implementation']}",
                                "arch": arch, "value": r["camfaith faster by"], "met": r["camfaith faster by"] > 1})
        cams = entry["cams"]
        summary.append({"target": f"both CAMs <= {TARGETS['cam_over_one_library']}x one pytorch-grad-cam method",
                        "arch": arch, "value": cams["camfaith_over_one_library"],
                        "met": cams["camfaith_over_one_library"] <= TARGETS["cam_over_one_library"]})
        summary.append({"target": f"two pytorch-grad-cam methods >= {TARGETS['two_library_over_cam']}x both CAMs",
                        "arch": arch, "value": cams["two_library_over_camfaith"],
                        "met": cams["two_library_over_camfaith"] >= TARGETS["two_library_over_cam"]})
    if memory:
        aopc_memory = memory["aopc"]
        summary.append({"target": "14x14 AOPC of VGG19 at 224 px fits 16 GB at the default chunk", "arch": "vgg19",
                        "value": aopc_memory["estimated_bytes_at_default_chunk"] / 2**30,
                        "met": aopc_memory["fits_16gb_at_default_chunk"]})
    return summary


def interpret(report: dict) -> list[str]:
    """Plain-language notes on what the numbers mean, and on every missed target."""
    m = report["machine"]
    notes = [
        "Efficiency divides the time the model's own passes take (at the metric's chunk size, timed interleaved "
        "with the metric) by the measured time, for every implementation of a metric alike, so the ratio of two "
        "efficiencies is their speed ratio.",
        "Max-Sensitivity and HAAS need explanations; the bound charges them a full forward + backward pass (to the "
        "input and every parameter), but camfaith's CAM backward stops at the target layer and runs through the "
        "head only, so their efficiency is above 1: they cost about one forward pass per explanation.",
        "Quantus and Captum were given camfaith's HiResCAM as their explanation function, so their rows measure "
        "the metric machinery alone; the per-image loops use pytorch-grad-cam's HiResCAM, as the original "
        "study's code did. ROAD is a different metric (pixel percentiles, linear imputation) with the same number "
        "of removal steps as AOPC at 4x4.",
    ]
    load = report["load_average"]["start"]
    if load > m["cores"] / 2:
        notes.append(f"The machine was shared (load average {load:.1f} on {m['cores']} cores at the start), so "
                     "absolute times are noisy; ratios come from interleaved runs of one process.")
    for arch in report["archs"]:
        for metric, found in arch["profiles"].items():
            share = 100 * found["model_share"]
            top = ", ".join(f"{op['op']} {100 * op['share']:.0f} %" for op in found["top"][:3])
            notes.append(f"{arch['arch']}, {metric} missed a target; in one profiled camfaith call {share:.0f} % of "
                         f"operator time is in the model's layers (largest: {top}).")
    memory = report.get("memory_estimate")
    if memory:
        aopc_memory = memory["aopc"]
        notes.append(
            f"Memory grows with the chunk, not with the number of perturbed images: 14x14 AOPC of VGG19 at 224 px "
            f"takes about {aopc_memory['per_image_bytes'] / 2**20:.0f} MiB per image in a chunk, so the default "
            f"chunk of {aopc_memory['default_chunk']} needs about "
            f"{aopc_memory['estimated_bytes_at_default_chunk'] / 2**30:.1f} GiB and a 16 GB GPU takes chunks up to "
            f"about {aopc_memory['largest_chunk_for_16gb']}. The images, their noise, removal masks and maps are "
            f"held for the whole batch passed in ({AOPC_INPUT_BYTES_224 / 2**20:.1f} MiB per image at 224 px), so "
            "pass a test set in batches.")
    return notes


def fmt(value, digits=2):
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}" if abs(value) >= 10 ** (-digits) else f"{value:.1e}"
    return str(value)


def markdown_table(records: list[dict], columns: list[str], digits: dict | None = None) -> str:
    digits = digits or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for record in records:
        lines.append("| " + " | ".join(fmt(record.get(c), digits.get(c, 2)) for c in columns) + " |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    m, config = report["machine"], report["config"]
    parts = [
        f"# Benchmark: {m['device_name']} ({m['device']}, {m['cores']} cores, {m['torch_threads']} torch threads)",
        "",
        f"{report['date']}; torch {m['versions']['torch']}; {config['images']} random images of "
        f"{config['input_size']} px; median of {config['repeats']} runs; chunk sizes {config['chunks']}; "
        f"{'quick' if config['quick'] else 'full'} settings; load average "
        f"{report['load_average']['start']:.1f} at start, {report['load_average']['end']:.1f} at end.",
        "",
        "## Metrics",
        "",
        "Efficiency: time the model's own passes take for the passes the metric needs (forward without grad; "
        "forward + full backward) divided by the measured time. camfaith's CAM backward stops at the target "
        "layer, so metrics that explain (Max-Sensitivity, HAAS) can exceed 1.",
        "",
    ]
    rows = [r for a in report["archs"] for r in a["rows"]]
    parts.append(markdown_table(rows, ["arch", "metric", "setting", "implementation", "passes per image",
                                       "ms per image", "efficiency", "camfaith faster by", "agreement"],
                                {"ms per image": 1}))
    parts += ["", "## Grad-CAM and HiResCAM", ""]
    cams = [{"arch": a["arch"], **{k: v for k, v in a["cams"].items() if k != "max_abs_difference"},
             "max abs difference": max(a["cams"]["max_abs_difference"].values())} for a in report["archs"]]
    parts.append(markdown_table(cams, ["arch", "images", "camfaith_ms_per_image", "gradcam_ms_per_image",
                                       "hirescam_ms_per_image", "camfaith_over_one_library",
                                       "two_library_over_camfaith", "max abs difference"], {"max abs difference": 1}))
    parts += ["", "## The bound (images per second)", "",
              "Timed alongside each metric; the median over those measurements, and the lowest and highest.", ""]
    bounds = [{"arch": a["arch"], **b} for a in report["archs"] for b in a["bound"]]
    parts.append(markdown_table(bounds, ["arch", "pass", "batch", "measurements", "images_per_s", "lowest", "highest"],
                                {"images_per_s": 1, "lowest": 1, "highest": 1}))
    parts += ["", "## Peak memory", ""]
    memory_rows = [{"arch": a["arch"], "metric": k, "chunk": v["chunk"], "MiB": v["bytes"] / 2**20}
                   for a in report["archs"] for k, v in a.get("memory", {}).items()]
    parts.append(markdown_table(memory_rows, ["arch", "metric", "chunk", "MiB"], {"MiB": 1}))
    estimate = report.get("memory_estimate")
    if estimate:
        parts += ["", "VGG19 at 224 px (weights "
                  f"{estimate['weights_bytes'] / 2**20:.0f} MiB), measured at chunks {estimate['chunks']}:", ""]
        memory_table = [{"metric": k, "MiB per image in a chunk": v["per_image_bytes"] / 2**20,
                         "fixed MiB": v["fixed_bytes"] / 2**20, "default chunk": v["default_chunk"],
                         "GiB at default chunk (+20 %)": v["estimated_bytes_at_default_chunk"] / 2**30,
                         "largest chunk for 16 GB": v["largest_chunk_for_16gb"]}
                        for k, v in estimate.items() if isinstance(v, dict)]
        parts.append(markdown_table(memory_table, list(memory_table[0]), {"MiB per image in a chunk": 1}))
    parts += ["", "## Targets", ""]
    parts.append(markdown_table(report["targets"], ["target", "arch", "value", "met"]))
    checks = [{"arch": a["arch"], "check": k, "value": v} for a in report["archs"] for k, v in a["checks"].items()]
    parts += ["", "## Agreement checks", "", markdown_table(checks, ["arch", "check", "value"], {"value": 1})]
    profiles = [(a["arch"], metric, ops) for a in report["archs"] for metric, ops in a["profiles"].items()]
    if profiles:
        parts += ["", "## Profiles of camfaith calls that missed a target", ""]
        for arch, metric, ops in profiles:
            parts += [f"**{arch}, {metric}**: {100 * ops['model_share']:.0f} % of operator time in the model's layers",
                      "", markdown_table(ops["top"], ["op", "self_cpu_ms", "share", "calls"]), ""]
    if report.get("notes"):
        parts += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(parts) + "\n"


def configure(args) -> tuple[torch.device, dict]:
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available; use --device cpu")
    gpu = device.type == "cuda"
    quick = (not gpu) if args.quick is None else args.quick
    size = args.input_size or (224 if gpu else 64)
    archs = args.archs or ("resnet34,resnet50,vgg19" if gpu else "resnet18,vgg11")
    chunks = dict(DEFAULT_CHUNKS) if args.chunk_size is None else dict.fromkeys(DEFAULT_CHUNKS, args.chunk_size)
    images = args.images or (16 if gpu else 4)
    config = {
        "archs": [a.strip() for a in archs.split(",") if a.strip()],
        "input_size": size,
        "small_input": not gpu if args.small_input is None else args.small_input,
        "images": images,
        "loop_images": min(images, 4 if gpu else 2),
        "repeats": args.repeats,
        "chunks": chunks,
        "quick": quick,
        "regions": QUICK_REGIONS if quick else SEED_REGIONS,
        "sensitivity": QUICK_SENSITIVITY if quick else SEED_SENSITIVITY,
        "compare_regions": 4 if quick else 8,
        "road_regions": 4,
        "road_images": min(images, 4 if gpu else 2) if size <= 64 else 1,
        "road_repeats": args.repeats if size <= 64 else 1,
        "compare_sensitivity": SEED_SENSITIVITY[0],
        "anchors": not args.no_anchors,
        "seed": args.seed,
    }
    if max(config["regions"]) > size:
        raise SystemExit(f"--input-size {size} is smaller than {max(config['regions'])} regions")
    return device, config


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                        help="default auto: CUDA when available")
    parser.add_argument("--archs", help="comma-separated; default resnet18,vgg11 (CPU), resnet34,resnet50,vgg19 (GPU)")
    parser.add_argument("--input-size", type=int, help="pixels; default 64 on CPU, 224 on GPU")
    parser.add_argument("--small-input", action=argparse.BooleanOptionalAction,
                        help="remove downsampling so the target map stays >= 7x7; default on CPU only")
    parser.add_argument("--images", type=int, help="images per batch; default 4 on CPU, 16 on GPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement, median reported (3)")
    parser.add_argument("--chunk-size", type=int, help="one chunk size for every metric; default each metric's own")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction,
                        help="AOPC 4x4 and 8x8, Max-Sensitivity (0.05, 20) and (0.5, 40); default on CPU only")
    parser.add_argument("--no-anchors", action="store_true", help="skip Quantus, Captum and ROAD")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--threads", type=int, help="torch CPU threads; default torch's own (the core count)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the images and the noise (0)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results folder (benchmarks/results)")
    parser.add_argument("--memory-jobs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_jobs:  # the child process of measure_memory
        print(json.dumps([memory_job(job, torch.device("cpu")) for job in json.loads(args.memory_jobs)]))
        return {}

    device, config = configure(args)
    torch.manual_seed(config["seed"])
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    def log(message):
        print(f"{time.perf_counter() - started:7.1f}s  {message}", file=sys.stderr, flush=True)

    archs, jobs = [], []
    for arch in config["archs"]:
        result = benchmark_arch(arch, config, device, log)
        result["bound"] = result.pop("bounds").table()
        archs.append(result)
        # peak memory of one call per metric at its chunk size, with enough images or samples to fill a chunk
        n, chunks = config["images"], config["chunks"]
        common = {"arch": arch, "size": config["input_size"], "small_input": config["small_input"], "images": n}
        jobs += [
            {**common, "metric": "aopc", "chunk": chunks["aopc"],
             "regions": max(2, math.ceil(math.sqrt(chunks["aopc"] / n)))},
            {**common, "metric": "max_sensitivity", "chunk": chunks["max_sensitivity"],
             "n_samples": math.ceil(chunks["max_sensitivity"] / n)},
            {**common, "metric": "haas", "chunk": chunks["haas"]},
            {**common, "metric": "cams", "chunk": n},
            {**common, "metric": "forward", "chunk": n},
        ]
    memory = None
    if not args.no_memory:
        log("memory: each metric at its chunk size, and VGG19 at 224 px per image")
        memory, peaks = memory_estimate(device, jobs)
        for result in archs:
            result["memory"] = {job["metric"]: {"chunk": job["chunk"], "bytes": peak}
                                for job, peak in zip(jobs, peaks) if job["arch"] == result["arch"]}

    date = datetime.datetime.now().strftime("%Y-%m-%d")
    report = {
        "date": date,
        "machine": machine(device),
        "config": {**config, "chunks": config["chunks"]},
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "seconds": time.perf_counter() - started,
        "archs": archs,
        "memory_estimate": memory,
        "targets": targets_summary(archs, memory),
        "seed_reference": {"aopc_14x14_s_per_image_v100": 2.2, "max_sensitivity_s_per_image_v100_up_to": 1.2},
    }
    report["notes"] = interpret(report)
    write(report, args.output, device)
    log(f"done in {report['seconds']:.0f} s")
    return report


def write(report: dict, folder: Path, device: torch.device) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{device.type}-{report['date']}"
    text = markdown(report)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    stem.with_suffix(".md").write_text(text)
    for suffix in (".json", ".md"):
        shutil.copyfile(stem.with_suffix(suffix), folder / f"latest-{device.type}{suffix}")
    print(text)


if __name__ == "__main__":
    main()
