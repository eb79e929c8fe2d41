"""Float32 against bfloat16 autocast and channels_last: how far the metric scores move, and how much time it saves.

The three networks of the thesis configurations (ResNet34, ResNet50, VGG19 at 224 px, the stripping
of section 4.2 of Lamprou 2023, random seeded weights) score a few synthetic images twice: once as
the report runs by default (float32, contiguous), once with the GPU settings
(bfloat16 autocast, :func:`camfaith.device.forward_precision`, and channels_last). Both runs score the
same float32 CAMs, computed once, with the same seeds, through the chapters' own functions
(:mod:`camfaith.scoring`): AOPC at every heatmap size, Max-Sensitivity at one radius, HAAS with the
three scalings. Per metric it reports the largest and the mean absolute change of the per-image
scores (and the mean change over the mean absolute score; HAAS per image: whether the HA image is
classified right), whether HiResCAM minus Grad-CAM keeps its sign (averaged over the images, and
image by image), and the wall time of each run.

Max-Sensitivity's passes are CAM passes, which the report keeps in float32, so its candidate run
changes the memory format only; a further row runs those CAM passes under bfloat16 autocast too (maps
returned in float32), to measure what that choice avoids.

    .venv/bin/python benchmarks/precision.py --device cuda     # on one GPU, in about a minute
    .venv/bin/python benchmarks/precision.py --device cpu      # a dry run: float32, contiguous vs channels_last

On the CPU bfloat16 is refused (:func:`camfaith.device.check_precision`), so the dry run compares
float32 with float32 + channels_last, on one image and a 2x2 grid, to check the script end to end.
Writes ``benchmarks/results/precision-<device>.md`` and ``.json`` (atomically).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from harness import machine, synchronize

from camfaith.cams import METHODS, explain, explainer
from camfaith.data.synthetic import make_synthetic
from camfaith.device import resolve_device, set_memory_format
from camfaith.io import atomic_path, save_json
from camfaith.metrics.checks import model_logits
from camfaith.models import build_model
from camfaith.parameters import parse_list
from camfaith.scoring import aopc_scores, haas_scores, sensitivity_scores

NUM_CLASSES = 4
SCALINGS = ("centered", "unit", "signed")
DEFAULTS = {  # per device type: the GPU run, and the CPU dry run
    "cuda": {"images": 32, "regions": "4,8,11,14", "samples": 10, "aopc_chunk": 256, "chunk": 128},
    "cpu": {"images": 1, "regions": "2", "samples": 1, "aopc_chunk": 64, "chunk": 8},
}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cpu (a dry run) or auto")
    parser.add_argument("--archs", default="resnet34,resnet50,vgg19")
    parser.add_argument("--images", type=int, help="synthetic 224 px images (default 32 on a GPU, 1 on the CPU)")
    parser.add_argument("--regions", help="AOPC heatmap sizes (default 4,8,11,14 on a GPU, 2 on the CPU)")
    parser.add_argument("--radius", type=float, default=0.05, help="the Max-Sensitivity radius")
    parser.add_argument("--samples", type=int, help="Max-Sensitivity samples (default 10 on a GPU, 1 on the CPU)")
    parser.add_argument("--seed", type=int, default=0, help="images, weights and the metrics' noise")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)
    defaults = DEFAULTS[args.device.type]
    for name in ("images", "regions", "samples"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    args.aopc_chunk, args.chunk = defaults["aopc_chunk"], defaults["chunk"]
    return args


def candidate(device: torch.device) -> dict:
    """The setting compared with float32 + contiguous: bfloat16 + channels_last on CUDA, channels_last on the CPU."""
    return {"precision": "bfloat16" if device.type == "cuda" else "float32", "channels_last": True}


def autocast_cams(explain_function):
    """The what-if of the module docstring: a CAM explainer whose passes run under CUDA bfloat16 autocast."""
    def explain_in_bfloat16(images, targets=None):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            maps = explain_function(images, targets)
        return maps.float()

    return explain_in_bfloat16


def timed_call(function, device: torch.device):
    """``(result, seconds)`` of one call, the GPU's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def score_all(model, target_layer, batch: dict, args, precision: str = "float32",
              autocast_explainers: bool = False) -> dict:
    """Per-image frames and wall times of the three metrics, scored in ``precision`` on the model's memory format."""
    images, ids, targets = batch["images"], batch["ids"], batch["targets"]
    explainers = {method: explainer(model, target_layer, method) for method in METHODS}
    if autocast_explainers:
        explainers = {method: autocast_cams(function) for method, function in explainers.items()}
    calls = {
        "aopc": lambda: aopc_scores(model, images, ids, batch["cams"], parse_list(args.regions, int), targets,
                                    args.seed, chunk_size=args.aopc_chunk, precision=precision)[0],
        "max_sensitivity": lambda: sensitivity_scores(explainers, images, ids, targets, [args.radius],
                                                      [args.samples], args.seed, chunk_size=args.chunk),
        "haas": lambda: haas_scores(model, images, batch["labels"], ids, batch["maps"], SCALINGS, precision),
    }
    if autocast_explainers:
        calls = {"max_sensitivity": calls["max_sensitivity"]}
    with torch.no_grad():  # warm-up, untimed: the first passes of a setting load its kernels
        model_logits(model, images, precision)
    explainers["hirescam"](images[:1], targets[:1])
    return {name: timed_call(call, args.device) for name, call in calls.items()}


