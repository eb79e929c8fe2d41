"""What the study's metrics cost: camfaith against the model's own passes, a per-image loop and other libraries.

For each architecture this script measures, in one run and on one batch of random images:

1. the bound: the model's throughput for a forward pass without gradients and for a forward plus a
   full backward pass (to the input and every parameter, as in a training step), at the batch sizes
   the metrics use;
2. Grad-CAM and HiResCAM from one :func:`camfaith.cams` call against pytorch-grad-cam's ``GradCAM``
   and ``HiResCAM`` run one after the other on the same batch;
3. :func:`camfaith.aopc`, :func:`camfaith.max_sensitivity` and :func:`camfaith.haas` at the settings
   of Lamprou (2023), as time per image and as efficiency: the time the bound allows for the passes a
   metric needs divided by the measured time (1 means "costs exactly its passes");
4. the same metrics computed by a straightforward per-image loop (one image and one step at a time),
   and checked against ours where the randomness can be shared;
5. the anchors: Quantus ``MaxSensitivity`` and ``RegionPerturbation``, Captum ``sensitivity_max`` and
   pytorch-grad-cam's ``ROADMostRelevantFirstAverage``;
6. peak memory per metric at its chunk size, and the per-image memory of VGG19 at 224 px, from which
   the largest chunk that fits a 16 GB GPU is estimated.

Every timing is the median of ``--repeats`` runs after a warm-up of the model; timings compared with
each other, and the bound, are taken interleaved, so that a change in machine load affects all sides
alike. AOPC is timed on both of its paths, incremental and full forward, and a short crossover table
says where the incremental one pays off. ``--setting`` picks the defaults: ``quick`` (64 px, the CPU's
default), ``full224`` (the networks of Lamprou 2023 at 224 px, sized for one CPU thread) or
``full`` (the GPU's default). Results go to ``benchmarks/results/<label>-<date>.json`` and ``.md``,
copied to ``latest-<label>.json`` / ``.md``; the label is the device, followed by the input size
unless that is 64 px (``latest-cpu.json``, ``latest-cpu-224.json``, ``latest-cuda-224.json``).

This file is the command line only. The measurements live beside it: ``harness`` (timing, memory
sampling, the bound), ``measure`` and ``compare`` (one architecture), ``crossover`` (where incremental
AOPC pays off), ``baselines`` (per-image loops), ``anchors`` (the other libraries), ``memory``,
``targets`` and ``report`` (the result files). Run ``python benchmarks/run.py --help`` for the
options, or ``make benchmark``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import memory
import targets
import torch
from harness import machine
from measure import benchmark_arch
from report import interpret, write
from settings import (
    CROSSOVER_IMAGES,
    CROSSOVER_REGIONS,
    CROSSOVER_SIZES,
    CROSSOVER_STEPS,
    DEFAULT_CHUNKS,
    DEVICE_SETTINGS,
    ORIGINAL_STUDY_TIMINGS,
    SETTINGS,
    TABLE6_SENSITIVITY,
)

from camfaith.device import resolve_device
from camfaith.parameters import check_positive_integers, parse_list

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("intact", "thesis")


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                         help="default auto: CUDA when available")
    options.add_argument("--setting", choices=tuple(SETTINGS),
                         help="the defaults of the options below: quick (64 px; the CPU's default), full224 (VGG19, "
                              "ResNet50 at 224 px, sized for one CPU thread; add resnet34 with --archs) or full "
                              "(the GPU's default)")
    options.add_argument("--archs", help="comma-separated architectures; default the setting's")
    options.add_argument("--input-size", type=int, help="pixels; default the setting's (64 quick, 224 full)")
    options.add_argument("--small-input", action=argparse.BooleanOptionalAction,
                         help="remove downsampling so the target map stays >= 7x7; default on in the quick setting")
    options.add_argument("--variant", choices=VARIANTS,
                         help="model surgery (camfaith.build_model): intact in the quick setting, else thesis")
    options.add_argument("--images", type=int, help="images per batch; default 4 quick, 2 full224, 16 full")
    options.add_argument("--repeats", type=int, help="timed runs per measurement, median reported; default 3 "
                                                     "(1 in full224)")
    options.add_argument("--chunk-size", type=int, help="one chunk size for every metric; default each metric's own")
    options.add_argument("--no-anchors", action="store_true", help="skip Quantus, Captum and ROAD")
    options.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    options.add_argument("--no-crossover", action="store_true", help="skip the crossover table of incremental AOPC")
    options.add_argument("--threads", type=int, help="torch CPU threads; default torch's own (the core count)")
    options.add_argument("--seed", type=int, default=0, help="random seed of the images and the noise (0)")
    options.add_argument("--output", type=Path, default=RESULTS, help="results folder (benchmarks/results)")
    return options


def checked_options(args) -> tuple[torch.device, str, list[str]]:
    """The device, the setting and the architectures; a ``ValueError`` for a bad value, naming it."""
    device = resolve_device(args.device)
    given = {name: value for name, value in (("--input-size", args.input_size), ("--images", args.images),
                                             ("--chunk-size", args.chunk_size), ("--threads", args.threads),
                                             ("--repeats", args.repeats)) if value is not None}
    check_positive_integers(**given)
    setting = args.setting or DEVICE_SETTINGS.get(device.type, "quick")
    archs = list(SETTINGS[setting]["archs"]) if args.archs is None else parse_list(args.archs, str, allow_empty=True)
    return device, setting, archs


def configure(args) -> tuple[torch.device, dict]:
    """The device and the run's settings: the CLI's values, else the defaults of the setting."""
    try:
        device, setting, archs = checked_options(args)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    preset = SETTINGS[setting]
    size = args.input_size or preset["input_size"]
    images = args.images or preset["images"]
    repeats = args.repeats or preset["repeats"]
    loop_images = min(images, preset["loop_images"])
    config = {
        "setting": setting,
        "archs": archs,
        "input_size": size,
        "small_input": preset["small_input"] if args.small_input is None else args.small_input,
        "variant": args.variant or preset["variant"],
        "images": images,
        "loop_images": loop_images,
        "repeats": repeats,
        "chunks": dict(preset["chunks"]) if args.chunk_size is None else dict.fromkeys(DEFAULT_CHUNKS, args.chunk_size),
        "regions": preset["regions"],
        "full_regions": preset["full_regions"],
        "sensitivity": preset["sensitivity"],
        "compare_regions": preset["compare_regions"],
        "road_regions": 4,
        "road_images": loop_images if size <= 64 else 1,
        "road_repeats": repeats if size <= 64 else 1,
        "compare_sensitivity": TABLE6_SENSITIVITY[0],
        "crossover": None if args.no_crossover else {"sizes": CROSSOVER_SIZES, "regions": CROSSOVER_REGIONS,
                                                     "steps": CROSSOVER_STEPS, "images": CROSSOVER_IMAGES},
        "anchors": not args.no_anchors,
        "seed": args.seed,
    }
    if max(config["regions"]) > size:
        raise SystemExit(f"--input-size {size} is smaller than {max(config['regions'])} regions")
    return device, config


def label(device: torch.device, config: dict) -> str:
    """The name of the result files: the device, then the input size unless it is 64 px."""
    return device.type if config["input_size"] == 64 else f"{device.type}-{config['input_size']}"


def main(argv=None) -> dict:
    """Run the benchmark with the options ``argv``; write and print the results, and return the report."""
    args = parser().parse_args(argv)
    device, config = configure(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(config["seed"])
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    def log(message):
        print(f"{time.perf_counter() - started:7.1f}s  {message}", file=sys.stderr, flush=True)

    archs = [benchmark_arch(arch, config, device, log) for arch in config["archs"]]
    estimate = None
    if not args.no_memory:
        log("memory: each metric at its chunk size, and VGG19 at 224 px per image")
        estimate, per_arch = memory.measure(config, device)
        archs = [{**entry, "memory": per_arch[entry["arch"]]} for entry in archs]
    report = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d"),
        "label": label(device, config),
        "machine": machine(device),
        "config": config,
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "seconds": time.perf_counter() - started,
        "archs": archs,
        "memory_estimate": estimate,
        "targets": targets.summary(archs, estimate, config),
        "original_study_timings": ORIGINAL_STUDY_TIMINGS,
    }
    report["notes"] = interpret(report)
    print(write(report, args.output))
    log(f"done in {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
