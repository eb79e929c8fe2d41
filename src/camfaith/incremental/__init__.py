"""Incremental inference: AOPC's perturbed scores without a full forward pass per removal step.

The engine behind ``aopc(..., incremental=...)`` (:mod:`camfaith.metrics.aopc`); the metrics do not
depend on how their forward passes are computed, only on the scores. Two modules:

- :mod:`~camfaith.incremental.windows`: the layer graph of a CNN and the window arithmetic (which
  rectangle of each layer one changed cell reaches, and how to run a layer on it);
- :mod:`~camfaith.incremental.inference`: the cost model that chooses a path
  (:func:`incremental_plan`, with cost constants fitted by ``benchmarks/fit_costs.py``) and the exact
  incremental logits (:func:`incremental_logits`).
"""

from camfaith.incremental.inference import (
    AUTO_DEVICES,
    AUTO_MIN_SPEEDUP,
    IncrementalFallbackWarning,
    IncrementalPlan,
    incremental_logits,
    incremental_plan,
    schedule_for,
)

__all__ = [
    "AUTO_DEVICES",
    "AUTO_MIN_SPEEDUP",
    "IncrementalFallbackWarning",
    "IncrementalPlan",
    "incremental_logits",
    "incremental_plan",
    "schedule_for",
]
