# The report's pipeline: every chapter is a notebook executed by papermill (python -m camfaith.pipeline).
#   snakemake --configfile configs/default.yaml --cores 2        (make results)
# Results of a config live in results/<name>/ (checkpoints, per-image CSVs, executed notebooks);
# re-running only does what is missing or stale (a changed notebook, parameter or input).
import copy
import itertools
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import update_config

configfile: "configs/default.yaml"

ROOT = Path(workflow.basedir)  # notebooks are read from here; results go to the working directory
# Snakemake sets a notebook's OMP_NUM_THREADS and MKL_NUM_THREADS to its rule's threads: one unless the
# configuration asks for more (RESOURCE_DEFAULTS), so --cores N runs N notebooks side by side without oversubscription.

NAME = config["name"]
OUT = f"results/{NAME}"
NB = f"{OUT}/notebooks"
TOPICS = ["02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery", "08_sanity", "09_family",
          "10_reliability"]
METRIC_PARAMETERS = {"03_aopc": "aopc", "04_max_sensitivity": "max_sensitivity", "05_haas": "haas",
                     "06_gallery": "gallery", "08_sanity": "sanity",
                     "09_family": "family", "10_reliability": "reliability"}
# How the forward passes run on a GPU (camfaith.device.forward_precision and set_memory_format), set under
# defaults or per run, passed only where a run sets them: Max-Sensitivity's passes are CAM passes, which
# stay float32.
SPEED_PARAMETERS = {"02_train": ("precision", "channels_last"), "03_aopc": ("precision", "channels_last"),
                    "04_max_sensitivity": ("channels_last",), "05_haas": ("precision", "channels_last")}


def merged(defaults, override):
    """``defaults`` updated by ``override``, nested mappings merged key by key; neither is changed."""
    result = copy.deepcopy(defaults)
    update_config(result, override)
    return result


def expand_grid(run):
    """A run with a ``grid`` of dotted settings (``train.lr: [1e-4, 1e-6]``) becomes one run per combination."""
    grid = run.pop("grid", None)
    if not grid:
        return [run]
    runs = []
    for number, values in enumerate(itertools.product(*grid.values()), start=1):
        variant = json.loads(json.dumps(run))
        for dotted, value in zip(grid, values):
            *parents, leaf = dotted.split(".")
            target = variant
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        variant["name"] = f"{run['dataset']}_{run['arch']}_{number:02d}"
        runs.append(variant)
    return runs


def replicates(name, run):
    """``train_seeds: R`` trains R networks on the same split, with training seeds seed, seed + 1, ...:
    the run itself, then ``<name>_t2`` ... ``<name>_tR``."""
    for number in range(1, int(run.get("train_seeds", 1)) + 1):
        yield (name if number == 1 else f"{name}_t{number}",
               run | {"train_seed": config["seed"] + number - 1, "replicate_of": name})


# What each kind of rule asks a scheduler for (profiles/slurm): threads (CPUs), mem_mb, runtime (minutes), gpu.
# A configuration's `resources:` block overrides them per rule kind and may add any other resource
# (slurm_partition, gpu_model, ...). Training and metric notebooks ask for a GPU when the device is CUDA.
# Local runs (make results) only use threads; mem_mb, runtime and gpu only matter to a scheduler.
CUDA = int(str(config["device"]).startswith("cuda"))
RESOURCE_DEFAULTS = {
    "faithfulness": {"threads": 1, "mem_mb": 4000, "runtime": 30},
    "train": {"threads": 1, "mem_mb": 8000, "runtime": 120, "gpu": CUDA},
    "metric": {"threads": 1, "mem_mb": 8000, "runtime": 120, "gpu": CUDA},
    "summary": {"threads": 1, "mem_mb": 4000, "runtime": 30},
    "benchmark": {"threads": 1, "mem_mb": 2000, "runtime": 15},
}
if set(config.get("resources") or {}) - set(RESOURCE_DEFAULTS):
    sys.exit(f"resources: {sorted(set(config['resources']) - set(RESOURCE_DEFAULTS))} are not rule kinds; "
             f"the configuration may set resources for {', '.join(RESOURCE_DEFAULTS)}")
RESOURCES = merged(RESOURCE_DEFAULTS, config.get("resources") or {})


def scheduled(kind):
    """The resources of a rule kind other than threads (a rule states those on their own)."""
    return {name: value for name, value in RESOURCES[kind].items() if name != "threads"}


RUNS = dict(replicate for entry in config["runs"] for run in expand_grid(dict(entry))
            for replicate in replicates(run.get("name", f"{run['dataset']}_{run['arch']}"),
                                        merged(config["defaults"], run)))
TOPICS = config.get("topics", TOPICS)


def check_data():
    """Every data set the runs need, checked before any notebook runs: what is missing and how to get it."""
    from camfaith.data.check import missing_data

    messages = []
    for run in RUNS.values():
        messages += [m for m in missing_data([run["dataset"]], config.get("data_root") or None,
                                             {run["dataset"]: run["dataset_options"]}) if m not in messages]
    if messages:
        sys.exit(f"The configuration {NAME} needs data that the data root does not hold:\n\n"
                 + "\n\n".join(messages))


def check_settings():
    """Every key of the configuration and of each run (defaults merged in) against camfaith.configuration's schema."""
    from camfaith.configuration import check_configuration

    sections = ["train", *(METRIC_PARAMETERS[topic] for topic in TOPICS if topic in METRIC_PARAMETERS)]
    try:
        check_configuration(config, RUNS, sections)
    except ValueError as error:
        sys.exit(str(error))


