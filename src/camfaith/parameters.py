"""Checking and parsing the parameters of the notebooks and the configurations.

Configurations hold lists and mappings (``regions: [4, 8]``, ``dataset_options: {variant: colour}``),
and papermill passes them to the notebooks as they are. On the command line, where every value is
text, the same parameters may be written ``-p regions=4,8,14`` and ``-p dataset_options=n_train=600,variant=colour``;
:func:`parse_list` and :func:`parse_options` accept both forms. Every check raises a ``ValueError`` that
names the parameter, the value received and what would be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise a clear error for a parameter outside its choices."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not known; choose one of: {', '.join(map(str, choices))}")


def check_positive_integers(**values) -> None:
    """Raise a clear error for any value that is not a positive integer (``True`` is not one)."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")


def parse_list(value, kind=float, allow_empty: bool = False) -> list:
    """A list or tuple of values, or its command-line form ``"4,8,14"`` (blanks around commas ignored), as a
    list of ``kind``: ``[4, 8, 14]``; ``kind=str`` for names."""
    parts = value if isinstance(value, list | tuple) else [p.strip() for p in str(value).split(",") if p.strip()]
    try:
        values = [kind(part) for part in parts]
    except (TypeError, ValueError):
        raise ValueError(f"expected a list of {kind.__name__} (or, on the command line, comma-separated), "
                         f"got {value!r}") from None
    if not values and not allow_empty:
        raise ValueError(f"expected at least one value, got {value!r}")
    return values


def parse_removal(value, named: Iterable) -> str | float:
    """An AOPC removal: one of the ``named`` ones (``camfaith.metrics.PERTURBATIONS``, kept as text) or a
    constant fill value (a float)."""
    named = tuple(named)
    if isinstance(value, str) and value.strip() in named:
        return value.strip()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the removal {value!r} is not known; choose one of: {', '.join(named)}, "
                         f"or a number to fill removed cells with that constant") from None


def parse_options(value: dict | str | None) -> dict:
    """Options (of a data set's loader, or of the primary endpoints) as a mapping, or in their command-line form
    ``"name=value,..."`` (values parsed as YAML scalars): ``"n_train=600"`` -> ``{"n_train": 600}``."""
    import yaml

    if isinstance(value, dict):
        if not all(isinstance(name, str) for name in value):
            raise ValueError(f"options are a mapping from names to values, got {value!r}")
        return dict(value)
    options = {}
    for part in parse_list(value or "", str, allow_empty=True):
        name, sep, text = part.partition("=")
        if not sep:
            raise ValueError(f"options are name=value pairs separated by commas, got {value!r}")
        options[name.strip()] = yaml.safe_load(text.strip())
    return options


def options_text(options: dict) -> str:
    """The command-line form of options, ``"name=value,..."`` (the inverse of :func:`parse_options`)."""
    return ",".join(f"{name}={value}" for name, value in options.items())
