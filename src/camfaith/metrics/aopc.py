"""AOPC: Area Over the MoRF Perturbation Curve (Samek et al. 2017; eq. 6-7 of Lamprou 2023).

Score direction: **higher is better** (``aopc.higher_is_better``): removing the cells an explanation
calls most relevant first should make the tracked class probability fall fast.

The map is resized bilinearly to the image size (if needed) and averaged over a ``regions x
regions`` grid of cells (:func:`pool_regions`, the heatmap H of section 2.2.1 of Lamprou 2023).
Cells are removed most relevant first (MoRF), ties broken by the lower cell index. Step ``k``
replaces the pixels of the ``k``-th cell (all channels) and keeps the earlier cells removed:
``x_k = g(x_{k-1}, r_k)``. The tracked score ``f`` is the softmax probability of the class predicted
on the clean image (or of ``targets``). The per-image score over the ``L = regions**2`` steps is
eq. 6 of Lamprou (2023), as the book defines it (``book/metrics.md``, "AOPC: removing the most
relevant regions first"); its mean over the test set (eq. 7) is left to the caller.

Each removed cell gets noise drawn fresh for it, and the draw is made once per image for the
whole image up front, so ``x_k`` is the clean image with the first ``k`` cells taken from that
draw. The ``N * L`` perturbed images are then built with cumulative cell masks and go through the
model in chunks; the noise does not depend on ``chunk_size``.

Variants (the defaults give the metric above):

- ``order="lerf"`` removes the least relevant cells first (Tomsett et al. 2020, "Sanity checks for
  saliency metrics"). The curve of a good map then stays high, so **LeRF AOPC is lower-is-better**
  (:data:`HIGHER_IS_BETTER`); :func:`area_between_curves` (MoRF AOPC - LeRF AOPC, higher is
  better) uses both ends of the ranking.
- ``tie_break="random"`` orders equal cells at random (from ``tie_generator``) instead of by cell
  index. Ties are common: after the ReLU of the CAMs whole regions of a map are 0
  (:func:`~camfaith.metrics.cells.zero_shares` counts them), and the stable order then removes
  them top-left first.
- ``score="logit"`` tracks the class logit instead of its softmax probability: the probability can also
  fall because another class rises, and it saturates near 1; the logit is the quantity the CAMs explain.
- ``perturbation="blur"`` takes removed pixels from a Gaussian blur of the image (sigma
  :data:`BLUR_SIGMA` of its larger side, Fong & Vedaldi 2017): the cell keeps its colours and loses its
  detail, a removal without noise and without values outside the image.
- ``perturbation="road"`` imputes removed pixels from their kept neighbours plus noise (ROAD, Rong
  et al. 2022; :mod:`camfaith.metrics.road`), so the removed set's shape is not itself a signal.
  The imputation depends on the whole removed set, so it is solved per (image, step) pair inside
  the chunk loop, ``chunk_size`` pairs at a time; only its noise is drawn up front.

:func:`aopc_methods` scores many maps (the CAMs and the controls of :mod:`camfaith.controls`) on
the same images with one clean forward pass and the same draws, so that their scores are paired.

Two paths compute the same ``f(x_k)`` (``incremental``): full forward passes of the ``N * L``
perturbed images (``False``), or incremental inference (``True``; :mod:`camfaith.incremental`),
which keeps the activations of ``x_{k-1}`` and recomputes only the windows that the one changed cell
reaches; ``True`` raises a ``ValueError`` for a model or perturbation it cannot handle. By default
(``"auto"``) the one estimated faster is taken (:func:`~camfaith.incremental.incremental_plan`),
and full passes, with one warning, where the incremental path is impossible. The results agree up
to float rounding, and the draws are the same on both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import NamedTuple

import torch
import torchvision.transforms.functional as TF
from torch import nn

from camfaith.device import check_precision, evaluating, model_device
from camfaith.incremental.inference import incremental_logits, schedule_for
from camfaith.metrics.cells import cell_partition, pool_regions
from camfaith.metrics.checks import (
    check_generator,
    check_images,
    check_maps,
    check_targets,
    chunk_bounds,
    model_logits,
    resize_maps,
    softmax_probabilities,
)
from camfaith.metrics.road import is_road, road_impute, road_noise
from camfaith.parameters import check_choice, check_positive_integers
from camfaith.seeds import draw

__all__ = ["HIGHER_IS_BETTER", "ORDERS", "PERTURBATIONS", "SCORES", "TIE_BREAKS", "AOPCResult", "aopc", "aopc_methods",
           "area_between_curves", "occlusion_maps", "cell_partition", "pool_regions"]

PERTURBATIONS = ("uniform", "image_range", "road", "blur")
SCORES = ("probability", "logit")
BLUR_SIGMA = 0.05
"""Sigma of the ``"blur"`` removal as a share of the image's larger side (11 px at 224 px)."""
ORDERS = ("morf", "lerf")
TIE_BREAKS = ("stable", "random")
HIGHER_IS_BETTER = {"morf": True, "lerf": False}
"""Score direction of AOPC for each removal order."""


