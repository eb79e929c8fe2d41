"""What the full replication costs, read from a benchmark result file (``benchmarks/run.py``).

:func:`project` projects the ``thesis`` configuration from the per-image costs a benchmark measured;
:func:`aopc_paths` and :func:`replan` read AOPC's two paths from a result (the benchmark chapter shows them).

Every chapter of a run is a known number of model passes per image on a known number of images, so
its time is those passes at the per-image costs a benchmark measured for that network at 224 px:

- **training**: ``epochs x (training images x one forward + backward + validation images x one
  forward)``, then the test set once. The bound's forward + backward goes back to the input and every
  parameter, and every epoch is counted: frozen layers and early stopping only make training cheaper,
  so this is an upper bound (data loading and augmentation not included).
- **AOPC** (eq. 6-7 of Lamprou 2023), once on each path: every map (:data:`MAPS`: the two CAMs, their
  inversions, the occlusion control and its inversion, and the three reference maps of
  :mod:`camfaith.controls`) at every heatmap size, each scored as one measured AOPC call per image, the
  occlusion map itself (``L`` full forward passes per size), plus the chapter's
  :data:`AOPC_SIDE_SCORINGS` at the smallest size (ROAD's imputation is left out) and one explanation per
  image for the maps. Where a path was not timed at a size, its time is the bound's ``L + 1`` forward
  passes over its efficiency at the nearest timed size. The thesis data have no object masks, so no oracle.
- **Max-Sensitivity** (eq. 8): for each explanation that runs the model (the two CAMs, and 1 - HiResCAM),
  ``samples + 1`` explanations per setting plus the clean map's norm, at the measured cost of one
  explanation (camfaith's Max-Sensitivity time per image over its ``samples + 1``).
- **HAAS** (eq. 9-10): the measured time per image (one explanation and two forward passes), plus two
  forward passes for every other (scaling, map) pair scored (the controls have no signed form), plus
  the occlusion map on its ``4 x 4`` grid (16 forward passes).

The image counts come from the splits of Table 2 of Lamprou (2023) (:data:`DATASETS`), capped by
each chapter's ``n_images``. The chapters that run on a few images (the gallery, the sanity checks,
the faithfulness check) are left out.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch
from snakemake.utils import update_config

from camfaith.cams import METHODS
from camfaith.endpoints import CAMS, POSITIVE, REFERENCES
from camfaith.incremental import incremental_plan
from camfaith.models import build_model
from camfaith.parameters import parse_list

# Table 2 of Lamprou (2023): each data set as pools of images, each with its share in the training, validation
# and test splits. The counts are those of the releases (section 4.1 of the study; the Covid-19 Radiography
# Database's latest release, which the study used, per class). HAM10000 is split by lesion, so its image counts
# per split are the shares of its 10,015 images only approximately.
DATASETS = {
    "crc": (("NCT-CRC-HE-100K", 100_000, (0.8, 0.2, 0.0)), ("CRC-VAL-HE-7K", 7_180, (0.0, 0.0, 1.0))),
    "covid19": (("COVID", 3_616, (0.8, 0.1, 0.1)), ("Lung_Opacity", 6_012, (0.8, 0.1, 0.1)),
                ("Normal", 10_192, (0.8, 0.1, 0.1)), ("Viral Pneumonia", 1_345, (0.8, 0.1, 0.1))),
    "ham10000": (("images", 10_015, (0.6, 0.2, 0.2)),),
    "breakhis": (("benign", 2_480, (0.58, 0.20, 0.22)), ("malignant", 5_429, (0.63, 0.18, 0.19))),
}
MAPS = 2 * len(CAMS) + 2 * len((POSITIVE,)) + len(REFERENCES)
"""Maps each AOPC and HAAS chapter scores: the two CAMs and their inversions, the occlusion control and its
inversion, and the reference maps."""
HAAS_OCCLUSION_CELLS = 16
"""Forward passes per image of the HAAS chapter's occlusion map (its default ``occlusion_regions = 4``)."""
MODEL_EXPLAINERS = len(METHODS) + 1
"""Explanations in the Max-Sensitivity chapter that run the model: the CAMs and 1 - HiResCAM (the random,
centre and edges controls do not)."""
AOPC_SIDE_SCORINGS = 11
"""Scorings of one map at the smallest heatmap size in ``notebooks/03_aopc.py`` besides the main grid: MoRF and
LeRF of both CAMs with uniform noise and with 0 (8), both CAMs with random ties (2) and LeRF HiResCAM (1)."""
CHAPTERS = ("training", "AOPC, full forward", "AOPC, incremental", "Max-Sensitivity", "HAAS")
PATH_NAMES = {True: "incremental", False: "full forward"}  # AOPC's two paths, by incremental_plan's choice
BENCHMARK_CLASSES = 7  # the class count of the benchmark's networks (benchmarks/settings.py)