SCORE = {"aopc": "aopc", "max_sensitivity": "max_sensitivity", "haas": "ha_correct"}
KEYS = {"aopc": ["regions"], "max_sensitivity": ["normalized"], "haas": ["scaling"]}


def per_image(metric: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The CAMs' per-image scores of a metric frame (HAAS: whether the HA image is classified right)."""
    frame = frame[frame["method"].isin(METHODS)].copy()
    if metric == "haas":
        frame["ha_correct"] = (frame["ha_prediction"] == frame["label"]).astype(float)
    if metric == "max_sensitivity":
        frame = frame[~frame["normalized"]]
    return frame[["id", "method", *KEYS[metric], SCORE[metric]]].rename(columns={SCORE[metric]: "score"})


def compare(metric: str, reference: pd.DataFrame, other: pd.DataFrame) -> dict:
    """Changes of the per-image scores and whether HiResCAM - Grad-CAM keeps its sign."""
    keys = ["id", "method", *KEYS[metric]]
    both = per_image(metric, reference).merge(per_image(metric, other), on=keys, suffixes=("", "_other"))
    change = (both["score_other"] - both["score"]).abs()
    wide = both.pivot_table(index=["id", *KEYS[metric]], columns="method", values=["score", "score_other"])
    difference = wide["score"]["hirescam"] - wide["score"]["gradcam"]
    difference_other = wide["score_other"]["hirescam"] - wide["score_other"]["gradcam"]
    settings = difference.groupby(level=KEYS[metric]).mean()
    settings_other = difference_other.groupby(level=KEYS[metric]).mean()
    scale = float(both["score"].abs().mean())
    return {"max_abs_change": float(change.max()), "mean_abs_change": float(change.mean()),
            "relative_mean_change": float(change.mean()) / scale if scale else float("nan"),
            "mean_difference_keeps_sign": bool((np.sign(settings) == np.sign(settings_other)).all()),
            "images_keeping_sign": float((np.sign(difference) == np.sign(difference_other)).mean())}


def synthetic_batch(model, target_layer, args) -> dict:
    """Seeded synthetic 224 px images, their float32 CAMs (raw and post-processed) and explained classes."""
    images, labels, _ = make_synthetic(args.images, 224, num_classes=NUM_CLASSES, seed=args.seed)
    images, labels = images.to(args.device), labels.to(args.device)
    maps = explain(model, target_layer, images, raw=True)
    cams = {method: maps[method] for method in METHODS}
    return {"images": images, "labels": labels, "ids": [f"image-{i}" for i in range(len(images))],
            "targets": maps["targets"], "cams": cams,
            "maps": cams | {f"raw_{method}": maps[f"raw_{method}"] for method in METHODS}}


def measure_arch(arch: str, args) -> list[dict]:
    """One network: the reference run, the candidate run, and the Max-Sensitivity what-if on CUDA."""
    torch.manual_seed(args.seed)
    model, target_layer = build_model(arch, NUM_CLASSES, input_size=224, variant="thesis")
    model = model.to(args.device).eval()
    batch = synthetic_batch(model, target_layer, args)
    reference = score_all(model, target_layer, batch, args)
    setting = candidate(args.device)
    set_memory_format(model, setting["channels_last"])
    runs = {"candidate": score_all(model, target_layer, batch, args, setting["precision"])}
    if args.device.type == "cuda":
        runs["cam passes under autocast"] = score_all(model, target_layer, batch, args, setting["precision"],
                                                      autocast_explainers=True)
    rows = []
    for name, results in runs.items():
        for metric, (frame, seconds) in results.items():
            base_frame, base_seconds = reference[metric]
            label = metric if name == "candidate" else f"{metric} ({name})"
            rows.append({"arch": arch, "metric": label, **compare(metric, base_frame, frame),
                         "float32_seconds": base_seconds, "candidate_seconds": seconds,
                         "speed_up": base_seconds / seconds})
    return rows


def markdown(result: dict) -> str:
    """The result as a short markdown page: the settings, then one row per network and metric."""
    columns = ["arch", "metric", "max_abs_change", "mean_abs_change", "relative_mean_change",
               "mean_difference_keeps_sign",
               "images_keeping_sign", "float32_seconds", "candidate_seconds", "speed_up"]
    title = f"Float32 against {result['candidate']['precision']} + channels_last"
    lines = [f"# {title} ({result['machine']['device_name']})", "", f"Settings: {result['settings']}.", "",
             f"TF32 in float32 convolutions (cuDNN default): {result['cudnn_allow_tf32']}; "
             f"in float32 matrix products: {result['matmul_allow_tf32']}.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in result["rows"]:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(result: dict, folder: Path, device_type: str) -> None:
    """``precision-<device>.json`` and ``.md`` in ``folder``, each written atomically."""
    stem = folder / f"precision-{device_type}"
    save_json(result, stem.with_suffix(".json"))
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(result))


def main(argv=None) -> dict:
    args = parse_arguments(argv)
    started = time.perf_counter()
    settings = {name: getattr(args, name) for name in ("archs", "images", "regions", "radius", "samples", "seed",
                                                      "aopc_chunk", "chunk")}
    result = {"machine": machine(args.device), "settings": settings, "candidate": candidate(args.device),
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
              "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32, "rows": []}
    for arch in parse_list(args.archs, str):  # the files are rewritten after each network: a cut run keeps them
        result["rows"] += measure_arch(arch, args)
        result["seconds"] = time.perf_counter() - started
        write(result, args.output, args.device.type)
        print(f"{arch}: done after {result['seconds']:.0f} s", flush=True)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
