"""The result files: notes on what the numbers mean, the markdown tables, and the writing of both files.

The JSON file is the report dict as it is (``notebooks/90_benchmark.py`` reads it); the markdown
file holds the same as tables. Both go to ``<label>-<date>`` and are copied to ``latest-<label>``
(the label: the device, then the input size unless it is 64 px).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from settings import AOPC_INPUT_BYTES_224

from camfaith.costs import aopc_paths
from camfaith.io import atomic_path

METRIC_COLUMNS = ["arch", "metric", "setting", "implementation", "path", "passes per image", "ms per image",
                  "efficiency", "camfaith faster by", "agreement"]
PATH_COLUMNS = ["arch", "regions", "auto", "estimated speed-up", "incremental ms", "full forward ms",
                "incremental vs bound", "incremental vs full forward", "Quantus ms", "incremental vs Quantus",
                "full forward vs Quantus"]
CROSSOVER_COLUMNS = ["arch", "input_size", "regions", "auto", "estimated_speedup", "measured_speedup",
                     "faster_measured", "forward_ms", "seeding_ms", "step_ms"]
CAM_COLUMNS = ["arch", "images", "camfaith_ms_per_image", "gradcam_ms_per_image", "hirescam_ms_per_image",
               "camfaith_over_one_library", "two_library_over_camfaith", "max abs difference"]
ALWAYS = [
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
    "AOPC has two paths: full forward (every perturbed image through the whole network, in chunks) and "
    "incremental (the activations of the previous step kept, only the windows the removed cell reaches "
    "recomputed; the same scores up to float rounding). The efficiency of an incremental row is its speed-up "
    "over the full forward passes it replaces; camfaith's row against the other implementations is the path "
    "incremental='auto' takes.",
]


def memory_note(aopc_memory: dict) -> str:
    return (
        f"Memory grows with the chunk, not with the number of perturbed images: 14x14 AOPC of VGG19 at 224 px "
        f"takes about {aopc_memory['per_image_bytes'] / 2**20:.0f} MiB per image in a chunk, so the default "
        f"chunk of {aopc_memory['default_chunk']} needs about "
        f"{aopc_memory['estimated_bytes_at_default_chunk'] / 2**30:.1f} GiB and a 16 GB GPU takes chunks up to "
        f"about {aopc_memory['largest_chunk_for_16gb']}. The images, their noise, removal masks and maps are "
        f"held for the whole batch passed in ({AOPC_INPUT_BYTES_224 / 2**20:.1f} MiB per image at 224 px), so "
        "pass a test set in batches."
    )


def interpret(report: dict) -> list[str]:
    """Plain-language notes on what the numbers mean, and on every missed target."""
    notes = list(ALWAYS)
    load, cores = report["load_average"]["start"], report["machine"]["cores"]
    if load > cores / 2:
        notes.append(f"The machine was shared (load average {load:.1f} on {cores} cores at the start), so "
                     "absolute times are noisy; ratios come from interleaved runs of one process.")
    for arch in report["archs"]:
        for metric, found in arch["profiles"].items():
            share = 100 * found["model_share"]
            top = ", ".join(f"{op['op']} {100 * op['share']:.0f} %" for op in found["top"][:3])
            notes.append(f"{arch['arch']}, {metric} missed a target; in one profiled camfaith call {share:.0f} % of "
                         f"operator time is in the model's layers (largest: {top}).")
    notes += setting_notes(report["config"])
    if report.get("memory_estimate"):
        notes.append(memory_note(report["memory_estimate"]["aopc"]))
    return notes


def setting_notes(config: dict) -> list[str]:
    """What the run's setting leaves out: the sizes without a timed full-forward path, single timed runs."""
    notes = []
    untimed = [r for r in config["regions"] if r not in config["full_regions"] and r != config["compare_regions"]]
    if untimed:
        notes.append(f"The full-forward AOPC path is timed at {config['compare_regions']}x{config['compare_regions']}"
                     f" only; at {', '.join(f'{r}x{r}' for r in untimed)} the incremental path is compared with the "
                     "bound, the full forward passes it replaces (the full path's own efficiency is about 1).")
    if config["repeats"] == 1:
        notes.append("Each measurement was timed once (--repeats 1), after a warm-up of the model: at this input "
                     "size one timed run of a metric takes seconds to minutes.")
    return notes


def fmt(value, digits=2) -> str:
    """A table cell: floats with ``digits`` decimals (scientific when smaller), None as blank."""
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


def header(report: dict) -> list[str]:
    """The title, the run's settings and the introduction of the metrics table."""
    m, config = report["machine"], report["config"]
    return [
        f"# Benchmark: {m['device_name']} ({m['device']}, {m['cores']} cores, {m['torch_threads']} torch threads)",
        "",
        f"{report['date']}; torch {m['versions']['torch']}; {config['images']} random images of "
        f"{config['input_size']} px; networks {', '.join(config['archs'])} ({config['variant']} surgery"
        f"{', small_input' if config['small_input'] else ''}); median of {config['repeats']} runs; chunk sizes "
        f"{config['chunks']}; setting {config['setting']}; load average "
        f"{report['load_average']['start']:.1f} at start, {report['load_average']['end']:.1f} at end.",
        "",
        "## Metrics",
        "",
        "Efficiency: time the model's own passes take for the passes the metric needs (forward without grad; "
        "forward + full backward) divided by the measured time. camfaith's CAM backward stops at the target "
        "layer, so metrics that explain (Max-Sensitivity, HAAS) can exceed 1.",
        "",
    ]