def split_sizes(dataset: str) -> dict[str, int]:
    """Images in the training, validation and test splits of ``dataset`` (Table 2 of Lamprou 2023)."""
    if dataset not in DATASETS:
        raise ValueError(f"no split sizes for data set {dataset!r}; known: {', '.join(DATASETS)}")
    shares = zip(*[[count * share for share in fractions] for _, count, fractions in DATASETS[dataset]])
    return dict(zip(("train", "val", "test"), (round(sum(part)) for part in shares)))


def thesis_runs(config: dict) -> list[dict]:
    """The runs of a configuration with its defaults merged in as the Snakefile merges them, each repeated
    ``train_seeds`` times."""
    runs = []
    for entry in config["runs"]:
        run = copy.deepcopy(config["defaults"])
        update_config(run, entry)
        runs += [run] * int(run.get("train_seeds", 1))
    return runs


class Costs:
    """Per-image costs in seconds of one network, read from its entry of a benchmark result file."""

    def __init__(self, entry: dict):
        self.rows = [r for r in entry["rows"] if r["implementation"] == "camfaith"]
        passes = {}
        for bound in entry["bound"]:  # the largest batch of each pass
            passes[bound["pass"]] = max(passes.get(bound["pass"], (0, 0)), (bound["batch"], bound["images_per_s"]))
        self.forward = 1 / passes["forward"][1]
        self.forward_backward = 1 / passes["forward_backward"][1]
        sensitivity = [r for r in self.rows if r["metric"] == "Max-Sensitivity"]
        self.explanation = sum(r["ms per image"] / 1e3 / (int(r["passes per image"].split()[0]))
                               for r in sensitivity) / len(sensitivity)
        self.haas = next(r["ms per image"] for r in self.rows if r["metric"] == "HAAS") / 1e3

    def aopc(self, regions: int, path: str) -> float:
        """One map's AOPC per image on ``path``: measured, else the bound's passes over the nearest efficiency."""
        timed = {int(r["setting"].split("x")[0]): r for r in self.rows if r["metric"] == "AOPC" and r["path"] == path}
        if not timed:
            return math.nan
        if regions in timed:
            return timed[regions]["ms per image"] / 1e3
        nearest = min(timed, key=lambda size: abs(size - regions))
        return (regions * regions + 1) * self.forward / timed[nearest]["efficiency"]


def run_seconds(run: dict, costs: Costs) -> dict[str, float]:
    """Seconds of each chapter of one run (:data:`CHAPTERS`) at the per-image ``costs``."""
    sizes = split_sizes(run["dataset"])
    train, aopc, sens, haas = run["train"], run["aopc"], run["max_sensitivity"], run["haas"]
    seconds = {"training": train["epochs"] * (sizes["train"] * costs.forward_backward + sizes["val"] * costs.forward)
               + sizes["test"] * costs.forward}
    regions = parse_list(aopc["regions"], int)
    for path in ("full forward", "incremental"):
        per_image = aopc["noise_seeds"] * sum(MAPS * costs.aopc(r, path) + r * r * costs.forward for r in regions)
        per_image += AOPC_SIDE_SCORINGS * costs.aopc(min(regions), path) + costs.explanation
        seconds[f"AOPC, {path}"] = min(aopc["n_images"], sizes["test"]) * per_image
    samples = parse_list(sens["samples"], int)
    explanations = MODEL_EXPLAINERS * (sens["noise_seeds"] * sum(s + 1 for s in samples) + 1)
    seconds["Max-Sensitivity"] = min(sens["n_images"], sizes["test"]) * explanations * costs.explanation
    scalings = parse_list(haas["scalings"], str)
    calls = sum(len(METHODS) if scaling == "signed" else MAPS for scaling in scalings)
    seconds["HAAS"] = min(haas["n_images"], sizes["test"]) * (costs.haas + ((calls - 1) * 2 + HAAS_OCCLUSION_CELLS)
                                                              * costs.forward)
    return seconds