class AOPCResult(NamedTuple):
    """Output of :func:`aopc`.

    Attributes
    ----------
    scores : Tensor (N,)
        Per-image AOPC, ``1/(L+1) * sum_k (f(x_0) - f(x_k))`` (eq. 6-7 of Lamprou 2023 before the
        test-set mean).
    curves : Tensor (N, L+1)
        The perturbation curves (MoRF: Figure 14 of the original study): class probability after
        ``k = 0..L`` removed cells.
    order : Tensor (N, L)
        Cell indices (row-major, ``row * regions + column``) in removal order: most relevant first
        for MoRF, least relevant first for LeRF.
    targets : Tensor (N,)
        The class whose probability is tracked.
    """

    scores: torch.Tensor
    curves: torch.Tensor
    order: torch.Tensor
    targets: torch.Tensor


class _Prepared(NamedTuple):
    """What every map scored on the same images shares: checked inputs, draws and the clean scores."""

    images: torch.Tensor
    cells: torch.Tensor
    regions: int
    fill: torch.Tensor
    road: bool
    tie_keys: torch.Tensor | None
    targets: torch.Tensor
    clean: dict  # f(x_0) per tracked score
    chunk_size: int
    schedule: object  # the incremental schedule, or None for full forward passes
    precision: str  # of the forward passes (camfaith.device.forward_precision)


def _removal_fill(images: torch.Tensor, perturbation, generator) -> torch.Tensor:
    """What a removed pixel becomes (``g``); one full draw per image, so removed cells keep their noise.

    For ``"road"`` it is the noise added to the imputed values, which are computed per step later.
    """
    if isinstance(perturbation, str):
        if perturbation not in PERTURBATIONS:
            raise ValueError(
                f"unknown perturbation {perturbation!r}; use one of {PERTURBATIONS} or a float constant"
            )
        if is_road(perturbation):
            return road_noise(images, generator)
        if perturbation == "blur":
            return _blurred(images)
        draws = draw(images.shape, generator, images.device, images.dtype)
        if perturbation == "uniform":
            return 2 * draws - 1
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        high = images.amax(dim=(1, 2, 3), keepdim=True)
        return low + (high - low) * draws
    if (
        isinstance(perturbation, bool)
        or not isinstance(perturbation, Real)
        or not math.isfinite(perturbation)
    ):
        raise ValueError(
            f"perturbation must be one of {PERTURBATIONS} or a finite float constant, got {perturbation!r}"
        )
    return images.new_tensor(float(perturbation)).expand_as(images)


def _blurred(images: torch.Tensor) -> torch.Tensor:
    """A Gaussian blur of each image, sigma :data:`BLUR_SIGMA` of its larger side, reflected at the edges."""
    height, width = images.shape[-2:]
    sigma = BLUR_SIGMA * max(height, width)
    radius = min(math.ceil(3 * sigma), min(height, width) - 1)  # reflection needs a radius below the side
    return TF.gaussian_blur(images, kernel_size=2 * radius + 1, sigma=sigma)


