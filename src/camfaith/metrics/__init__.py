"""The evaluation metrics of Lamprou (2023, section 2.2), one module per metric.

Each metric is a pure function of a model (or an explanation function), a batch of images and
attribution maps. It returns per-image scores, and curves where the metric has one, as tensors on
the device of the model (AOPC, HAAS) or of the images (Max-Sensitivity). Aggregation over a test
set and plotting live elsewhere.

Score directions, also stored as the function attribute ``higher_is_better``:

- :func:`aopc` (Samek et al. 2017, eq. 6-7 of Lamprou 2023; :mod:`~camfaith.metrics.aopc`):
  higher is better when removing the most relevant cells first (the default), lower is better with
  ``order="lerf"`` (:data:`HIGHER_IS_BETTER`); :func:`aopc_methods` scores many maps with the same
  draws. :func:`area_between_curves` (MoRF minus LeRF AOPC, Tomsett et al. 2020): higher is better.
  The perturbed scores come from full forward passes or, when estimated faster, from incremental
  inference that recomputes only the windows one removed cell reaches (``incremental``; the engine is
  :mod:`camfaith.incremental`, whose :func:`~camfaith.incremental.incremental_plan` says which path and why).
- :func:`max_sensitivity` (Yeh et al. 2019, eq. 8 of Lamprou 2023;
  :mod:`~camfaith.metrics.max_sensitivity`): lower is better.
- :func:`haas` (Lee et al. 2022, eq. 9-10 of Lamprou 2023; :mod:`~camfaith.metrics.haas`): higher
  is better; above 1 the attribution helps the model.
- :func:`feature_deletion` (:mod:`~camfaith.metrics.feature_deletion`): AOPC's form on the target
  layer's grid, the logit tracked through the head; higher is better, and on a one-Linear Flatten
  head HiResCAM's order is the best one. :func:`feature_occlusion` is its positive control.
- :func:`relevance_mass`, :func:`relevance_rank` (Arras et al. 2022) and
  :func:`energy_pointing_game` (Wang et al. 2020; all in :mod:`~camfaith.metrics.localisation`), for
  data with ground-truth masks: higher is better.

Randomness (the noise of AOPC and of Max-Sensitivity) comes from an explicit ``torch.Generator``.
It may live on the device of the images, or on the CPU: a CPU generator's draws are made on the
CPU and moved to the device once per block, which gives the same noise on every device. With
``generator=None`` the global RNG of the device is used and results depend on its state.
"""

from camfaith.metrics.aopc import (
    HIGHER_IS_BETTER,
    ORDERS,
    PERTURBATIONS,
    SCORES,
    TIE_BREAKS,
    AOPCResult,
    aopc,
    aopc_methods,
    area_between_curves,
    occlusion_maps,
)
from camfaith.metrics.cells import ZeroShares, cell_partition, pool_regions, zero_shares
from camfaith.metrics.feature_deletion import FeatureDeletionResult, deletion_ranks, feature_deletion, feature_occlusion
from camfaith.metrics.haas import ATTRIBUTION_SCALINGS, HAASResult, ha_attribution, ha_images, haas, haas_ratio
from camfaith.metrics.localisation import energy_pointing_game, relevance_mass, relevance_rank
from camfaith.metrics.max_sensitivity import MaxSensitivityResult, map_norms, max_sensitivity
from camfaith.metrics.road import ROAD_NOISE, road_impute

__all__ = [
    "FeatureDeletionResult",
    "deletion_ranks",
    "feature_deletion",
    "feature_occlusion",
    "ATTRIBUTION_SCALINGS",
    "HIGHER_IS_BETTER",
    "ORDERS",
    "PERTURBATIONS",
    "SCORES",
    "ROAD_NOISE",
    "TIE_BREAKS",
    "AOPCResult",
    "HAASResult",
    "MaxSensitivityResult",
    "ZeroShares",
    "aopc",
    "aopc_methods",
    "occlusion_maps",
    "energy_pointing_game",
    "area_between_curves",
    "cell_partition",
    "ha_attribution",
    "ha_images",
    "haas",
    "haas_ratio",
    "map_norms",
    "max_sensitivity",
    "pool_regions",
    "relevance_mass",
    "relevance_rank",
    "road_impute",
    "zero_shares",
]
