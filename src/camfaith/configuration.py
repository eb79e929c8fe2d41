"""The schema of a study's configuration (``configs/*.yaml``): every key checked once, before anything runs.

A configuration names its runs and, per run, the settings of every chapter. The pipeline checks it
against :func:`schema` (JSON Schema, built from the package's own registries of data sets,
architectures, removals, scalings and maps) when it starts: at the top level, and then every run
after the ``defaults`` are merged into it (:func:`check_configuration`). A problem is reported with the
key that holds it and what would be accepted, all problems at once. The settings of
:class:`camfaith.train.TrainConfig` are checked by the same rules as the ``train`` section
(:func:`check_settings`), so a value is judged by one rule wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

POSITIVE = {"type": "integer", "minimum": 1, "description": "a positive integer"}
COUNT = {"type": "integer", "minimum": 0, "description": "a non-negative integer (0 for none)"}
POSITIVE_NUMBER = {"type": "number", "exclusiveMinimum": 0, "description": "a positive number"}
FLAG = {"type": "boolean", "description": "true or false"}
TEXT = {"type": "string", "description": "a string"}


def _list(item: dict, example: str, empty: bool = False) -> dict:
    return {"type": "array", "items": item, "minItems": 0 if empty else 1,
            "description": f"a list such as {example}" + (" (may be empty)" if empty else "")}


def _choice(choices: Iterable, what: str) -> dict:
    choices = list(choices)
    return {"enum": choices, "description": f"{what}: one of {', '.join(map(str, choices))}"}


def _section(properties: dict, required: Iterable[str] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False,
            "description": f"a mapping with the keys {', '.join(properties)}"}


def _either_null(rule: dict) -> dict:
    return {"anyOf": [{"type": "null"}, rule], "description": f"null or {rule['description']}"}


def _train_sections(speed: dict) -> dict:
    """The training chapter's parameters (``train``, where 0 stands for "none") and the settings of
    :class:`camfaith.train.TrainConfig` (``train_config``, where None does)."""
    decay = {"type": "number", "minimum": 0, "description": "a non-negative number"}
    gamma = {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "a number in (0, 1]"}
    train = {
        "lr": POSITIVE_NUMBER, "weight_decay": decay, "scheduler_step": COUNT, "scheduler_gamma": gamma,
        "batch_size": POSITIVE, "epochs": POSITIVE, "patience": COUNT,
        "trainable_layers": {"anyOf": [{"type": "null"}, TEXT, _list(TEXT, '["layer3", "layer4"]')],
                             "description": 'module names as in Table 3, e.g. "layer3,layer4", "features.19-34", '
                                            '"all" or "none"'},
        "normal_classes": {"anyOf": [TEXT, _list(TEXT, '["Normal"]', empty=True)],
                           "description": 'a list of class names such as ["Normal"] (may be empty)'},
        **speed,
    }
    train_config = train | {
        "weight_decay": _either_null(decay), "scheduler_step": _either_null(POSITIVE),
        "scheduler_gamma": _either_null(gamma), "patience": _either_null(POSITIVE),
        "num_workers": COUNT, "seed": {"type": "integer", "description": "an integer"},
    }
    return {"train_config": _section(train_config), "train": _section(train)}


def _metric_sections(speed: dict) -> dict:
    """The sections of the metric chapters, one per chapter, keyed as in a run."""
    from camfaith.family import FAMILY
    from camfaith.metrics import ATTRIBUTION_SCALINGS, PERTURBATIONS
    from camfaith.reliability import TEST_KINDS

    removal = {"anyOf": [{"enum": list(PERTURBATIONS)}, {"type": "number"}],
               "description": f"one of {', '.join(PERTURBATIONS)}, or a number to fill removed cells with"}
    regions, radii = _list(POSITIVE, "[4, 8]"), _list(POSITIVE_NUMBER, "[0.05, 0.1]")
    scalings = _list(_choice(ATTRIBUTION_SCALINGS, "a scaling"), '["centered", "unit"]')
    return {
        "aopc": _section({"n_images": POSITIVE, "regions": regions, "perturbation": removal, "chunk_size": POSITIVE,
                          "noise_seeds": POSITIVE, **speed}),
        "max_sensitivity": _section({"n_images": POSITIVE, "radii": radii, "samples": _list(POSITIVE, "[8, 8]"),
                                     "normalize": FLAG, "chunk_size": POSITIVE, "noise_seeds": POSITIVE,
                                     "channels_last": FLAG}),
        "haas": _section({"n_images": POSITIVE, "scalings": scalings, "n_examples": POSITIVE,
                          "occlusion_regions": POSITIVE, "chunk_size": POSITIVE, **speed}),
        "gallery": _section({"n_images": POSITIVE, "n_localisation": POSITIVE}),
        "sanity": _section({"n_images": POSITIVE, "n_examples": POSITIVE}),
        "family": _section({"n_images": POSITIVE, "regions": regions, "perturbation": removal, "chunk_size": POSITIVE,
                            "radii": radii, "samples": _list(POSITIVE, "[4, 4]"), "scalings": scalings,
                            "occlusion_regions": POSITIVE, "n_gallery": POSITIVE,
                            "methods": _list(_choice(FAMILY, "a map of the family"), '["layercam"]', empty=True),
                            "gap_stages": FLAG}),
        "reliability": _section({"n_images": POSITIVE,
                                 "methods": _list(_choice(FAMILY, "a map of the family"), '["gradcam", "hirescam"]'),
                                 "regions": regions, "perturbations": _list(removal, '["uniform", 0.0, "blur"]'),
                                 "radii": radii, "samples": _list(POSITIVE, "[4, 4]"), "n_perturbations": POSITIVE,
                                 "kinds": _list(_choice(TEST_KINDS, "a kind of test"), '["model", "input"]'),
                                 "model_noise": _list(POSITIVE_NUMBER, "[0.001, 1.0]"),
                                 "input_noise": _list(POSITIVE_NUMBER, "[0.001, 1.0]"), "chunk_size": POSITIVE}),
    }


def schema() -> dict:
    """The configuration's JSON Schema; the ``$defs`` hold a run and each chapter's section (``aopc``,
    ``train``, ...), and ``train_config`` the settings of :class:`camfaith.train.TrainConfig`."""
    from camfaith.data import DATASETS
    from camfaith.device import PRECISIONS
    from camfaith.family import FAMILY
    from camfaith.models import ARCHITECTURES, VARIANTS

    speed = {"precision": _choice(PRECISIONS, "the precision of the forward passes"), "channels_last": FLAG}
    sections = _train_sections(speed) | _metric_sections(speed)
    run = {
        "name": TEXT, "dataset": _choice(DATASETS, "a data set"), "arch": _choice(ARCHITECTURES, "an architecture"),
        "input_size": POSITIVE, "small_input": FLAG, "stages": COUNT, "variant": _choice(VARIANTS, "a variant"),
        "weights": TEXT, "dataset_options": {"type": "object", "description": "a mapping such as {variant: colour}"},
        "train_seeds": POSITIVE, "train_seed": COUNT, "replicate_of": TEXT, **speed,
        **{key: {"$ref": f"#/$defs/{key}"} for key in sections if key != "train_config"},
    }
    faithfulness = _section({"archs": _list(_choice(ARCHITECTURES, "an architecture"), '["resnet18", "vgg11"]'),
                             "input_size": POSITIVE, "n_images": POSITIVE, "tolerance": POSITIVE_NUMBER,
                             "seed": COUNT, "methods": _list(_choice(FAMILY, "a map of the family"), '["gradcam"]',
                                                             empty=True)})
    top = {
        "name": {"type": "string", "pattern": r"^[\w.-]+$", "description": "a name of letters, digits, - _ ."},
        "device": {"type": "string", "pattern": r"^(auto|cpu|cuda(:\d+)?)$", "description": "auto, cpu or cuda"},
        "seed": COUNT, "data_root": TEXT, "benchmark": TEXT, "classroom": TEXT, "faithfulness": faithfulness,
        "defaults": {"type": "object", "description": "the settings every run starts from"},
        "runs": {"type": "array", "minItems": 1, "items": {"type": "object", "description": "a run"},
                 "description": "a list of runs, each a mapping with at least dataset and arch"},
        "summary": _section({"primary": {"type": ["object", "string"],
                                         "description": "a mapping such as {haas.scaling: unit}"}}),
        "topics": _list({"type": "string", "description": "a chapter such as 03_aopc"}, '["02_train", "03_aopc"]'),
        "resources": {"type": "object", "description": "a mapping from rule kinds to scheduler resources"},
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": sections | {"run": _section(run)},
            **_section(top, required=("name", "device", "seed", "faithfulness", "defaults", "runs"))}


def _problems(instance, rules: dict, where: str) -> list[str]:
    from jsonschema import Draft202012Validator

    problems = []
    for error in sorted(Draft202012Validator(rules).iter_errors(instance), key=lambda e: list(map(str, e.path))):
        key = where + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path)
        key = key.lstrip(".") or "the configuration"
        expected = error.schema.get("description") if isinstance(error.schema, dict) else None
        problems.append(f"{key}: {error.message}" + (f" (expected {expected})" if expected else ""))
    return problems


def check_configuration(config: Mapping, runs: Mapping[str, Mapping], required: Iterable[str] = ()) -> None:
    """Raise a ``ValueError`` that lists every problem of a configuration: its top level, then each of its
    ``runs`` (name -> the run with the defaults merged in), which must hold the sections in ``required``."""
    rules = schema()
    problems = _problems(dict(config), rules, "")
    run_rules = {"$defs": rules["$defs"], **rules["$defs"]["run"]}
    run_rules["required"] = ["dataset", "arch", "input_size", "small_input", "stages", "variant", "weights",
                             "dataset_options", *required]
    for name, run in runs.items():
        problems += _problems(dict(run), run_rules, f"runs.{name}")
    if problems:
        raise ValueError(f"the configuration {config.get('name', '')!r} has {len(problems)} problem(s):\n  "
                         + "\n  ".join(problems))


def check_settings(section: str, settings: Mapping) -> None:
    """Raise a ``ValueError`` naming every setting that breaks its rule in ``section``: a chapter's section of
    a run (``"aopc"``, ...), or ``"train_config"``, the settings of :class:`camfaith.train.TrainConfig`."""
    rules = schema()
    problems = _problems(dict(settings), {"$defs": rules["$defs"], **rules["$defs"][section]}, section)
    if problems:
        raise ValueError("; ".join(problems))
