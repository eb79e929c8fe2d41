"""The full-size path of the replication: configs/thesis-smoke.yaml through every notebook.

configs/thesis.yaml runs 224 px networks stripped as in section 4.2 of Lamprou (2023), with every
convolutional stage, the trainable layers of its Table 3 and every metric setting of its Tables 5-7;
only a GPU runs it. configs/thesis-smoke.yaml takes the same code path on two synthetic images per
split, one epoch and random weights, so that the first bug of that path shows up in minutes. Here it
runs on the CPU with the reductions of :data:`CPU_REDUCTIONS` and the networks of :data:`CPU_ARCHS`;
the GPU script (benchmarks/gpu.sh) runs it whole and builds its book.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from camfaith.runs import Run

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMOKE = ROOT / "configs/thesis-smoke.yaml"
TOPICS = ("02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery", "08_sanity", "09_family",
          "10_reliability")

#: What the CPU run changes in configs/thesis-smoke.yaml, and why. A forward pass at 224 px takes 0.2 s
#: (ResNet34) to 1.3 s (VGG19) on one core of this CPU, and every image a chapter scores costs tens to
#: hundreds of passes, so the run proves the code path on the fewest images each chapter accepts.
#: AOPC at the sizes 4, 8, 11 and 14 removes 397 cells per map: 9 maps and the occlusion map, 10 x 397
#: passes per image, most of an hour for VGG19 alone. One 2x2 grid runs the same code (224 px cells, the
#: three removals and both orders, ROAD's imputation of 112 px quadrants); the grid size only sets how
#: many cells are removed, as the occlusion controls' grids do. One Max-Sensitivity radius of the six
#: runs the same code as the six; the largest moves the images farthest from the data. The Table 1
#: chapter checks one of the three networks: its code does not depend on the architecture, and the runs
#: explain two of them at 224 px. The family chapters (Table 1's and each run's) measure three maps, one
#: per level of the hierarchy (HiResCAM, XGrad-CAM, Grad-CAM): Score-CAM passes the image once per
#: channel, 512 passes of VGG19 per image, and the other maps run the same code at any size
#: (tests/test_family.py); the stages from the feature grid to the pixels (an AOPC run with a 7 x 7 grid)
#: run in the tiny study. The reliability chapter follows the two CAMs under its explanation adversary
#: only (the weight and input perturbations run the same scoring code ten times more) and the multiverse
#: under one removal. HAAS keeps four images (it scores those the model gets right) and the family
#: chapter two (its Friedman ranking needs two).
CPU_REDUCTIONS = {
    ("device",): "cpu",
    ("faithfulness", "archs"): ["resnet34"],
    ("faithfulness", "methods"): ["gradcam", "hirescam", "xgradcam"],
    ("defaults", "aopc", "regions"): [2],
    ("defaults", "aopc", "chunk_size"): 1,
    ("defaults", "haas", "n_images"): 4,
    ("defaults", "haas", "occlusion_regions"): 2,
    ("defaults", "max_sensitivity", "radii"): [0.5],
    ("defaults", "max_sensitivity", "samples"): [1],
    ("defaults", "family", "regions"): [2],
    ("defaults", "family", "radii"): [0.5],
    ("defaults", "family", "samples"): [1],
    ("defaults", "family", "occlusion_regions"): 2,
    ("defaults", "family", "methods"): ["xgradcam"],
    ("defaults", "family", "gap_stages"): False,
    ("defaults", "reliability", "n_images"): 1,
    ("defaults", "reliability", "regions"): [2],
    ("defaults", "reliability", "perturbations"): ["uniform"],
    ("defaults", "reliability", "kinds"): ["explanation"],
    ("defaults", "reliability", "methods"): ["gradcam", "hirescam"],
}
#: The networks the CPU run trains and explains: ResNet34 (basic blocks, global average pooling) and VGG19 (a
#: Flatten head of dense layers on a 14 x 14 grid). ResNet50's thesis surgery and its Table 3 rule are checked on
#: the real architecture by tests/test_models.py, tests/test_theory.py and tests/test_incremental.py; every
#: chapter on it would add a third to this run's time for no code path of its own.
CPU_ARCHS = ("resnet34", "vgg19")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def cpu_config() -> dict:
    config = load(SMOKE)
    for keys, value in CPU_REDUCTIONS.items():
        section = config
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value  # the Snakefile's schema check names a misspelt key
    config["runs"] = [run for run in config["runs"] if run["arch"] in CPU_ARCHS]
    return config


def run_name(run: dict) -> str:
    return f"{run['dataset']}_{run['arch']}"


def test_the_smoke_configuration_takes_the_code_path_of_the_thesis_configuration():
    smoke, thesis = load(SMOKE), load(ROOT / "configs/thesis.yaml")
    for key in ("input_size", "small_input", "stages", "variant"):
        assert smoke["defaults"][key] == thesis["defaults"][key], key
    settings = {"aopc": ("regions", "perturbation"), "max_sensitivity": ("radii",), "haas": ("scalings",)}
    for metric, keys in settings.items():
        for key in keys:
            assert smoke["defaults"][metric][key] == thesis["defaults"][metric][key], (metric, key)
    assert len(smoke["defaults"]["max_sensitivity"]["samples"]) == 6
    assert smoke["defaults"]["weights"] == ""  # random weights: nothing to download
    assert set(smoke["faithfulness"]["archs"]) == set(thesis["faithfulness"]["archs"])
    assert smoke["faithfulness"]["input_size"] == 224
    rules = {}
    for run in thesis["runs"]:
        rules.setdefault(run["arch"], set()).add(run["train"].get("trainable_layers", "none"))
    assert {run["arch"] for run in smoke["runs"]} == set(rules)
    for run in smoke["runs"]:  # each network trains the layers of one of its Table 3 columns
        assert run["dataset"] == "synthetic" and run["train"]["trainable_layers"] in rules[run["arch"]], run


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("thesis-smoke")
    config = work / "thesis-smoke.yaml"
    config.write_text(yaml.safe_dump(cpu_config()))
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
               "--configfile", str(config), "--cores", "2", "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return work / "results/thesis-smoke"


@pytest.mark.slow
def test_every_notebook_runs_on_the_full_size_networks(smoke_study):
    names = {path.name for path in (smoke_study / "notebooks").rglob("*.ipynb")}
    runs = [run_name(run) for run in cpu_config()["runs"]]
    assert {"faithfulness.ipynb", "summary.ipynb", "benchmark.ipynb"} <= names
    assert {f"{run}_{topic}.ipynb" for run in runs for topic in TOPICS} <= names
    for run in cpu_config()["runs"]:
        opened = Run.open(smoke_study / run_name(run))
        assert opened.input_size == 224 and opened.model["variant"] == "thesis"
        assert opened.model["stages"] is None and not opened.model["small_input"]
        setup = json.loads((opened.folder / "config.json").read_text())
        assert setup["train_config"]["trainable_layers"] == run["train"]["trainable_layers"]
        assert setup["model"]["input_size"] == 224
        aopc = opened.scores("aopc")
        assert set(aopc["regions"]) == {2} and aopc["aopc"].notna().all()
        assert set(opened.scores("aopc_removal")["removal"]) == {"uniform", "0.0", "road"}
        assert set(opened.scores("max_sensitivity")["radius"]) == {0.5}
        assert set(opened.scores("haas")["scaling"]) == {"centered", "unit", "signed"}
        for metric in ("localisation", "sanity", "identity"):
            assert len(opened.scores(metric)), metric
