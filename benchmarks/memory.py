"""Peak memory of each metric at its chunk size, and the per-image memory of VGG19 at 224 px.

A job is a dict that describes one metric call (architecture, image size, metric, images, chunk);
:func:`memory_job` builds its model and inputs, so that they are not counted, and returns the peak
bytes of the call. On the CPU the jobs run in a child process (this file run as a script) whose
allocator returns freed memory to the system, so that the resident set follows the live tensors.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
from harness import peak_bytes, random_images
from settings import DEFAULT_CHUNKS, GPU_MEMORY, NUM_CLASSES

import camfaith
from camfaith.metrics import aopc, haas, max_sensitivity

ESTIMATE_CHUNKS = (1, 2, 4)  # the chunk sizes the per-image memory of VGG19 is fitted on


def _no_grad(model, images):
    with torch.no_grad():
        return model(images)


@functools.cache
def built_model(arch: str, size: int, small_input: bool, variant: str, device: torch.device):
    """The network of a job, built once per process (initialising VGG19 takes seconds on a CPU)."""
    model, target_layer = camfaith.build_model(arch, NUM_CLASSES, input_size=size, small_input=small_input,
                                               variant=variant)
    return model.to(device), target_layer


def memory_job(job: dict, device: torch.device) -> int:
    """Peak bytes of the one metric call described by ``job`` (the model and inputs are built first)."""
    model, target_layer = built_model(job["arch"], job["size"], job["small_input"], job["variant"], device)
    images = random_images(job["images"], job["size"], device, seed=1)
    targets = torch.zeros(job["images"], dtype=torch.long, device=device)
    maps = torch.rand(job["images"], job["size"], job["size"], device=device)
    explain = camfaith.explainer(model, target_layer, "hirescam")
    generator = torch.Generator().manual_seed(0)
    def aopc_on(incremental: bool):
        return lambda: aopc(model, images, maps, job.get("regions", 8), generator=generator, chunk_size=job["chunk"],
                            incremental=incremental)

    calls = {
        "aopc": aopc_on(False),
        "aopc_incremental": aopc_on(True),
        "max_sensitivity": lambda: max_sensitivity(
            explain, images, 0.05, job.get("n_samples", 2), targets, generator=generator, chunk_size=job["chunk"]
        ),
        "haas": lambda: haas(model, images, targets, maps, chunk_size=job["chunk"]),
        "cams": lambda: camfaith.cams(model, target_layer, images[: job["chunk"]], targets[: job["chunk"]]),
        "forward": lambda: _no_grad(model, images[: job["chunk"]]),
    }
    return peak_bytes(calls[job["metric"]], device)


def measure_memory(jobs: list[dict], device: torch.device) -> list[int]:
    """Peak bytes of each job. On the CPU the jobs run in a fresh process whose allocator returns freed
    memory to the system (``MALLOC_MMAP_THRESHOLD_``), so that resident memory follows live tensors."""
    if device.type == "cuda":
        peaks = [memory_job(job, device) for job in jobs]
        built_model.cache_clear()
        return peaks
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    completed = subprocess.run(
        [sys.executable, __file__, str(torch.get_num_threads()), json.dumps(jobs)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def arch_jobs(arch: str, config: dict) -> list[dict]:
    """One call per metric at its chunk size, with enough images or samples to fill a chunk (AOPC on each of
    its paths: ``aopc`` the full forward one, ``aopc_incremental`` the incremental one), and the CAMs and one
    forward pass of the batch."""
    n, chunks = config["images"], config["chunks"]
    common = {"arch": arch, "size": config["input_size"], "small_input": config["small_input"],
              "variant": config["variant"], "images": n}
    regions = max(2, math.ceil(math.sqrt(chunks["aopc"] / n)))
    return [
        {**common, "metric": "aopc", "chunk": chunks["aopc"], "regions": regions},
        {**common, "metric": "aopc_incremental", "chunk": chunks["aopc"], "regions": regions},
        {**common, "metric": "max_sensitivity", "chunk": chunks["max_sensitivity"],
         "n_samples": math.ceil(chunks["max_sensitivity"] / n)},
        {**common, "metric": "haas", "chunk": chunks["haas"]},
        {**common, "metric": "cams", "chunk": n},
        {**common, "metric": "forward", "chunk": n},
    ]


def vgg19_jobs(device: torch.device) -> list[dict]:
    """14x14 AOPC on its full-forward path (2x2 on the CPU, where 14x14 takes minutes and has the same
    per-image slope) and Max-Sensitivity of one image of VGG19 (with the surgery of Lamprou 2023) at 224 px,
    at each of :data:`ESTIMATE_CHUNKS`."""
    regions = 14 if device.type == "cuda" else 2
    common = {"arch": "vgg19", "size": 224, "small_input": False, "variant": "thesis", "images": 1}
    return [{**common, "metric": "aopc", "regions": regions, "chunk": c} for c in ESTIMATE_CHUNKS] + [
        {**common, "metric": "max_sensitivity", "n_samples": max(ESTIMATE_CHUNKS), "chunk": c} for c in ESTIMATE_CHUNKS
    ]


def fit_estimate(metric: str, peaks: list[int], weights: int) -> dict:
    """The slope (bytes per image in a chunk) and intercept of peak memory against chunk size, and what
    they give at the metric's default chunk on a 16 GB GPU (weights included, plus 20 % for the allocator
    and cuDNN workspaces)."""
    slope, intercept = np.polyfit(ESTIMATE_CHUNKS, peaks, 1)
    default = DEFAULT_CHUNKS[metric]
    needed = 1.2 * (weights + intercept + slope * default)
    return {
        "peak_bytes": [int(p) for p in peaks],
        "per_image_bytes": float(slope),
        "fixed_bytes": float(intercept),
        "default_chunk": default,
        "estimated_bytes_at_default_chunk": float(needed),
        "fits_16gb_at_default_chunk": bool(needed < GPU_MEMORY),
        "largest_chunk_for_16gb": int((GPU_MEMORY / 1.2 - weights - intercept) // max(slope, 1)),
    }


def measure(config: dict, device: torch.device) -> tuple[dict, dict]:
    """The VGG19 estimate, and each architecture's peak memory per metric: ``(estimate, {arch: {metric: ...}})``.

    All jobs run in one process start on the CPU. The slope of peak memory against chunk size is the
    memory one more image in a chunk costs; the intercept holds what does not depend on the chunk
    (the images, their noise and masks).
    """
    estimate_jobs = vgg19_jobs(device)
    jobs = [job for arch in config["archs"] for job in arch_jobs(arch, config)]
    peaks = measure_memory(estimate_jobs + jobs, device)
    model, _ = camfaith.build_model("vgg19", NUM_CLASSES, input_size=224, variant="thesis")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    count = len(ESTIMATE_CHUNKS)
    estimate = {"weights_bytes": weights, "chunks": list(ESTIMATE_CHUNKS), "gpu_bytes": GPU_MEMORY}
    for index, metric in enumerate(("aopc", "max_sensitivity")):
        estimate[metric] = fit_estimate(metric, peaks[index * count : (index + 1) * count], weights)
    arch_peaks = list(zip(jobs, peaks[len(estimate_jobs):]))
    per_arch = {arch: {job["metric"]: {"chunk": job["chunk"], "bytes": peak} for job, peak in arch_peaks
                       if job["arch"] == arch} for arch in config["archs"]}
    return estimate, per_arch


if __name__ == "__main__":  # the child process of measure_memory: python memory.py THREADS JOBS
    torch.set_num_threads(int(sys.argv[1]))
    print(json.dumps([memory_job(job, torch.device("cpu")) for job in json.loads(sys.argv[2])]))
