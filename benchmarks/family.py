"""What the CAM family costs: camfaith's maps against pytorch-grad-cam's classes, on the same batch.

Three comparisons per network (random weights, seeded images), each timed interleaved (median of
``--repeats`` after a warm-up) and checked for agreement (largest absolute difference of the maps):

1. the eight gradient-based maps from one :func:`camfaith.family.family_maps` call (one forward and one
   backward pass) against the library's eight classes called one after another;
2. Ablation-CAM through the head (the target layer feeds it) against the library's ``AblationCAM``,
   which runs the network from the target layer for every channel;
3. Score-CAM, batched ``--chunk`` masked images at a time in both.

The networks are those of ``configs/default.yaml`` (VGG11, 32 px, three stages) and a ResNet18 at
64 px; ``--archs`` and ``--input-size`` change them. Results go to ``benchmarks/results/family-<device>``.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import pytorch_grad_cam
import torch
from harness import machine, random_images, timed
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from camfaith import build_model
from camfaith.family import GRADIENT_METHODS, LIBRARY_NAMES, family_maps
from camfaith.io import atomic_path, save_json

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"gradient maps": 5.0, "Ablation-CAM": 20.0, "Score-CAM": 1.0}  # the speed-ups the report aims at
COMPARISONS = {"gradient maps": GRADIENT_METHODS, "Ablation-CAM": ("ablationcam",), "Score-CAM": ("scorecam",)}


def library_maps(model, target_layer, images, targets, methods, chunk_size):
    """The library's maps of ``methods``, one class after another, as a tensor per method."""
    maps = {}
    for method in methods:
        with getattr(pytorch_grad_cam, LIBRARY_NAMES[method])(model=model, target_layers=[target_layer]) as library:
            if method in ("scorecam", "ablationcam"):
                library.batch_size = chunk_size
            maps[method] = torch.from_numpy(library(input_tensor=images, targets=targets))
    return maps


def compare(arch: str, input_size: int, n_images: int, chunk_size: int, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model, target_layer = build_model(arch, 3, input_size=input_size, small_input=True, stages=3)
    device = torch.device("cpu")
    images = random_images(n_images, input_size, device, seed=1)
    targets = family_maps(model, target_layer, images, methods=("gradcam",))["targets"]
    library_targets = [ClassifierOutputTarget(int(t)) for t in targets]
    rows = []
    for name, methods in COMPARISONS.items():
        times = timed({"camfaith": lambda m=methods: family_maps(model, target_layer, images, targets, m,
                                                                 chunk_size=chunk_size),
                       "library": lambda m=methods: library_maps(model, target_layer, images, library_targets, m,
                                                                 chunk_size)}, repeats, device)
        ours, theirs = times["camfaith"]["result"], times["library"]["result"]
        rows.append({"arch": arch, "input_size": input_size, "images": n_images, "comparison": name,
                     "maps": len(methods), "camfaith_s": times["camfaith"]["median"],
                     "library_s": times["library"]["median"],
                     "speedup": times["library"]["median"] / times["camfaith"]["median"], "target": TARGETS[name],
                     "max_abs_difference": max(float((ours[m] - theirs[m]).abs().max()) for m in methods)})
        print(f"{arch} {name}: {rows[-1]['speedup']:.1f}x", flush=True)
    return rows


def markdown(report: dict) -> str:
    columns = ["arch", "input_size", "images", "comparison", "maps", "camfaith_s", "library_s", "speedup", "target",
               "max_abs_difference"]
    cells = [[f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in report["rows"]]
    info = report["machine"]
    return "\n".join([f"# The CAM family: camfaith against pytorch-grad-cam ({report['date']})", "",
                      f"{info['device_name']}, {info['torch_threads']} torch thread(s); random weights, seeded "
                      f"images; median of {report['repeats']} interleaved runs after a warm-up. Ablation-CAM is "
                      "compared on ReLU'd targets (the intact networks), where the library zeroes channels too.",
                      "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(row) + " |" for row in cells), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="vgg11:32,resnet18:64", help="arch:input_size pairs, comma-separated")
    parser.add_argument("--images", type=int, default=8, help="images per batch")
    parser.add_argument("--chunk", type=int, default=64, help="masked or ablated inputs per pass, in both")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per call; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for pair in args.archs.split(",") for row in
            compare(pair.split(":")[0], int(pair.split(":")[1]), args.images, args.chunk, args.repeats)]
    report = {"date": datetime.date.today().isoformat(), "machine": machine(torch.device("cpu")),
              "repeats": args.repeats, "rows": rows}
    save_json(report, args.output / "family-cpu.json")
    with atomic_path(args.output / "family-cpu.md") as tmp:
        tmp.write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
