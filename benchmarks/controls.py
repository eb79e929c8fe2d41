"""What the control maps cost a metric chapter: the scoring call with the two CAMs, and with the controls.

Each metric chapter scores the controls of :mod:`camfaith.controls` beside Grad-CAM and HiResCAM with
:mod:`camfaith.scoring`: AOPC and HAAS each CAM's inversion, the occlusion control (built from the
metric's own draws) and its inversion, and the three reference maps; Max-Sensitivity 1 - HiResCAM and
the reference maps. On a
seeded random-weight VGG11 and synthetic images, at the settings of ``configs/default.yaml``, this
times both calls (best of ``--repeats``, interleaved) and counts their model passes per image.
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path
from time import perf_counter

import torch
import yaml

from camfaith import build_model
from camfaith.cams import METHODS, explain, explainer
from camfaith.controls import control_explainers, reference_maps
from camfaith.data import load_dataset
from camfaith.io import atomic_path, save_json
from camfaith.metrics import occlusion_maps
from camfaith.parameters import parse_list
from camfaith.scoring import aopc_scores, haas_scores, sensitivity_scores
from camfaith.seeds import stream_generator

ROOT = Path(__file__).resolve().parent.parent
SEED = 0


def chapter_settings() -> dict:
    """The metric settings every run of ``configs/default.yaml`` uses (its ``defaults`` block)."""
    aopc, sens, haas = (yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["defaults"][metric]
                        for metric in ("aopc", "max_sensitivity", "haas"))
    return {"aopc": {"regions": parse_list(aopc["regions"], int), "perturbation": aopc["perturbation"],
                     "chunk_size": aopc["chunk_size"]}, "haas": {"scalings": parse_list(haas["scalings"], str)},
            "max_sensitivity": {"radii": parse_list(sens["radii"], float), "samples": parse_list(sens["samples"], int),
                                "chunk_size": sens["chunk_size"]}}


def subject(n_images: int):
    """A seeded random-weight VGG11 in eval mode and the first ``n_images`` synthetic test images."""
    torch.manual_seed(SEED)
    model, target_layer = build_model("vgg11", 3, input_size=32, small_input=True, stages=3)
    splits = load_dataset("synthetic", input_size=32, seed=SEED, augment=False)
    items = [splits.test[i] for i in range(n_images)]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([int(item[1]) for item in items])
    return model.eval(), target_layer, images, labels, [str(item[2]) for item in items]


def chapter_calls(model, target_layer, images, labels, ids, settings: dict) -> dict:
    """Per metric, the scoring call with the CAMs and the one with CAMs + controls (control maps made inside)."""
    explained = explain(model, target_layer, images, raw=True)
    targets, cams = explained["targets"], {m: explained[m] for m in METHODS}
    raw = cams | {f"raw_{m}": explained[f"raw_{m}"] for m in METHODS}
    explainers = {m: explainer(model, target_layer, m) for m in METHODS}
    a, s, h = settings["aopc"], settings["max_sensitivity"], settings["haas"]

    def with_controls():
        return reference_maps(images, cams, stream_generator(SEED, "random map"))

    def aopc(maps, occlusion=False):
        return aopc_scores(model, images, ids, maps, a["regions"], targets, SEED, a["perturbation"],
                           chunk_size=a["chunk_size"], occlusion=occlusion)

    def sensitivity(chosen):
        return sensitivity_scores(chosen, images, ids, targets, s["radii"], s["samples"], SEED, s["chunk_size"])

    def sensitivity_controls():
        inverted = {"hirescam_inverted": lambda x, t=None: 1 - explainers["hirescam"](x, t)}
        return sensitivity(explainers | inverted | control_explainers(stream_generator(SEED, "random map")))

    def haas_controls():
        occlusion = occlusion_maps(model, images, 4, "uniform", SEED, a["chunk_size"], targets)
        maps = with_controls() | {"occlusion": occlusion, "occlusion_inverted": 1 - occlusion} | raw
        return haas_scores(model, images, labels, ids, maps, h["scalings"])

    return {"aopc": (lambda: aopc(cams), lambda: aopc(with_controls(), occlusion=True)),
            "max_sensitivity": (lambda: sensitivity(explainers), sensitivity_controls),
            "haas": (lambda: haas_scores(model, images, labels, ids, raw, h["scalings"]), haas_controls)}


def model_passes(settings: dict) -> dict:
    """Model passes per image of each call: (CAMs, CAMs + controls, CAMs + controls as separate calls).

    AOPC: forwards, ``L`` removal steps per map and size plus one clean pass per size shared by all
    maps, and ``L`` more per size for the occlusion map. Max-Sensitivity: explanations (forward +
    backward), the clean one for the norm, then per radius the clean one and the samples; of the
    controls only 1 - HiResCAM runs the model. HAAS: forwards, two per map and scaling (the controls have
    no raw map, so ``signed`` skips them), and 16 for the 4 x 4 occlusion map.
    """
    steps = sum(r * r for r in settings["aopc"]["regions"])
    sizes = len(settings["aopc"]["regions"])
    per_explainer = 1 + sum(1 + n for n in settings["max_sensitivity"]["samples"])
    scalings = settings["haas"]["scalings"]
    control_haas = 2 * (MAPS["haas"] - 2) * sum(scaling != "signed" for scaling in scalings) + 16
    aopc_maps = MAPS["aopc"]
    return {"aopc": (2 * steps + sizes, (aopc_maps + 1) * steps + sizes,
                     (aopc_maps + 1) * steps + aopc_maps * sizes),
            "max_sensitivity": (2 * per_explainer, 3 * per_explainer, 3 * per_explainer),
            "haas": (4 * len(scalings), 4 * len(scalings) + control_haas, 4 * len(scalings) + control_haas)}


#: maps each chapter scores with its controls (the CAMs included)
MAPS = {"aopc": 9, "max_sensitivity": 6, "haas": 9}


def best_times(calls: tuple, repeats: int) -> list[float]:
    """Best wall time of each call over ``repeats``, the calls interleaved; one untimed warm-up each."""
    for call in calls:
        call()
    best = [float("inf")] * len(calls)
    for _ in range(repeats):
        for index, call in enumerate(calls):
            start = perf_counter()
            call()
            best[index] = min(best[index], perf_counter() - start)
    return best


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.processor())


COLUMNS = {"metric": "metric", "seconds_cams": "s with CAMs (2)", "seconds_controls": "s with controls",
           "factor": "factor", "passes_cams": "passes CAMs", "passes_controls": "passes controls",
           "pass_factor": "pass factor", "naive_factor": "naive factor (maps)",
           "separate_pass_factor": "pass factor, separate calls"}


NOTE = ("Passes are model passes per image (AOPC and HAAS forwards, Max-Sensitivity explanations, where of "
        "the controls only 1 - HiResCAM runs the model). The naive factor is the maps scored (9 for AOPC and HAAS, "
        "6 for Max-Sensitivity) over the 2 CAMs; 'separate calls' is AOPC with one clean pass per map instead of one "
        "shared by all maps. The controls' timing includes making them (the occlusion maps included).")


def markdown(report: dict) -> str:
    """The machine, then one table row per metric (floats to 3 decimals)."""
    machine = report["machine"]
    shown = {True: "yes", False: "no"}
    cells = [[f"{row[key]:.3f}" if isinstance(row[key], float) else shown.get(row[key], str(row[key]))
              for key in COLUMNS] for row in report["rows"]]
    return "\n".join([f"# Control maps: cost of a metric chapter ({machine['date']})", "",
                      f"{machine['cpu']}, {machine['threads']} torch thread(s), torch {machine['torch']}; VGG11 "
                      f"(random weights, 32 px, 3 stages), {report['images']} synthetic images, best of "
                      f"{report['repeats']}.", "", "| " + " | ".join(COLUMNS.values()) + " |",
                      "|" + "---|" * len(COLUMNS), *("| " + " | ".join(row) + " |" for row in cells), "",
                      report["note"], ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, kind, default, text in (("--threads", int, 1, "torch CPU threads"),
                                      ("--images", int, 64, "synthetic test images scored"),
                                      ("--repeats", int, 3, "timed runs per call; the best is reported"),
                                      ("--output", Path, ROOT / "benchmarks" / "results", "results folder")):
        parser.add_argument(name, type=kind, default=default, help=text)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = chapter_settings()
    calls = chapter_calls(*subject(args.images), settings)
    rows = []
    for metric, (cams_passes, control_passes, separate_passes) in model_passes(settings).items():
        cams_time, controls_time = best_times(calls[metric], args.repeats)
        rows.append({"metric": metric, "seconds_cams": cams_time, "seconds_controls": controls_time,
                     "factor": controls_time / cams_time,
                     "passes_cams": cams_passes, "passes_controls": control_passes,
                     "pass_factor": control_passes / cams_passes, "naive_factor": MAPS[metric] / 2,
                     "separate_pass_factor": separate_passes / cams_passes})
        print(f"{metric}: {cams_time:.2f} s -> {controls_time:.2f} s ({controls_time / cams_time:.2f}x)", flush=True)
    machine = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "date": datetime.date.today().isoformat()}
    report = {"machine": machine, "images": args.images, "repeats": args.repeats, "seed": SEED,
              "settings": settings, "rows": rows, "note": NOTE}
    save_json(report, args.output / "controls-cpu.json")
    with atomic_path(args.output / "controls-cpu.md") as tmp:
        tmp.write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
