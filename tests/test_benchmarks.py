"""The benchmark's bookkeeping: the committed result files still render, their targets still follow, and the
projection of the full replication reads them right.

The measurements themselves take minutes (``make benchmark``); these tests check the parts that turn
measurements into the result files and the projection, which ``notebooks/90_benchmark.py`` reads.
"""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark is a folder of scripts that import each other

import crossover  # noqa: E402
import fit_costs  # noqa: E402
import harness  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import targets  # noqa: E402

from camfaith import build_model, costs  # noqa: E402
from camfaith.incremental import AUTO_MIN_SPEEDUP, IncrementalPlan, incremental_plan  # noqa: E402


def load(name: str) -> dict:
    return json.loads((BENCHMARKS / "results" / f"{name}.json").read_text())


@pytest.fixture(scope="module", params=["latest-cpu", "latest-cpu-224"])
def committed(request) -> tuple[str, dict]:
    return request.param, load(request.param)


def test_committed_markdown_is_rendered_from_its_json(committed):
    name, result = committed
    assert report.markdown(result) == (BENCHMARKS / "results" / f"{name}.md").read_text()
    assert f"latest-{result['label']}" == name


def test_targets_and_notes_follow_from_the_measurements(committed):
    _, result = committed
    assert targets.summary(result["archs"], result["memory_estimate"], result["config"]) == result["targets"]
    assert report.interpret(result) == result["notes"]
    for arch in result["archs"]:  # a profile is taken exactly for the metrics that miss a target
        missed = targets.missed_metrics(arch["arch"], arch["rows"], arch["cams"], targets.auto_paths(arch),
                                        result["config"]["input_size"])
        assert missed == set(arch["profiles"])


def test_committed_results_time_both_aopc_paths_and_agree(committed):
    _, result = committed
    for arch in result["archs"]:
        paths = {(r["setting"], r["path"]) for r in arch["rows"] if r["implementation"] == "camfaith"
                 and r["metric"] == "AOPC"}
        compared = f"{result['config']['compare_regions']}x{result['config']['compare_regions']}"
        assert {(compared, "incremental"), (compared, "full forward")} <= paths
        assert {f"{r}x{r}" for r in result["config"]["regions"]} <= {setting for setting, _ in paths}
        assert arch["checks"]["aopc_incremental_full_max_abs_difference"] < 1e-5
        assert {(c["input_size"], c["regions"]) for c in arch["crossover"]} == {
            (size, regions) for size in result["config"]["crossover"]["sizes"]
            for regions in result["config"]["crossover"]["regions"]}


def test_replan_keeps_the_timings_and_takes_todays_estimates(committed):
    _, result = committed
    replanned = costs.replan(result)
    config = result["config"]
    for before, after in zip(result["archs"], replanned["archs"]):
        assert after["rows"] == before["rows"]
        measured = [[c["measured_speedup"] for c in entry["crossover"]] for entry in (before, after)]
        assert measured[0] == measured[1]
        model, _ = build_model(before["arch"], 7, input_size=config["input_size"], small_input=config["small_input"],
                               variant=config["variant"])
        for auto in after["aopc_auto"]:
            plan = incremental_plan(model, config["input_size"], auto["regions"],
                                    batch=min(config["images"], config["chunks"]["aopc"]))
            assert auto["estimated_speedup"] == plan.speedup
            assert auto["auto"] == crossover.PATH_NAMES[plan.incremental]


def test_the_cost_model_no_longer_takes_a_measured_loss():
    """Every measured cell where incremental AOPC was slower than the bound: "auto" now takes the full path."""
    cells = fit_costs.measured_cells()
    speedups = fit_costs.estimates(cells, fit_costs.geometry(cells))
    assert fit_costs.log_error(cells, speedups) < 0.2
    losses = [s for cell, s in zip(cells, speedups) if cell["measured"] < 1]
    assert losses and max(losses) < AUTO_MIN_SPEEDUP


