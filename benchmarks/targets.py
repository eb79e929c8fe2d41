"""The benchmark's targets, each measured value against its threshold.

One list of targets serves both the ``targets`` table of the result file and the choice of the
camfaith calls to profile (those of a metric that misses one).
"""

from __future__ import annotations

TARGETS = {"efficiency": 0.8, "cam_over_one_library": 1.15, "two_library_over_cam": 1.7}
# Incremental AOPC at 14x14 and 224 px: its speed-up over the full forward passes it replaces (the bound).
INCREMENTAL_14_AT_224 = {"vgg19": 2.0, "resnet50": 1.5}


def incremental_target(arch: str, r: dict, auto: dict, input_size: int | None) -> dict | None:
    """The target of an incremental AOPC row: at least the 224 px target at 14x14, else faster than the bound
    where ``incremental="auto"`` takes it; None where neither applies."""
    regions = int(r["setting"].split("x")[0])
    threshold = INCREMENTAL_14_AT_224.get(arch) if input_size == 224 and regions == 14 else None
    if threshold is not None:
        return {"target": f"AOPC 14x14 at 224 px: incremental >= {threshold}x the full forward passes (the bound)",
                "arch": arch, "value": r["efficiency"], "met": r["efficiency"] >= threshold}
    if auto.get(regions) == "incremental":
        return {"target": f"AOPC {r['setting']}: incremental, which auto takes, faster than the full forward passes",
                "arch": arch, "value": r["efficiency"], "met": r["efficiency"] > 1}
    return None


def arch_targets(arch: str, rows: list[dict], cams: dict, auto: dict | None = None,
                 input_size: int | None = None) -> list[tuple[str, dict]]:
    """``(metric, {"target", "arch", "value", "met"})`` for each target of one architecture.

    Each camfaith row must reach the target efficiency (the incremental AOPC path: :func:`incremental_target`;
    ``auto`` maps a heatmap size to the path ``incremental="auto"`` takes there), camfaith must be faster than
    every other implementation, and its one CAM call must cost little more than one library method (metric "CAMs").
    """
    found = []
    for r in rows:
        name = f"{r['metric']} {r['setting']}"
        if r["implementation"] == "camfaith" and r.get("path") == "incremental":
            target = incremental_target(arch, r, auto or {}, input_size)
            if target is not None:
                found.append((r["metric"], target))
        elif r["implementation"] == "camfaith":
            path = f" ({r['path']})" if r.get("path") else ""
            found.append((r["metric"], {"target": f"{name}{path}: efficiency >= {TARGETS['efficiency']}",
                                        "arch": arch, "value": r["efficiency"],
                                        "met": r["efficiency"] >= TARGETS["efficiency"]}))
        elif r["camfaith faster by"] is not None:
            found.append((r["metric"], {"target": f"{name}: faster than {r['implementation']}", "arch": arch,
                                        "value": r["camfaith faster by"], "met": r["camfaith faster by"] > 1}))
    one, two = cams["camfaith_over_one_library"], cams["two_library_over_camfaith"]
    found.append(("CAMs", {"target": f"both CAMs <= {TARGETS['cam_over_one_library']}x one pytorch-grad-cam method",
                           "arch": arch, "value": one, "met": one <= TARGETS["cam_over_one_library"]}))
    found.append(("CAMs", {"target": f"two pytorch-grad-cam methods >= {TARGETS['two_library_over_cam']}x both CAMs",
                           "arch": arch, "value": two, "met": two >= TARGETS["two_library_over_cam"]}))
    return found


def auto_paths(entry: dict) -> dict:
    """``{heatmap size: path}`` that ``incremental="auto"`` takes, from an architecture's entry."""
    return {a["regions"]: a["auto"] for a in entry.get("aopc_auto", [])}


def missed_metrics(arch: str, rows: list[dict], cams: dict, auto: dict | None = None,
                   input_size: int | None = None) -> set[str]:
    """The metrics (and "CAMs") of one architecture that miss at least one target."""
    return {metric for metric, target in arch_targets(arch, rows, cams, auto, input_size) if not target["met"]}


def summary(archs: list[dict], memory: dict | None, config: dict | None = None) -> list[dict]:
    """Each target of the benchmark, its measured value per architecture and whether it is met."""
    size = (config or {}).get("input_size")
    found = [target for entry in archs
             for _, target in arch_targets(entry["arch"], entry["rows"], entry["cams"], auto_paths(entry), size)]
    if memory:
        aopc_memory = memory["aopc"]
        found.append({"target": "14x14 AOPC of VGG19 at 224 px fits 16 GB at the default chunk", "arch": "vgg19",
                      "value": aopc_memory["estimated_bytes_at_default_chunk"] / 2**30,
                      "met": aopc_memory["fits_16gb_at_default_chunk"]})
    return found
