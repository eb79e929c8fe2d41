"""How well incremental_plan's cost model predicts the measured speed-ups of incremental AOPC.

Reads every speed-up measured on one CPU in ``benchmarks/results/latest-cpu*.json`` (the crossover cells
and the AOPC rows of the incremental path, against the full forward bound), recomputes the estimate of
:func:`camfaith.incremental.incremental_plan` for each, and prints the root mean square of the log ratio and
the cells where "auto" forgoes a measured gain or takes a loss. ``--search`` tries a grid of the cost
constants and prints the best; the constants in ``camfaith/incremental/inference.py`` came from it.

    python benchmarks/fit_costs.py [--search]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import torch

import camfaith
from camfaith.incremental import inference as incremental
from camfaith.incremental.windows import place_windows, value_shapes, walk_model

RESULTS = Path(__file__).parent / "results"
CONSTANTS = ("NODE_OVERHEAD", "ELEMENTWISE_OVERHEAD", "SMALL_WINDOW", "MOVE_COST", "FULL_MOVE_COST")
GRID = ((4e6, 6e6, 8e6, 1.6e7), (0.0, 1.0, 2.0, 3.0), (8.0, 32.0), (4.0, 16.0, 32.0), (32.0, 64.0, 128.0))


def measured_cells() -> list[dict]:
    """Every measured speed-up on the CPU: model settings, heatmap size, batch and speed-up."""
    cells = []
    for path in sorted(RESULTS.glob("latest-cpu*.json")):
        result = json.loads(path.read_text())
        config = result["config"]
        model = {"variant": config["variant"], "small_input": config["small_input"]}
        for arch in result["archs"]:
            for cell in arch["crossover"]:
                cells.append({"arch": arch["arch"], **model, "size": cell["input_size"], "regions": cell["regions"],
                              "batch": config["crossover"]["images"], "measured": cell["measured_speedup"]})
            for row in arch["rows"]:
                if row["metric"] == "AOPC" and row.get("path") == "incremental":
                    cells.append({"arch": arch["arch"], **model, "size": config["input_size"],
                                  "regions": int(row["setting"].split("x")[0]),
                                  "batch": min(config["images"], config["chunks"]["aopc"]),
                                  "measured": row["efficiency"]})
    return [cell for cell in cells if math.isfinite(cell["measured"])]


def geometry(cells: list[dict]) -> list[tuple]:
    """The walked graph, value shapes and windows of every cell (models built once per setting)."""
    graphs, out = {}, []
    for cell in cells:
        key = (cell["arch"], cell["variant"], cell["small_input"], cell["size"])
        if key not in graphs:
            model, _ = camfaith.build_model(cell["arch"], 7, input_size=cell["size"], small_input=cell["small_input"],
                                            variant=cell["variant"])
            graph = walk_model(model.eval())
            graphs[key] = graph, value_shapes(graph.nodes, 3, cell["size"], cell["size"])
        graph, shapes = graphs[key]
        out.append((graph, shapes, place_windows(graph.nodes, shapes, cell["regions"])))
    return out


def estimates(cells: list[dict], geometries: list[tuple]) -> list[float]:
    """The estimated speed-ups with the module's current constants."""
    speedups = []
    for cell, (graph, shapes, windows) in zip(cells, geometries):
        _, full, windowed = incremental._cut(graph, windows, shapes, cell["regions"] ** 2, cell["batch"])
        speedups.append(full / windowed)
    return speedups


def log_error(cells: list[dict], speedups: list[float]) -> float:
    return math.sqrt(sum(math.log(s / c["measured"]) ** 2 for c, s in zip(cells, speedups)) / len(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true", help="grid-search the cost constants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cells = measured_cells()
    geometries = geometry(cells)
    if args.search:
        def error(values):
            for name, value in zip(CONSTANTS, values):
                setattr(incremental, name, value)
            return log_error(cells, estimates(cells, geometries))
        best = min(itertools.product(*GRID), key=error)
        error(best)
        print("best constants:", ", ".join(f"{n} = {v:g}" for n, v in zip(CONSTANTS, best)))
    speedups = estimates(cells, geometries)
    print(f"{len(cells)} measured cells; root mean square of log(estimated / measured) = "
          f"{log_error(cells, speedups):.3f}")
    threshold = incremental.AUTO_MIN_SPEEDUP
    for cell, speedup in zip(cells, speedups):
        takes = speedup >= threshold
        if (takes and cell["measured"] < 1) or (not takes and cell["measured"] >= threshold):
            print(f"  auto {'takes a loss' if takes else 'forgoes a gain'}: {cell['arch']} {cell['size']} px, "
                  f"{cell['regions']}x{cell['regions']}, batch {cell['batch']}: estimated {speedup:.2f}, "
                  f"measured {cell['measured']:.2f}")


if __name__ == "__main__":
    main()
