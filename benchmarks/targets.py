"""The benchmark's targets, each measured value against its threshold.

One list of targets serves both the ``targets`` table of the result file and the choice of the
camfaith calls to profile (those of a metric that misses one).
"""

from __future__ import annotations

TARGETS = {"efficiency": 0.8, "cam_over_one_library": 1.15, "two_library_over_cam": 1.7}


def arch_targets(arch: str, rows: list[dict], cams: dict) -> list[tuple[str, dict]]:
    """``(metric, {"target", "arch", "value", "met"})`` for each target of one architecture.

    Each camfaith row must reach the target efficiency, camfaith must be faster than every other
    implementation, and its one CAM call must cost little more than one library method (metric "CAMs").
    """
    found = []
    for r in rows:
        name = f"{r['metric']} {r['setting']}"
        if r["implementation"] == "camfaith":
            found.append((r["metric"], {"target": f"{name}: efficiency >= {TARGETS['efficiency']}", "arch": arch,
                                        "value": r["efficiency"], "met": r["efficiency"] >= TARGETS["efficiency"]}))
        elif r["camfaith faster by"] is not None:
            found.append((r["metric"], {"target": f"{name}: faster than {r['implementation']}", "arch": arch,
                                        "value": r["camfaith faster by"], "met": r["camfaith faster by"] > 1}))
    one, two = cams["camfaith_over_one_library"], cams["two_library_over_camfaith"]
    found.append(("CAMs", {"target": f"both CAMs <= {TARGETS['cam_over_one_library']}x one pytorch-grad-cam method",
                           "arch": arch, "value": one, "met": one <= TARGETS["cam_over_one_library"]}))
    found.append(("CAMs", {"target": f"two pytorch-grad-cam methods >= {TARGETS['two_library_over_cam']}x both CAMs",
                           "arch": arch, "value": two, "met": two >= TARGETS["two_library_over_cam"]}))
    return found


def missed_metrics(arch: str, rows: list[dict], cams: dict) -> set[str]:
    """The metrics (and "CAMs") of one architecture that miss at least one target."""
    return {metric for metric, target in arch_targets(arch, rows, cams) if not target["met"]}


def summary(archs: list[dict], memory: dict | None) -> list[dict]:
    """Each target of the benchmark, its measured value per architecture and whether it is met."""
    found = [target for entry in archs for _, target in arch_targets(entry["arch"], entry["rows"], entry["cams"])]
    if memory:
        aopc_memory = memory["aopc"]
        found.append({"target": "14x14 AOPC of VGG19 at 224 px fits 16 GB at the default chunk", "arch": "vgg19",
                      "value": aopc_memory["estimated_bytes_at_default_chunk"] / 2**30,
                      "met": aopc_memory["fits_16gb_at_default_chunk"]})
    return found