def project(report: dict, config: dict) -> pd.DataFrame:
    """Seconds of every chapter of every run of ``config`` on the machine of ``report`` (one row per run and
    chapter; NaN for a network the benchmark did not measure).

    Raises a ``ValueError`` for a result file at another input size than the configuration's.
    """
    costs = {entry["arch"]: Costs(entry) for entry in report["archs"]}
    rows = []
    for run in thesis_runs(config):
        if run["input_size"] != report["config"]["input_size"]:
            raise ValueError(f"the benchmark ran at {report['config']['input_size']} px, the run "
                             f"{run['dataset']}/{run['arch']} at {run['input_size']} px; benchmark that size")
        seconds = run_seconds(run, costs[run["arch"]]) if run["arch"] in costs else dict.fromkeys(CHAPTERS, math.nan)
        rows += [{"dataset": run["dataset"], "arch": run["arch"], "chapter": chapter, "seconds": seconds[chapter]}
                 for chapter in CHAPTERS]
    return pd.DataFrame(rows)


def totals(projected: pd.DataFrame) -> pd.DataFrame:
    """Hours per chapter (summed over the runs), and the whole configuration without and with incremental AOPC."""
    hours = projected.groupby("chapter", sort=False)["seconds"].sum(min_count=len(projected) // len(CHAPTERS)) / 3600
    others = hours.drop(["AOPC, full forward", "AOPC, incremental"]).sum(min_count=len(CHAPTERS) - 2)
    hours["all, full forward AOPC"] = others + hours["AOPC, full forward"]
    hours["all, incremental AOPC"] = others + hours["AOPC, incremental"]
    return hours.rename("hours").to_frame()


def aopc_paths(entry: dict) -> list[dict]:
    """AOPC's two paths at each heatmap size of one architecture, from its rows: times per image, the path
    ``incremental="auto"`` takes, and the incremental path's speed-up over the bound, the full path and Quantus
    (each ratio from one interleaved timed call; blank where a side was not timed)."""
    rows = [r for r in entry["rows"] if r["metric"] == "AOPC"]
    table = []
    for auto in entry.get("aopc_auto", []):
        setting = f"{auto['regions']}x{auto['regions']}"
        ms = {r["path"]: r for r in rows if r["setting"] == setting and r["implementation"] == "camfaith"}
        quantus = next((r["ms per image"] for r in rows if r["setting"] == setting
                        and r["implementation"].startswith("Quantus")), None)
        incremental, full = ms.get("incremental"), ms.get("full forward")
        inc_ms, full_ms = (r["ms per image"] if r else None for r in (incremental, full))
        table.append({"arch": entry["arch"], "regions": auto["regions"], "auto": auto["auto"],
                      "estimated speed-up": auto["estimated_speedup"], "incremental ms": inc_ms,
                      "full forward ms": full_ms, "incremental vs bound": incremental["efficiency"] if incremental
                      else None, "incremental vs full forward": full_ms / inc_ms if inc_ms and full_ms else None,
                      "Quantus ms": quantus, "incremental vs Quantus": quantus / inc_ms if quantus and inc_ms else None,
                      "full forward vs Quantus": quantus / full_ms if quantus and full_ms else None})
    return table


def replan(result: dict) -> dict:
    """A benchmark result whose "auto" choices and estimated speed-ups come from the current cost model.

    The timings stay as measured; the estimates in the file are those of the cost model the run had. The
    networks are rebuilt with random weights (the estimate depends on their shapes only), once per size.
    """
    config, device = result["config"], torch.device(result["machine"]["device"])
    models = {}

    def replanned(arch: str, cell: dict, size: int, images: int) -> dict:
        if (arch, size) not in models:
            models[arch, size] = build_model(arch, BENCHMARK_CLASSES, input_size=size,
                                             small_input=config["small_input"], variant=config["variant"])[0]
        plan = incremental_plan(models[arch, size], size, cell["regions"], batch=min(images, config["chunks"]["aopc"]),
                                device=device)
        return {**cell, "auto": PATH_NAMES[plan.incremental], "estimated_speedup": plan.speedup}

    return {**result, "archs": [
        {**entry,
         "aopc_auto": [replanned(entry["arch"], a, config["input_size"], config["images"])
                       for a in entry.get("aopc_auto", [])],
         "crossover": [replanned(entry["arch"], c, c["input_size"], config["crossover"]["images"])
                       for c in entry.get("crossover", [])]}
        for entry in result["archs"]]}
