# The report's pipeline: every chapter is a notebook executed by papermill (python -m camfaith.pipeline).
#   snakemake --configfile configs/default.yaml --cores 2        (make results)
# Results of a config live in results/<name>/ (checkpoints, per-image CSVs, executed notebooks);
# re-running only does what is missing or stale (a changed notebook, parameter or input).
import json
import shlex

configfile: "configs/default.yaml"

NAME = config["name"]
OUT = f"results/{NAME}"
NB = f"{OUT}/notebooks"
TOPICS = ["02_train", "03_aopc", "04_max_sensitivity", "05_haas", "06_gallery"]
METRIC_PARAMETERS = {"03_aopc": "aopc", "04_max_sensitivity": "max_sensitivity", "05_haas": "haas",
                     "06_gallery": "gallery"}


def merged(defaults, override):
    result = dict(defaults)
    for key, value in override.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


RUNS = {f"{run['dataset']}_{run['arch']}": merged(config["defaults"], run) for run in config["runs"]}


def cli(parameters):
    """papermill parameters as -p name=value, values JSON-encoded so strings stay strings."""
    return " ".join(f"-p {name}={shlex.quote(json.dumps(value))}" for name, value in parameters.items())


def run_parameters(name, topic):
    run = RUNS[name]
    common = {key: run[key] for key in ("dataset", "arch", "input_size", "dataset_options")}
    common |= {"data_root": config.get("data_root", ""), "run_dir": f"{OUT}/{name}", "device": config["device"],
               "seed": config["seed"]}
    if topic == "02_train":
        model = {key: run[key] for key in ("small_input", "variant", "weights")}
        return cli(common | model | run["train"] | {"progress": False})
    return cli(common | run[METRIC_PARAMETERS[topic]])


rule all:
    input:
        f"{NB}/faithfulness.ipynb",
        expand(f"{NB}/results/{{run}}_{{topic}}.ipynb", run=RUNS, topic=TOPICS),
        f"{NB}/summary.ipynb",
        f"{NB}/benchmark.ipynb",


rule faithfulness:
    input: "notebooks/01_faithfulness.py"
    output: f"{NB}/faithfulness.ipynb"
    params: cli(config["faithfulness"] | {"seed": config["seed"]})
    shell: "python -m camfaith.pipeline run {input} {output} {params}"


rule train:
    input: "notebooks/02_train.py"
    output:
        notebook=f"{NB}/results/{{run}}_02_train.ipynb",
        report=f"{OUT}/{{run}}/report.json",
    params: lambda wildcards: run_parameters(wildcards.run, "02_train")
    shell: "python -m camfaith.pipeline run {input} {output.notebook} {params}"


rule metric:
    input:
        notebook="notebooks/{topic}.py",
        report=f"{OUT}/{{run}}/report.json",
    output: f"{NB}/results/{{run}}_{{topic}}.ipynb"
    wildcard_constraints: topic="|".join(METRIC_PARAMETERS)
    params: lambda wildcards: run_parameters(wildcards.run, wildcards.topic)
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"


rule summary:
    input:
        notebook="notebooks/07_summary.py",
        chapters=expand(f"{NB}/results/{{run}}_{{topic}}.ipynb", run=RUNS, topic=TOPICS),
    output: f"{NB}/summary.ipynb"
    params: cli({"results_dir": OUT, "runs": ",".join(RUNS), **config.get("summary", {})})
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"


rule benchmark:
    input:
        notebook="notebooks/90_benchmark.py",
        results=config["benchmark"],
    output: f"{NB}/benchmark.ipynb"
    params: cli({"results_file": config["benchmark"]})
    shell: "python -m camfaith.pipeline run {input.notebook} {output} {params}"
