"""Checking and parsing the parameters of the notebooks and the configurations.

Papermill passes scalars only, so a list travels as ``"4,8,14"`` and loader options as
``"n_train=600,variant=colour"``. Every check raises a ``ValueError`` that names the parameter, the
value received and what would be accepted.
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


def parse_list(text, kind=float, allow_empty: bool = False) -> list:
    """``"4,8,14"`` -> ``[4, 8, 14]``; ``kind=str`` for names. Blanks around commas are ignored."""
    try:
        values = [kind(part.strip()) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None
    if not values and not allow_empty:
        raise ValueError(f"expected at least one value, got {text!r}")
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


def parse_options(text: str | None) -> dict:
    """Dataset options as ``"name=value,..."`` (values parsed as YAML scalars), e.g. ``"n_train=600"``."""
    import yaml

    options = {}
    for part in parse_list(text or "", str, allow_empty=True):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"dataset options are name=value pairs separated by commas, got {text!r}")
        options[name.strip()] = yaml.safe_load(value.strip())
    return options
