"""The benchmark's bookkeeping: the committed result file still renders, and its targets still follow.

The measurements themselves take minutes (``make benchmark``); these tests check the parts that turn
measurements into the result files, which ``notebooks/90_benchmark.py`` reads.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark is a folder of scripts that import each other

import harness  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import targets  # noqa: E402


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads((BENCHMARKS / "results" / "latest-cpu.json").read_text())


def test_committed_markdown_is_rendered_from_its_json(committed):
    assert report.markdown(committed) == (BENCHMARKS / "results" / "latest-cpu.md").read_text()


def test_targets_and_notes_follow_from_the_measurements(committed):
    assert targets.summary(committed["archs"], committed["memory_estimate"]) == committed["targets"]
    assert report.interpret(committed) == committed["notes"]
    for arch in committed["archs"]:  # a profile is taken exactly for the metrics that miss a target
        assert targets.missed_metrics(arch["arch"], arch["rows"], arch["cams"]) == set(arch["profiles"])


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


def test_cli_defaults_and_bad_values():
    device, config = run.configure(run.parser().parse_args(["--device", "cpu"]))
    assert device.type == "cpu" and config["archs"] == ["resnet18", "vgg11"] and config["quick"]
    assert config["regions"] == (4, 8) and config["compare_sensitivity"] == (0.05, 20)
    with pytest.raises(SystemExit, match="--repeats must be a positive integer"):
        run.configure(run.parser().parse_args(["--device", "cpu", "--repeats", "0"]))
    with pytest.raises(SystemExit, match="smaller than 8 regions"):
        run.configure(run.parser().parse_args(["--device", "cpu", "--input-size", "4"]))
