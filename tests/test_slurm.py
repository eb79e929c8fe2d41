"""The pipeline on a real SLURM scheduler, and what each notebook asks a scheduler for.

The slow test starts a private single-node SLURM (tests/slurm_cluster.py), runs the tiny study of
conftest.py through the profile profiles/slurm, checks that every notebook ran as its own SLURM job with the
resources its configuration asked for, and builds the book from the results.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from camfaith.pipeline import build_book
from conftest import copy_book_sources, in_ci
from slurm_cluster import log_tails, missing_requirements, single_node_slurm

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOPICS = ("02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery", "08_sanity", "09_family",
          "10_reliability")
SLURM_TOPICS = ["02_train", "03_aopc"]  # on the cluster: three rounds of jobs (two CPUs), not five


def snakemake(work: Path, *arguments, env=None) -> subprocess.CompletedProcess:
    env = (env or os.environ) | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
               *map(str, arguments)]
    return subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)


def planned_jobs(work: Path, *configs: dict) -> dict:
    """The dry run of the Snakefile under the given configurations (merged in order): each job's name
    (rule, then its wildcards) with its threads and resources as Snakemake states them."""
    files = []
    for number, config in enumerate(configs):
        files.append(work / f"config{number}.yaml")
        files[-1].write_text(yaml.safe_dump(config))
    result = snakemake(work, "--configfile", *files, "--cores", "64", "-n")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs, fields = {}, None
    for line in result.stdout.splitlines() + ["rule end:"]:  # a job: "rule <name>:", then "    <field>: <value>"
        if line.startswith("rule ") and fields is not None:
            name = f"{fields['rule']} {fields.get('wildcards', '')}".strip()
            jobs[name] = dict(pair.split("=", 1) for pair in fields["resources"].split(", "))
            jobs[name]["threads"] = fields.get("threads", "1")
        if line.startswith("rule "):
            fields = {"rule": line[5:-1]} if line != "rule all:" else None
        elif line.startswith("    ") and fields is not None and ": " in line:
            fields.update([line.strip().split(": ", 1)])
    return jobs


@pytest.mark.slow
def test_cuda_device_asks_for_a_gpu_for_training_and_metrics_only(tmp_path, tiny_config):
    jobs = planned_jobs(tmp_path, tiny_config | {"device": "cuda", "resources": {"metric": {"mem_mb": 3000}}})
    rules = [name.split()[0] for name in jobs]
    assert rules.count("train") == 1 and rules.count("metric") == len(TOPICS) - 1, rules
    assert {name.split()[0] for name, job in jobs.items() if job.get("gpu") == "1"} == {"train", "metric"}
    assert {job["threads"] for job in jobs.values()} == {"1"}
    assert jobs["metric run=synthetic_vgg11, topic=05_haas"]["mem_mb"] == "3000"  # the configuration's
    assert jobs["train run=synthetic_vgg11"]["mem_mb"] == "8000" and jobs["summary"]["runtime"] == "30"


@pytest.mark.slow
def test_thesis_configuration_asks_for_gpus_and_cores(tmp_path):
    """configs/thesis.yaml as it is, with one synthetic run instead of its data sets (not needed for a plan)."""
    thesis = yaml.safe_load((ROOT / "configs/thesis.yaml").read_text())
    jobs = planned_jobs(tmp_path, thesis, {"runs": [{"dataset": "synthetic", "arch": "vgg11"}]})
    for name, job in jobs.items():
        rule = name.split()[0]
        expected = thesis["resources"].get(rule, {})
        assert job.get("gpu", "0") == str(expected.get("gpu", 0)), name
        assert job["threads"] == str(expected.get("threads", 1)), name
    assert {name.split()[0] for name, job in jobs.items() if job.get("gpu") == "1"} == {"train", "metric"}


def test_unknown_rule_kind_in_resources_is_named(tmp_path, tiny_config):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(tiny_config | {"resources": {"training": {"gpu": 1}}}))
    result = snakemake(tmp_path, "--configfile", tmp_path / "bad.yaml", "--cores", "1", "-n")
    assert result.returncode != 0
    assert "['training'] are not rule kinds" in result.stderr and "train, metric" in result.stderr


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A private single-node SLURM: fails under CI when it cannot start here, else skips."""
    problem = missing_requirements()
    if problem:
        how = "as root: apt-get install slurm-wlm munge (.ci/run does it)"
        (pytest.fail if in_ci() else pytest.skip)(f"{problem}; install them {how}")
    folder = tmp_path_factory.mktemp("slurm")
    with single_node_slurm(folder) as env:
        yield env, folder


@pytest.fixture(scope="module")
def slurm_study(slurm, tmp_path_factory, tiny_config):
    env, folder = slurm
    work = tmp_path_factory.mktemp("study")
    resources = {"train": {"mem_mb": 1500}, "metric": {"mem_mb": 1000, "runtime": 10}}
    config = tiny_config | {"topics": SLURM_TOPICS, "resources": resources}
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(work, "--configfile", work / "tiny.yaml", "--profile", ROOT / "profiles/slurm", env=env)
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-5000:] + log_tails(folder))
    return work, env


def slurm_jobs(env: dict) -> dict:
    """squeue's records of the cluster's jobs (kept MinJobAge seconds after they end): id -> state, memory, CPUs."""
    result = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%m|%C"], env=env,
                            capture_output=True, text=True, check=True)
    return {job: tuple(rest) for job, *rest in (line.split("|") for line in result.stdout.split())}


def expected_log_folder(notebook: Path) -> str:
    """Where the SLURM plugin puts the log of the job that executed a notebook: rule_<rule>/<wildcards>."""
    if notebook.parent.name != "results":
        return f"rule_{notebook.stem}"
    run, topic = next((notebook.stem[: -len(t) - 1], t) for t in TOPICS if notebook.stem.endswith("_" + t))
    return f"rule_train/{run}" if topic == "02_train" else f"rule_metric/{run}_{topic}"


@pytest.mark.slow
def test_every_notebook_runs_as_its_own_slurm_job(slurm_study):
    work, env = slurm_study
    notebooks = sorted((work / "results/tiny/notebooks").rglob("*.ipynb"))
    names = {notebook.name for notebook in notebooks}
    assert {"faithfulness.ipynb", "summary.ipynb"} | {f"synthetic_vgg11_{t}.ipynb" for t in SLURM_TOPICS} <= names
    logs = work / ".snakemake/slurm_logs"
    jobs = slurm_jobs(env)
    seen = set()
    for notebook in notebooks:
        folder = logs / expected_log_folder(notebook)
        [log] = folder.glob("*.log")  # one SLURM job per notebook, its log named by its job id
        assert log.stem not in seen and jobs[log.stem][0] == "COMPLETED", (notebook, jobs)
        assert notebook.name in log.read_text(), log  # the job wrote this notebook
        seen.add(log.stem)
        assert jobs[log.stem][2] == "1", jobs[log.stem]  # one thread, one CPU
        if "rule_metric" in str(folder):  # the configuration's resources reached sbatch
            assert jobs[log.stem][1] == "1000M", jobs[log.stem]
    assert len(jobs) == len(notebooks)  # nothing else ran on the cluster


@pytest.mark.slow
def test_book_builds_from_the_results_of_the_cluster(slurm_study, tmp_path):
    work, _ = slurm_study
    html = build_book(work / "results/tiny/notebooks", copy_book_sources(tmp_path))
    assert 'pasted-text">tiny<' in (html / "book/summary.html").read_text()
    assert (html / "book/generated/results/synthetic_vgg11_03_aopc.html").exists()
