"""How the benchmark measures: wall time, peak memory, operator profiles, the machine, and the bound.

The bound is the model's own throughput: a forward pass without gradients, and a forward plus a full
backward pass (to the input and every parameter, as in a training step), on a fixed batch. It is
timed interleaved with the metrics it is the yardstick for, so that a change in the machine's load
hits both alike. Nothing here knows about CAMs or metrics: every function takes the calls to measure.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "grad-cam", "captum", "quantus", "numpy")
# Operators of the model's own layers, to tell the share of a profile spent in the model.
MODEL_OPS = ("conv", "mkldnn", "cudnn", "addmm", "mm", "linear", "batch_norm", "relu", "threshold", "pool", "gemm")


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a wall-clock interval covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(functions: dict, repeats: int, device: torch.device, warmup: bool = True) -> dict:
    """Median wall time of each function, run interleaved ``repeats`` times after one warm-up each.

    Interleaving (every function once per repeat) makes a change in the machine's load hit all of
    them alike. Returns ``{name: {"runs": [s, ...], "result": last return value, "median": s}}``.
    """
    runs = {name: [] for name in functions}
    results = {name: function() for name, function in functions.items()} if warmup else dict.fromkeys(functions)
    for _ in range(repeats):
        for name, function in functions.items():
            gc.collect()
            synchronize(device)
            start = time.perf_counter()
            results[name] = function()
            synchronize(device)
            runs[name].append(time.perf_counter() - start)
    return {name: {"runs": runs[name], "result": results[name], "median": statistics.median(runs[name])}
            for name in functions}


def random_images(n: int, size: int, device: torch.device, seed: int) -> torch.Tensor:
    """``n`` random RGB images in [-1, 1] (the models' input range), from their own random seed."""
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, 3, size, size, generator=generator) - 1).to(device)


class Bound:
    """The model's own passes, to be timed interleaved with the metrics they are the yardstick for.

    ``passes(("forward", 64), ...)`` gives functions to add to a :func:`timed` call: one forward pass
    without grad, or one forward plus full backward pass (to the input and every parameter, as in a
    training step), on a fixed batch of that size. ``seconds(run, ...)`` then reads that call's medians,
    so the bound and the metric see the same machine load; :func:`bound_table` sums up all the calls.
    """

    def __init__(self, model, size: int, device: torch.device, seed: int):
        self.model, self.size, self.device, self.seed = model, size, device, seed
        self._batches = {}  # one fixed batch per size, drawn when first needed

    def _images(self, batch: int) -> torch.Tensor:
        if batch not in self._batches:
            self._batches[batch] = random_images(batch, self.size, self.device, self.seed + batch)
        return self._batches[batch]

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
        """``{"bound <kind> <batch>": function}`` for each ``(kind, batch)``, kind "forward" or "forward_backward"."""
        return {f"bound {kind} {batch}": self._function(kind, batch) for kind, batch in needs}

    def warm_up(self, *needs: tuple[str, int]) -> None:
        for function in self.passes(*needs).values():
            function()

    @staticmethod
    def per_image(run: dict, kind: str, batch: int) -> float:
        return run[f"bound {kind} {batch}"]["median"] / batch

    def seconds(self, run: dict, forwards: int, forward_backwards: int, batch_forward: int = 1,
                batch_backward: int = 1) -> float:
        """Time the bound allows for ``forwards`` and ``forward_backwards`` passes of one image each."""
        total = 0.0
        if forwards:
            total += forwards * self.per_image(run, "forward", batch_forward)
        if forward_backwards:
            total += forward_backwards * self.per_image(run, "forward_backward", batch_backward)
        return total


def bound_table(runs: list[dict]) -> list[dict]:
    """Images per second of each bound pass over the :func:`timed` calls ``runs``: the median, and the range."""
    observed = {}
    for run in runs:
        for name, entry in run.items():
            if name.startswith("bound "):
                _, kind, batch = name.split()
                observed.setdefault((kind, int(batch)), []).append(entry["median"] / int(batch))
    return [{"pass": kind, "batch": batch, "measurements": len(times),
             "images_per_s": 1 / statistics.median(times), "lowest": 1 / max(times), "highest": 1 / min(times)}
            for (kind, batch), times in sorted(observed.items())]


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


def peak_bytes(function, device: torch.device) -> int:
    """Peak memory one call of ``function`` allocates above the level before it.

    On a GPU, ``torch.cuda.max_memory_allocated``; on the CPU, the resident set sampled by
    :class:`PeakRSS` (it follows the live tensors only where the allocator returns freed memory).
    """
    if device.type != "cuda":
        with PeakRSS() as sampler:
            function()
        return int(sampler.peak)
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    function()
    synchronize(device)
    return int(torch.cuda.max_memory_allocated(device) - start)


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


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo``, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine(device: torch.device) -> dict:
    """Where the timings were taken: device, CPU, cores, torch threads, platform and package versions."""
    cpu = cpu_name()
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: package_version(package) for package in PACKAGES},
    }
