"""The configuration's schema: every shipped study passes it, and a bad one is stopped before any notebook
runs, with every problem named by its key and what would be accepted."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from camfaith.configuration import check_configuration, check_settings
from camfaith.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECTIONS = ["train", "aopc", "max_sensitivity", "haas", "gallery", "sanity", "family", "reliability"]


def merged_runs(config: dict) -> dict:
    """The runs with the defaults merged in, as the Snakefile merges them (grids left out)."""
    runs = {}
    for number, run in enumerate(config["runs"]):
        merged = copy.deepcopy(config["defaults"])
        update_config(merged, {key: value for key, value in run.items() if key != "grid"})
        runs[str(number)] = merged
    return runs


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda path: path.stem)
def test_every_shipped_configuration_passes_the_schema(path):
    config = yaml.safe_load(path.read_text())
    check_configuration(config, merged_runs(config), SECTIONS)


def test_every_problem_is_named_by_its_key_with_what_is_accepted(tiny_config):
    bad = copy.deepcopy(tiny_config) | {"device": "gpu"}
    bad["defaults"]["aopc"] |= {"regions": [4, 0], "regoins": [4]}
    bad["defaults"]["reliability"]["perturbations"] = ["uniform", "smudge"]
    bad["defaults"]["train"]["lr"] = "fast"
    bad["runs"][0]["arch"] = "alexnet"
    with pytest.raises(ValueError) as caught:
        check_configuration(bad, merged_runs(bad), SECTIONS)
    message = str(caught.value)
    assert "has 6 problem(s)" in message
    assert "device: 'gpu' does not match" in message and "(expected auto, cpu or cuda)" in message
    assert "runs.0.aopc.regions[1]: 0 is less than the minimum of 1 (expected a positive integer)" in message
    assert "runs.0.aopc: Additional properties are not allowed ('regoins' was unexpected)" in message
    assert "runs.0.reliability.perturbations[1]: 'smudge'" in message and "uniform, image_range, road" in message
    assert "runs.0.train.lr: 'fast' is not of type 'number' (expected a positive number)" in message
    assert "runs.0.arch: 'alexnet' is not one of" in message and "an architecture: one of resnet18" in message


def test_a_run_without_a_chapter_section_is_stopped(tiny_config):
    config = copy.deepcopy(tiny_config)
    del config["defaults"]["family"]
    with pytest.raises(ValueError, match="runs.0: 'family' is a required property"):
        check_configuration(config, merged_runs(config), SECTIONS)
    check_configuration(config, merged_runs(config), [s for s in SECTIONS if s != "family"])


def test_the_training_settings_follow_the_rules_of_the_configuration():
    """TrainConfig is judged by the train section's rules, except where None stands for the section's 0."""
    for settings in ({"batch_size": 0}, {"precision": "float16"}, {"channels_last": "yes"}, {"lr": -1.0}):
        with pytest.raises(ValueError) as section:
            check_settings("train", settings)
        with pytest.raises(ValueError) as config:
            TrainConfig(**settings)
        assert str(section.value).removeprefix("train.") == str(config.value).removeprefix("train_config.")
    check_settings("train", {"patience": 0, "scheduler_step": 0})  # 0: no early stopping, no scheduler
    with pytest.raises(ValueError, match="train_config.patience: 0 is not valid"):
        TrainConfig(patience=0)  # None says "none" here


def test_the_pipeline_stops_on_a_bad_configuration_before_any_notebook(tmp_path, tiny_config):
    bad = copy.deepcopy(tiny_config)
    bad["defaults"]["haas"]["scalings"] = ["centred"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1", "-n"]
    result = subprocess.run(command, env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert "runs.synthetic_vgg11.haas.scalings[0]: 'centred' is not one of ['unit', 'centered', 'signed']" in (
        result.stderr)