if workflow.is_main_process:  # once, not again in every job a cluster executor starts
    check_settings()
    check_data()


def cli(parameters):
    """papermill parameters as -p name=value, values JSON-encoded so strings stay strings."""
    return " ".join(f"-p {name}={shlex.quote(json.dumps(value))}" for name, value in parameters.items())


def run_parameters(name, topic):
    """The training chapter gets the run's settings; a metric chapter only the run folder and its own settings."""
    run = RUNS[name]
    common = {"run_dir": f"{OUT}/{name}", "device": config["device"]}
    common |= {key: run[key] for key in SPEED_PARAMETERS.get(topic, ()) if key in run}
    if topic == "02_train":
        settings = {key: run[key] for key in ("dataset", "arch", "input_size", "dataset_options", "small_input",
                                              "stages", "variant", "weights", "train_seed", "replicate_of")}
        settings |= {"data_root": config.get("data_root", ""), "seed": config["seed"], "progress": False}
        return cli(common | settings | run["train"])
    return cli(common | run[METRIC_PARAMETERS[topic]])


# The timings of the classroom configuration (benchmarks/classroom.py), shown whatever configuration is run; its
# page is left out only where a configuration sets `classroom: ""`, as the measuring script does.
CLASSROOM = "benchmarks/results/classroom-cpu.json"

# Where several notebooks are ready, the scheduler starts the training first (it unlocks a run's chapters), then
# the longest chapters, so that no long chapter is left to run alone at the end while the other cores idle.
PRIORITY = {"02_train": 4, "03_aopc": 3, "10_reliability": 2, "09_family": 2, "05_haas": 1}


rule all:
    input:
        f"{NB}/faithfulness.ipynb",
        expand(f"{NB}/results/{{run}}_{{topic}}.ipynb", run=RUNS, topic=TOPICS),
        f"{NB}/summary.ipynb",
        [f"{NB}/benchmark.ipynb"] if config.get("benchmark") else [],
        [f"{NB}/classroom.ipynb"] if config.get("classroom", CLASSROOM) else [],


rule faithfulness:
    input: ROOT / "notebooks/01_faithfulness.py"
    output: f"{NB}/faithfulness.ipynb"
    params: cli(config["faithfulness"] | {"seed": config["seed"]})
    threads: RESOURCES["faithfulness"]["threads"]
    resources: **scheduled("faithfulness")
    shell: "python -m camfaith.pipeline run {input} {output} {params}"


rule train:
    input: ROOT / "notebooks/02_train.py"
    output:
        notebook=f"{NB}/results/{{run}}_02_train.ipynb",
        report=f"{OUT}/{{run}}/report.json",
    params: lambda wildcards: run_parameters(wildcards.run, "02_train")
    priority: PRIORITY["02_train"]
    threads: RESOURCES["train"]["threads"]
    resources: **scheduled("train")
    shell: "python -m camfaith.pipeline run {input} {output.notebook} {params}"


rule metric:
    input:
        notebook=ROOT / "notebooks/{topic}.py",
        report=f"{OUT}/{{run}}/report.json",
    output: f"{NB}/results/{{run}}_{{topic}}.ipynb"
    wildcard_constraints: topic="|".join(METRIC_PARAMETERS), run="|".join(RUNS)
    params: lambda wildcards: run_parameters(wildcards.run, wildcards.topic)
    priority: lambda wildcards: PRIORITY.get(wildcards.topic, 0)
    threads: RESOURCES["metric"]["threads"]
    resources: **scheduled("metric")
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"


rule summary:
    input:
        notebook=ROOT / "notebooks/07_summary.py",
        chapters=expand(f"{NB}/results/{{run}}_{{topic}}.ipynb", run=RUNS, topic=TOPICS),
    output: f"{NB}/summary.ipynb"
    params: cli({"results_dir": OUT, "runs": list(RUNS), "configuration": NAME, **config.get("summary", {})})
    threads: RESOURCES["summary"]["threads"]
    resources: **scheduled("summary")
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"


def benchmark_parameters(input):
    return cli({"results_file": str(input.results), "results_224_file": str(input.scale[0]),
                "thesis_config": str(input.scale[1])})


rule benchmark:
    input:
        notebook=ROOT / "notebooks/90_benchmark.py",
        results=ROOT / config.get("benchmark", "benchmarks/results/latest-cpu.json"),
        # the 224 px run and the projected configuration; a GPU run joins when one is committed
        scale=[ROOT / "benchmarks/results/latest-cpu-224.json", ROOT / "configs/thesis.yaml"]
              + [path for path in [ROOT / "benchmarks/results/latest-cuda-224.json"] if path.exists()],
    output: f"{NB}/benchmark.ipynb"
    params: lambda wildcards, input: benchmark_parameters(input)
    threads: RESOURCES["benchmark"]["threads"]
    resources: **scheduled("benchmark")
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"


rule classroom:
    input:
        notebook=ROOT / "notebooks/91_classroom.py",
        results=ROOT / (config.get("classroom") or CLASSROOM),
    output: f"{NB}/classroom.ipynb"
    params: lambda wildcards, input: cli({"results_file": str(input.results)})
    threads: RESOURCES["benchmark"]["threads"]
    resources: **scheduled("benchmark")
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"