def test_timed_interleaves_and_keeps_results():
    calls = []
    run_ = harness.timed({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, 2,
                         torch.device("cpu"))
    assert calls == ["a", "b", "a", "b", "a", "b"]  # one warm-up each, then interleaved repeats
    assert {name: entry["result"] for name, entry in run_.items()} == {"a": 1, "b": 2}
    assert all(len(entry["runs"]) == 2 and entry["median"] >= 0 for entry in run_.values())


def test_bound_table_pools_every_run():
    runs = [{"bound forward 4": {"median": 2.0}, "camfaith": {"median": 9.0}}, {"bound forward 4": {"median": 4.0}}]
    (entry,) = harness.bound_table(runs)
    assert entry == {"pass": "forward", "batch": 4, "measurements": 2, "images_per_s": 4 / 3.0, "lowest": 1.0,
                     "highest": 2.0}


def configured(*options: str) -> tuple[torch.device, dict]:
    return run.configure(run.parser().parse_args(["--device", "cpu", *options]))


def test_cli_defaults_and_bad_values():
    device, config = configured()
    assert device.type == "cpu" and config["archs"] == ["resnet18", "vgg11"] and config["setting"] == "quick"
    assert config["regions"] == (4, 8) and config["compare_sensitivity"] == (0.05, 20)
    assert run.label(device, config) == "cpu"
    with pytest.raises(SystemExit, match="--repeats must be a positive integer"):
        configured("--repeats", "0")
    with pytest.raises(SystemExit, match="smaller than 8 regions"):
        configured("--input-size", "4")


def test_the_224_setting_is_the_original_studys_scale_and_options_override_it():
    device, config = configured("--setting", "full224")
    assert config["archs"] == ["vgg19", "resnet50"] and config["variant"] == "thesis"
    assert config["input_size"] == 224 and config["images"] == 2 and config["regions"] == (4, 8, 11, 14)
    assert sorted(samples for _, samples in config["sensitivity"]) == [20, 40]
    assert run.label(device, config) == "cpu-224"
    _, config = configured("--setting", "full224", "--images", "3", "--archs", "vgg19", "--variant", "intact")
    assert config["images"] == 3 and config["archs"] == ["vgg19"] and config["variant"] == "intact"


def metric_row(metric, setting, implementation="camfaith", path=None, ms=1.0, efficiency=1.0):
    return {"arch": "net", "metric": metric, "setting": setting, "implementation": implementation, "path": path,
            "passes per image": "17 fwd", "ms per image": ms, "efficiency": efficiency, "camfaith faster by": None,
            "agreement": None}


def test_rows_are_ordered_camfaith_first_by_metric_size_and_path():
    _, config = configured()
    rows = [metric_row("AOPC", "4x4", "Quantus RegionPerturbation"), metric_row("HAAS", "unit"),
            metric_row("AOPC", "8x8", path="full forward"), metric_row("AOPC", "4x4", path="full forward"),
            metric_row("AOPC", "4x4", path="incremental"), metric_row("Max-Sensitivity", "r=0.5, 40 samples"),
            metric_row("Max-Sensitivity", "r=0.05, 20 samples")]
    ordered = [(r["metric"], r["setting"], r["path"]) for r in measure.ordered(rows, config)]
    assert ordered == [("AOPC", "4x4", "incremental"), ("AOPC", "4x4", "full forward"), ("AOPC", "8x8", "full forward"),
                       ("Max-Sensitivity", "r=0.05, 20 samples", None), ("Max-Sensitivity", "r=0.5, 40 samples", None),
                       ("HAAS", "unit", None), ("AOPC", "4x4", None)]


def test_aopc_paths_compares_the_paths_and_quantus_from_the_rows():
    entry = {"arch": "net", "aopc_auto": [{"regions": 4, "auto": "incremental", "estimated_speedup": 3.0},
                                          {"regions": 8, "auto": "incremental", "estimated_speedup": 4.0}],
             "rows": [metric_row("AOPC", "4x4", path="incremental", ms=100.0, efficiency=2.5),
                      metric_row("AOPC", "4x4", path="full forward", ms=250.0, efficiency=1.0),
                      metric_row("AOPC", "4x4", "Quantus RegionPerturbation", ms=300.0),
                      metric_row("AOPC", "8x8", path="incremental", ms=200.0, efficiency=4.0)]}
    four, eight = costs.aopc_paths(entry)
    assert four["incremental vs full forward"] == 2.5 and four["incremental vs Quantus"] == 3.0
    assert four["full forward vs Quantus"] == 1.2 and four["incremental vs bound"] == 2.5
    assert eight["full forward ms"] is None and eight["incremental vs full forward"] is None
    assert eight["incremental vs bound"] == 4.0 and eight["incremental vs Quantus"] is None


def test_incremental_targets_apply_where_auto_takes_the_path_and_at_224_px():
    row14 = metric_row("AOPC", "14x14", path="incremental", efficiency=1.8)
    cams = {"camfaith_over_one_library": 0.3, "two_library_over_camfaith": 6.0}
    found = [t for _, t in targets.arch_targets("vgg19", [row14], cams, {14: "incremental"}, 224)]
    assert found[0]["target"].startswith("AOPC 14x14 at 224 px") and not found[0]["met"]  # 1.8 < 2 for VGG19
    found = [t for _, t in targets.arch_targets("resnet50", [row14], cams, {14: "incremental"}, 224)]
    assert found[0]["met"]  # 1.8 >= 1.5 for ResNet50
    assert len(targets.arch_targets("vgg19", [row14], cams, {14: "full forward"}, 64)) == 2  # the CAMs' only


def test_crossover_cell_recovers_the_seeding_and_step_costs():
    plan = IncrementalPlan(True, "estimate", 10.0, 2.0, 5.0, 3, 4)
    seeding, step, n, steps, regions = 0.4, 0.1, 2, 9, 4
    one, many = n * (seeding + step), n * (seeding + steps * step)
    cell = crossover.cell(plan, regions, forward_s=0.5, one_s=one, many_s=many, steps=steps, n=n)
    assert cell["seeding_ms"] == pytest.approx(400) and cell["step_ms"] == pytest.approx(100)
    assert cell["measured_speedup"] == pytest.approx(16 * 0.5 / (0.4 + 16 * 0.1))
    assert cell["auto"] == "incremental" and cell["faster_measured"] == "incremental"
    noisy = crossover.cell(plan, regions, forward_s=0.5, one_s=many, many_s=one, steps=steps, n=n)
    assert math.isnan(noisy["measured_speedup"]) and noisy["faster_measured"] is None


def test_crossover_measures_a_small_network():
    config = {"crossover": {"sizes": (32,), "regions": (4,), "steps": 3, "images": 1}, "chunks": {"aopc": 8},
              "seed": 0, "small_input": True, "variant": "intact", "repeats": 1}
    (entry,) = crossover.crossover("resnet18", config, torch.device("cpu"), lambda message: None)
    assert entry["arch"] == "resnet18" and entry["input_size"] == 32 and entry["regions"] == 4
    assert entry["auto"] in ("incremental", "full forward") and entry["estimated_speedup"] > 0
    assert entry["forward_ms"] > 0


def test_write_is_atomic_and_named_by_label(tmp_path):
    result = {**load("latest-cpu"), "label": "cpu-99", "date": "2000-01-01"}
    text = report.write(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cpu-99-2000-01-01.json", "cpu-99-2000-01-01.md", "latest-cpu-99.json", "latest-cpu-99.md"]
    assert (tmp_path / "latest-cpu-99.md").read_text() == text == report.markdown(
        json.loads((tmp_path / "latest-cpu-99.json").read_text()))


def test_split_sizes_follow_table_2_of_the_original_study():
    assert costs.split_sizes("crc") == {"train": 80_000, "val": 20_000, "test": 7_180}
    for dataset, pools in costs.DATASETS.items():
        sizes = costs.split_sizes(dataset)
        assert abs(sum(sizes.values()) - sum(count for _, count, _ in pools)) <= len(pools)
    assert costs.split_sizes("breakhis")["test"] == round(0.22 * 2_480 + 0.19 * 5_429)
    with pytest.raises(ValueError, match="no split sizes"):
        costs.split_sizes("cifar10")


def synthetic_entry(arch: str = "vgg19") -> dict:
    rows = [metric_row("AOPC", "4x4", path="full forward", ms=1700.0, efficiency=1.0),
            metric_row("AOPC", "4x4", path="incremental", ms=850.0, efficiency=2.0),
            metric_row("AOPC", "8x8", path="incremental", ms=1625.0, efficiency=4.0),
            {**metric_row("Max-Sensitivity", "r=0.05, 20 samples", ms=2100.0), "passes per image": "21 fwd+bwd"},
            metric_row("HAAS", "unit scaling, with maps", ms=300.0)]
    bound = [{"pass": "forward", "batch": 8, "images_per_s": 10.0},
             {"pass": "forward", "batch": 2, "images_per_s": 1.0},
             {"pass": "forward_backward", "batch": 4, "images_per_s": 4.0}]
    return {"arch": arch, "rows": rows, "bound": bound}


def test_costs_read_the_measurements_and_extrapolate_the_untimed_sizes():
    measured = costs.Costs(synthetic_entry())
    assert measured.forward == 0.1 and measured.forward_backward == 0.25  # the largest batch of each pass
    assert measured.explanation == pytest.approx(0.1) and measured.haas == pytest.approx(0.3)
    assert measured.aopc(4, "incremental") == pytest.approx(0.85)
    assert measured.aopc(8, "full forward") == pytest.approx(65 * 0.1 / 1.0)  # the bound over the 4x4 efficiency
    assert measured.aopc(11, "incremental") == pytest.approx(122 * 0.1 / 4.0)  # the nearest timed size: 8x8


def test_run_seconds_counts_each_chapters_passes():
    measured = costs.Costs(synthetic_entry())
    run_ = {"dataset": "crc", "train": {"epochs": 2},
            "aopc": {"n_images": 100, "regions": "4,8", "noise_seeds": 1},
            "max_sensitivity": {"n_images": 10, "samples": "20,40", "noise_seeds": 1},
            "haas": {"n_images": 100_000, "scalings": "unit,signed"}}
    seconds = costs.run_seconds(run_, measured)
    assert seconds["training"] == pytest.approx(2 * (80_000 * 0.25 + 20_000 * 0.1) + 7_180 * 0.1)
    # 9 maps (CAMs, their inversions, occlusion and its inversion, 3 reference maps) per size, the occlusion
    # map's L forward passes per size, 11 side scorings at 4x4, one explanation
    incremental = 100 * (9 * (0.85 + 1.625) + (16 + 64) * 0.1 + 11 * 0.85 + 0.1)
    assert seconds["AOPC, incremental"] == pytest.approx(incremental)
    assert seconds["AOPC, full forward"] > seconds["AOPC, incremental"]
    assert seconds["Max-Sensitivity"] == pytest.approx(10 * 3 * (21 + 41 + 1) * 0.1)
    # 9 maps under unit, the 2 CAMs under signed, and the 4x4 occlusion map's 16 forward passes
    assert seconds["HAAS"] == pytest.approx(7_180 * (0.3 + ((9 + 2 - 1) * 2 + 16) * 0.1))


def test_projection_of_the_thesis_configuration_from_the_committed_224_px_results():
    result, thesis = load("latest-cpu-224"), yaml.safe_load((ROOT / "configs" / "thesis.yaml").read_text())
    projected = costs.project(result, thesis)
    assert len(projected) == len(thesis["runs"]) * len(costs.CHAPTERS)
    measured = projected["arch"].isin([a["arch"] for a in result["archs"]])
    assert (projected.loc[measured, "seconds"] > 0).all() and projected.loc[~measured, "seconds"].isna().all()
    hours = costs.totals(projected[measured])["hours"]
    assert hours["all, incremental AOPC"] < hours["all, full forward AOPC"]
    assert hours["all, incremental AOPC"] == pytest.approx(hours.drop(["AOPC, full forward", "all, full forward AOPC",
                                                                       "all, incremental AOPC"]).sum())
    with pytest.raises(ValueError, match="benchmark that size"):
        costs.project({**result, "config": {**result["config"], "input_size": 64}}, thesis)