def path_tables(archs: list[dict]) -> list[str]:
    """AOPC's paths, and the crossover table, when the run has them."""
    sections = (
        ([entry for a in archs for entry in aopc_paths(a)], "## AOPC: incremental against full forward",
         "Time per image on each path; the incremental path's speed-up over the bound (the full forward passes), "
         "over the full path as timed, and over Quantus RegionPerturbation (timed interleaved with both paths at the "
         "compared size); auto: the path incremental='auto' takes.",
         PATH_COLUMNS, {"incremental ms": 1, "full forward ms": 1, "Quantus ms": 1}),
        ([entry for a in archs for entry in a.get("crossover", [])], "## Crossover: where incremental AOPC pays off",
         "Per input size and heatmap size: the path auto takes and the speed-up incremental_plan estimates, and the "
         "speed-up measured from short runs (L forward passes per image against a seeding pass plus L incremental "
         "steps).",
         CROSSOVER_COLUMNS, {"forward_ms": 1, "seeding_ms": 1, "step_ms": 1}))
    return [part for rows, title, text, columns, digits in sections if rows
            for part in ("", title, "", text, "", markdown_table(rows, columns, digits))]


def timing_tables(archs: list[dict]) -> list[str]:
    """The metrics, the CAMs and the bound, one table each."""
    rows = [r for a in archs for r in a["rows"]]
    cams = [{"arch": a["arch"], **{k: v for k, v in a["cams"].items() if k != "max_abs_difference"},
             "max abs difference": max(a["cams"]["max_abs_difference"].values())} for a in archs]
    bounds = [{"arch": a["arch"], **b} for a in archs for b in a["bound"]]
    return [
        markdown_table(rows, METRIC_COLUMNS, {"ms per image": 1}),
        "", "## Grad-CAM and HiResCAM", "",
        markdown_table(cams, CAM_COLUMNS, {"max abs difference": 1}),
        "", "## The bound (images per second)", "",
        "Timed alongside each metric; the median over those measurements, and the lowest and highest.", "",
        markdown_table(bounds, ["arch", "pass", "batch", "measurements", "images_per_s", "lowest", "highest"],
                       {"images_per_s": 1, "lowest": 1, "highest": 1}),
    ]


def memory_tables(archs: list[dict], estimate: dict | None) -> list[str]:
    """Peak memory per metric and architecture, and the VGG19 estimate when it was measured."""
    memory_rows = [{"arch": a["arch"], "metric": k, "chunk": v["chunk"], "MiB": v["bytes"] / 2**20}
                   for a in archs for k, v in a.get("memory", {}).items()]
    parts = ["", "## Peak memory", "", markdown_table(memory_rows, ["arch", "metric", "chunk", "MiB"], {"MiB": 1})]
    if estimate:
        parts += ["", "VGG19 at 224 px (weights "
                  f"{estimate['weights_bytes'] / 2**20:.0f} MiB), measured at chunks {estimate['chunks']}:", ""]
        table = [{"metric": k, "MiB per image in a chunk": v["per_image_bytes"] / 2**20,
                  "fixed MiB": v["fixed_bytes"] / 2**20, "default chunk": v["default_chunk"],
                  "GiB at default chunk (+20 %)": v["estimated_bytes_at_default_chunk"] / 2**30,
                  "largest chunk for 16 GB": v["largest_chunk_for_16gb"]}
                 for k, v in estimate.items() if isinstance(v, dict)]
        parts.append(markdown_table(table, list(table[0]), {"MiB per image in a chunk": 1}))
    return parts


def check_tables(report: dict) -> list[str]:
    """The targets, the agreement checks, the profiles of missed targets and the notes."""
    archs = report["archs"]
    checks = [{"arch": a["arch"], "check": k, "value": v} for a in archs for k, v in a["checks"].items()]
    parts = ["", "## Targets", "", markdown_table(report["targets"], ["target", "arch", "value", "met"]),
             "", "## Agreement checks", "", markdown_table(checks, ["arch", "check", "value"], {"value": 1})]
    profiles = [(a["arch"], metric, ops) for a in archs for metric, ops in a["profiles"].items()]
    if profiles:
        parts += ["", "## Profiles of camfaith calls that missed a target", ""]
        for arch, metric, ops in profiles:
            parts += [f"**{arch}, {metric}**: {100 * ops['model_share']:.0f} % of operator time in the model's layers",
                      "", markdown_table(ops["top"], ["op", "self_cpu_ms", "share", "calls"]), ""]
    if report.get("notes"):
        parts += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return parts


def markdown(report: dict) -> str:
    """The report as markdown tables, in the order of the JSON file."""
    parts = (header(report) + timing_tables(report["archs"]) + path_tables(report["archs"])
             + memory_tables(report["archs"], report.get("memory_estimate")) + check_tables(report))
    return "\n".join(parts) + "\n"


def write(report: dict, folder: Path) -> str:
    """Write ``<label>-<date>.json`` and ``.md`` to ``folder`` and as ``latest-<label>``, each file atomically
    (:func:`camfaith.io.atomic_path`). The markdown renders the JSON as it reads back.

    Returns the markdown, for the caller to print.
    """
    data = json.dumps(report, indent=1, default=str) + "\n"
    text = markdown(json.loads(data))
    for stem in (f"{report['label']}-{report['date']}", f"latest-{report['label']}"):
        for suffix, content in ((".json", data), (".md", text)):
            with atomic_path(folder / f"{stem}{suffix}") as tmp:
                tmp.write_text(content)
    return text