def _tracked(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    """The tracked score ``f`` of each row of ``logits`` (``..., classes``) for its target (``...``)."""
    if score == "probability":
        values = softmax_probabilities(logits)
    else:  # in float32 at least, as the probabilities are
        values = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return values.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _removal_order(heat: torch.Tensor, order: str, tie_keys: torch.Tensor | None) -> torch.Tensor:
    """Cells ``(N, L)`` by pooled relevance, descending (MoRF) or ascending (LeRF).

    Equal cells keep the lower index first (a stable sort), or, with ``tie_keys``, the order of a
    random permutation: the cells are shuffled by the keys first and then stably sorted, so only
    equal cells can change places.
    """
    descending = order == "morf"
    if tie_keys is None:
        return torch.sort(heat, dim=1, descending=descending, stable=True).indices
    shuffle = torch.sort(tie_keys, dim=1, stable=True).indices
    ranked = torch.sort(heat.gather(1, shuffle), dim=1, descending=descending, stable=True).indices
    return shuffle.gather(1, ranked)


def _removal_steps(order: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)``: the step (1..L) at which each pixel is removed, given the cell ``order``."""
    steps = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, steps)
    return (rank[:, cells] + 1).unsqueeze(1)


def _clean_scores(
    model: nn.Module, images: torch.Tensor, targets, chunk_size: int, scores: tuple[str, ...], precision: str
) -> tuple[dict, torch.Tensor]:
    """``f(x_0)`` of every image for each tracked score, and the tracked classes (the predicted ones when
    ``targets`` is None)."""
    n_images = images.shape[0]
    clean_logits = torch.cat([model_logits(model, images[a:b], precision)
                              for a, b in chunk_bounds(n_images, chunk_size)])
    if targets is None:
        targets = clean_logits.argmax(dim=1)
    else:
        targets = check_targets(targets, n_images, images.device)
        if bool((targets >= clean_logits.shape[1]).any()):
            raise ValueError(f"targets must be class indices below {clean_logits.shape[1]}")
    return {score: _tracked(clean_logits, targets, score) for score in scores}, targets


def _perturbed_scores(model: nn.Module, prepared: _Prepared, removal_step: torch.Tensor,
                      cumulative: bool = True) -> dict:
    """``f(x_k)`` for every image and step ``k = 1..L``, shape ``(N, L)``, the dtype of the clean scores, for
    each tracked score (all from the same forward passes).

    Pair ``p`` of the ``N * L`` (image, step) pairs is image ``p // L`` with its first ``p % L + 1``
    cells removed: the cumulative mask ``removal_step <= k`` takes those pixels from the fill (or,
    for ROAD, from the imputation of that removed set plus the fill noise). With ``cumulative=False``
    only the ``k``-th cell is removed (``removal_step == k``), as an occlusion map needs.
    """
    images, fill, targets = prepared.images, prepared.fill, prepared.targets
    n_images, n_cells = images.shape[0], prepared.regions * prepared.regions
    n_pairs = n_images * n_cells
    scores = {score: clean.new_empty(n_pairs) for score, clean in prepared.clean.items()}
    for start, stop in chunk_bounds(n_pairs, prepared.chunk_size):
        pair = torch.arange(start, stop, device=images.device)
        image_index, step = pair // n_cells, pair % n_cells + 1
        steps = removal_step[image_index]
        removed = steps <= step.view(-1, 1, 1, 1) if cumulative else steps == step.view(-1, 1, 1, 1)
        if prepared.road:
            batch = road_impute(images[image_index], removed[:, 0], fill[image_index])
        else:
            batch = torch.where(removed, fill[image_index], images[image_index])
        logits = model_logits(model, batch, prepared.precision)
        for score, values in scores.items():
            values[start:stop] = _tracked(logits, targets[image_index], score)
    return {score: values.view(n_images, n_cells) for score, values in scores.items()}


def _prepare(
    model, images, maps: dict, regions, perturbation, generator, chunk_size, targets, tie_break, tie_generator,
    incremental, scores, precision,
):
    """Check the inputs, draw the fill (then the tie keys), run the clean forward pass and choose the
    path (full or incremental), once for all maps."""
    images = check_images(images)
    device = model_device(model, images.device)
    images = images.to(device)
    n_images, _, height, width = images.shape
    checked = {}
    for name, values in maps.items():
        try:
            checked[name] = check_maps(values, n_images, device)
        except ValueError as error:
            raise ValueError(f"maps {name!r}: {error}") from None
    check_positive_integers(chunk_size=chunk_size)
    check_choice("tie_break", tie_break, TIE_BREAKS)
    check_precision(precision, False, device)
    for score in scores:
        check_choice("score", score, SCORES)
    check_generator(generator, device)
    check_generator(tie_generator, device)
    cells = cell_partition(height, width, regions, device)
    fill = _removal_fill(images, perturbation, generator)
    tie_keys = None
    if tie_break == "random":
        keys_from = tie_generator if tie_generator is not None else generator
        tie_keys = draw((n_images, regions * regions), keys_from, device)
    schedule = schedule_for(model, images, regions, perturbation, incremental, min(n_images, chunk_size), precision)
    clean, targets = _clean_scores(model, images, targets, chunk_size, scores, precision)
    prepared = _Prepared(images, cells, regions, fill, is_road(perturbation), tie_keys, targets, clean, chunk_size,
                         schedule, precision)
    return prepared, checked


def _occlusion(model: nn.Module, prepared: _Prepared) -> torch.Tensor:
    """``(N, H, W)`` occlusion maps in [0, 1]: per cell, ``f(x_0)`` minus ``f`` with that cell alone removed
    by the metric's own removal and draws, spread over the cell's pixels and min-max scaled per image
    (a constant map becomes 0). ``f`` is the first tracked score."""
    n_images, n_cells = prepared.images.shape[0], prepared.regions * prepared.regions
    raster = torch.arange(n_cells, device=prepared.images.device).expand(n_images, n_cells)
    removed_alone = _perturbed_scores(model, prepared, _removal_steps(raster, prepared.cells), cumulative=False)
    score = next(iter(prepared.clean))
    drops = (prepared.clean[score][:, None] - removed_alone[score]).float()
    low, high = drops.amin(dim=1, keepdim=True), drops.amax(dim=1, keepdim=True)
    scaled = torch.where(high > low, (drops - low) / torch.where(high > low, high - low, 1.0), 0.0)
    return scaled[:, prepared.cells]


def _score(model: nn.Module, prepared: _Prepared, maps: torch.Tensor, order: str) -> dict[str, AOPCResult]:
    """AOPC of one map in one removal order (eq. 6 of Lamprou 2023), for each tracked score."""
    n_cells = prepared.regions * prepared.regions
    heat = pool_regions(resize_maps(maps, tuple(prepared.cells.shape)), prepared.regions).flatten(1)
    removal_order = _removal_order(heat, order, prepared.tie_keys)
    if prepared.schedule is None:
        perturbed = _perturbed_scores(model, prepared, _removal_steps(removal_order, prepared.cells))
    else:
        logits = incremental_logits(model, prepared.images, prepared.fill, removal_order, prepared.regions,
                                    prepared.chunk_size, prepared.schedule)
        perturbed = {score: _tracked(logits, prepared.targets[:, None].expand(-1, n_cells), score)
                     for score in prepared.clean}
    results = {}
    for score, clean in prepared.clean.items():
        curves = torch.cat([clean[:, None], perturbed[score]], dim=1)
        scores = (curves[:, :1] - curves[:, 1:]).sum(dim=1) / (n_cells + 1)
        results[score] = AOPCResult(scores=scores, curves=curves, order=removal_order, targets=prepared.targets)
    return results


def aopc(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    regions: int = 8,
    perturbation: str | float = "uniform",
    generator: torch.Generator | None = None,
    chunk_size: int = 64,
    targets: torch.Tensor | None = None,
    order: str = "morf",
    tie_break: str = "stable",
    tie_generator: torch.Generator | None = None,
    incremental: bool | str = "auto",
    score: str = "probability",
    precision: str = "float32",
) -> AOPCResult:
    """Per-image AOPC (Samek et al. 2017; section 2.2.1, eq. 6-7 of Lamprou 2023) as an :class:`AOPCResult`.

    See the module docstring for the definition. Higher is better for MoRF, lower for LeRF.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits ``(N, classes)``. It runs in eval mode under ``torch.no_grad``;
        each module's train/eval mode is restored afterwards.
    images : Tensor (N, C, H, W)
        Moved to the model's device.
    maps : Tensor (N, h, w)
        Attribution maps of any resolution; larger is more relevant.
    regions : int
        Cells per side, ``1 <= regions <= min(H, W)``; Lamprou (2023) uses 4, 8, 11 and 14 on 224 px.
    perturbation : {"uniform", "image_range", "road", "blur"} or float
        ``g``: ``"uniform"`` noise in [-1, 1] (the choice of the original study for images in [-1, 1]),
        ``"image_range"`` uniform noise in each image's own [min, max], ``"road"`` noisy linear
        imputation (Rong et al. 2022), ``"blur"`` the image blurred, or a constant value.
    generator : torch.Generator, optional
        Source of the noise, on the model's device or on the CPU (see :mod:`camfaith.metrics`).
    chunk_size : int
        Perturbed images per forward pass (and per ROAD imputation).
    targets : Tensor (N,), optional
        Classes to track; by default the class predicted on each clean image.
    order : {"morf", "lerf"}
        Remove the most (MoRF, higher AOPC is better) or least (LeRF, lower is better) relevant first.
    tie_break : {"stable", "random"}
        Equal cells by lower index, or in a random order drawn from ``tie_generator``.
    tie_generator : torch.Generator, optional
        Source of the random tie order; by default ``generator``, drawn after the noise.
    incremental : bool or "auto"
        Full passes (False), incremental inference (True), or the one estimated faster: module docstring.
    score : {"probability", "logit"}
        The tracked ``f``: the target's softmax probability (the original study) or its logit.
    precision : {"float32", "bfloat16"}
        Of the forward passes (:func:`camfaith.device.forward_precision`); bfloat16 needs CUDA and full passes.
    """
    check_choice("order", order, ORDERS)
    with evaluating(model), torch.no_grad():
        prepared, checked = _prepare(
            model, images, {"maps": maps}, regions, perturbation, generator, chunk_size, targets, tie_break,
            tie_generator, incremental, (score,), precision,
        )
        return _score(model, prepared, checked["maps"], order)[score]


aopc.higher_is_better = True


def aopc_methods(
    model: nn.Module,
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    regions: int = 8,
    perturbation: str | float = "uniform",
    seed: int = 0,
    chunk_size: int = 64,
    targets: torch.Tensor | None = None,
    orders: tuple[str, ...] = ("morf",),
    tie_break: str = "stable",
    incremental: bool | str = "auto",
    tie_seed: int | None = None,
    occlusion: bool = False,
    score: str | Sequence[str] = "probability",
    precision: str = "float32",
) -> dict[tuple, AOPCResult]:
    """:func:`aopc` of several maps of the same images, paired: one clean pass, the same draws.

    The noise (then the random tie keys) is drawn once from ``torch.Generator().manual_seed(seed)``
    and shared by every map and order, so the result for ``(name, order)`` equals
    ``aopc(model, images, maps[name], regions, perturbation, torch.Generator().manual_seed(seed),
    chunk_size, targets, order, tie_break, score=score)`` exactly, and differences between maps are not noise.
    ``incremental`` and ``precision`` choose the path as in :func:`aopc`. ``tie_seed`` draws the random tie keys from a
    generator of their own (:mod:`camfaith.seeds`) instead of the noise generator.

    ``occlusion=True`` adds the positive control of :mod:`camfaith.controls`, built from these very draws:
    ``"occlusion"``, the drop of the tracked probability when each cell alone is removed (the occlusion
    map of Zeiler & Fergus 2014 on the metric's grid, which approximates the best MoRF order), and
    ``"occlusion_inverted"``, its inversion. It costs one batched forward pass per image and cell.

    ``score`` is one tracked score, or several (``("probability", "logit")``), which then come from the
    same forward passes.

    Returns
    -------
    dict
        ``{(name, order): AOPCResult}`` for every map name and every order in ``orders``; with several
        scores, ``{(name, order, score): AOPCResult}``.
    """
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict {name: maps (N, H, W)}, e.g. {'hirescam': ...}")
    if isinstance(orders, str) or not orders:
        raise ValueError(f"orders must be a non-empty tuple of {ORDERS}, got {orders!r}")
    for order in orders:
        check_choice("order", order, ORDERS)
    generator = torch.Generator().manual_seed(seed)
    with evaluating(model), torch.no_grad():
        tie_generator = None if tie_seed is None else torch.Generator().manual_seed(tie_seed)
        prepared, checked = _prepare(
            model, images, maps, regions, perturbation, generator, chunk_size, targets, tie_break, tie_generator,
            incremental, (score,) if isinstance(score, str) else tuple(score), precision,
        )
        if occlusion:
            checked["occlusion"] = _occlusion(model, prepared)
            checked["occlusion_inverted"] = 1 - checked["occlusion"]
        results = {(name, order): _score(model, prepared, values, order) for name, values in checked.items()
                   for order in orders}
        if isinstance(score, str):
            return {key: result[score] for key, result in results.items()}
        return {(*key, tracked): result for key, by_score in results.items() for tracked, result in by_score.items()}


def occlusion_maps(
    model: nn.Module,
    images: torch.Tensor,
    regions: int = 4,
    perturbation: str | float = "uniform",
    seed: int = 0,
    chunk_size: int = 64,
    targets: torch.Tensor | None = None,
    precision: str = "float32",
) -> torch.Tensor:
    """``(N, H, W)`` occlusion maps in [0, 1] on a ``regions x regions`` grid: the positive control of
    :mod:`camfaith.controls` for metrics without a grid of their own (HAAS). Each cell's value is the
    drop of the tracked class probability (``targets``, by default the predicted class) when that cell
    alone is removed by ``perturbation`` with the noise of ``torch.Generator().manual_seed(seed)``;
    the same cells and draws as :func:`aopc_methods` with ``occlusion=True``; the forward passes run in
    ``precision`` (:func:`camfaith.device.forward_precision`)."""
    generator = torch.Generator().manual_seed(seed)
    with evaluating(model), torch.no_grad():
        prepared, _ = _prepare(model, images, {}, regions, perturbation, generator, chunk_size, targets, "stable",
                               None, False, ("probability",), precision)
        return _occlusion(model, prepared)


def area_between_curves(morf: AOPCResult | torch.Tensor, lerf: AOPCResult | torch.Tensor) -> torch.Tensor:
    """MoRF AOPC minus LeRF AOPC per image (Tomsett et al. 2020): **higher is better**.

    It equals ``1/(L+1) * sum_k (f(x_k^LeRF) - f(x_k^MoRF))``, the area between the two curves: a
    good map loses the class fast when its top cells go and slowly when its bottom cells go; a
    random map scores about 0 and an inverted map below 0. Both results must come from the same
    images, targets and draws (:func:`aopc_methods` with ``orders=("morf", "lerf")``).
    """
    if isinstance(morf, AOPCResult) and isinstance(lerf, AOPCResult):
        if not torch.equal(morf.targets, lerf.targets):
            raise ValueError("the MoRF and LeRF results track different classes; score them with the same targets")
    morf_scores = morf.scores if isinstance(morf, AOPCResult) else morf
    lerf_scores = lerf.scores if isinstance(lerf, AOPCResult) else lerf
    return morf_scores - lerf_scores


area_between_curves.higher_is_better = True
