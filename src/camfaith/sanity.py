"""The model-parameter randomisation test of Adebayo et al. (2018), "Sanity checks for saliency maps".

An explanation of a network's decision must depend on what the network has learnt. The test
re-initialises the network's layers one after another, from the class scores towards the input
(a *cascade*: each step keeps the re-initialisations before it), explains the same images and the
same classes again after every step, and measures how similar each map stays to the trained
network's map. A map that stays similar after most of the network is random (an edge detector,
say) explains the input, not the model, and **fails** the test: lower similarity after
randomisation is better.

Similarity is measured per image (:func:`map_similarity`) with the two measures Adebayo et al.
report: the Spearman rank correlation and the structural similarity index (SSIM). The same module
checks Proposition 4 of Lamprou (2023) on the trained network (:func:`trained_identity`): the raw
HiResCAM map of a Flatten head sums to the class score minus the bias (its eq. 20), Grad-CAM's in
general does not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.stats
import torch
from skimage.metrics import structural_similarity
from torch import nn

from camfaith.cams import cams
from camfaith.device import evaluating
from camfaith.parameters import check_positive_integers
from camfaith.plots import METHOD_COLOURS, METHOD_LABELS
from camfaith.theory import identity_residuals

LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)
MEASURES = ("spearman", "ssim")

Explain = Callable[[nn.Module, nn.Module, torch.Tensor, torch.Tensor], dict]


# -- the cascade ----------------------------------------------------------------------------------


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the parameterised layers (convolutions, Linear, BatchNorm) in registration order.

    For a :class:`camfaith.models.CamNet` (and any network of ``nn.Sequential`` blocks) registration
    order is the order of the forward pass: ``features`` first, ``head`` last. A layer of another
    type with parameters of its own is an error: the test would leave it trained without saying so.
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, LAYER_TYPES):
            names.append(name)
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"layer {name!r} ({type(module).__name__}) has parameters but is not a convolution, "
                             "Linear or BatchNorm layer; the randomisation test does not know how to re-initialise it")
    if not names:
        raise ValueError("the model has no convolution, Linear or BatchNorm layer to randomise")
    return names


def _reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw one layer's parameters from ``generator`` (in place).

    Convolutions and Linear layers get PyTorch's default initialisation (``reset_parameters``:
    weights and biases uniform in +-1/sqrt(fan_in)), drawn on the CPU so that a seed gives the same
    network on every device. BatchNorm gets its untrained state too, the identity in eval mode:
    scale 1, shift 0, running mean 0 and variance 1.
    """
    with torch.no_grad():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            if module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()
            return
        bound = 1.0 / module.weight[0].numel() ** 0.5  # fan_in = in_channels (/ groups) * kernel size
        for tensor in (module.weight, module.bias):
            if tensor is not None:
                drawn = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) * 2 * bound - bound
                tensor.copy_(drawn)


def cascading_randomisation(model: nn.Module, generator: torch.Generator) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer_name, randomised_model)`` with the layers re-initialised from the head to the input.

    Step ``k`` re-initialises the ``k``-th layer of :func:`randomisable_layers` counted from the
    output and keeps the ``k - 1`` before it (the cascading randomisation of Adebayo et al. 2018,
    section 3); the last step has every layer re-initialised. ``model`` is left unchanged; every
    yielded model is a new copy in the mode ``model`` was in, so a caller may keep or change it.
    """
    names = randomisable_layers(model)
    working = copy.deepcopy(model)
    modules = dict(working.named_modules())
    for name in reversed(names):
        _reinitialise(modules[name], generator)
        yield name, copy.deepcopy(working)


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The name of ``module`` inside ``model`` (how the target layer is found again in a copy)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"the target layer {type(module).__name__} is not a module of the model; "
                     "pass the target layer returned with the model (e.g. by build_model or Run.trained_model)")


# -- similarity -----------------------------------------------------------------------------------


def _as_maps(maps, name: str) -> np.ndarray:
    array = torch.as_tensor(maps).detach().cpu().double().numpy()
    if array.ndim != 3:
        raise ValueError(f"{name} must be maps of shape (N, H, W), got shape {array.shape}")
    if array.size and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise ValueError(f"{name} must lie in [0, 1] (post-processed maps, e.g. from camfaith.cams.explain); "
                         f"got values in [{array.min():.3g}, {array.max():.3g}]")
    return array


def map_similarity(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Per-image Spearman rank correlation and SSIM of two batches of maps ``(N, H, W)`` in [0, 1].

    Spearman: the Pearson correlation of the ranks of the flattened maps (ties get their average
    rank, as in ``scipy.stats.spearmanr``), computed for the whole batch at once; NaN where a map is
    constant and so has no ranking. SSIM: ``skimage.metrics.structural_similarity`` with
    ``data_range=1`` and its default 7x7 window, one image at a time (skimage has no batched form).

    The maps are compared as they are shown, **without absolute values**. Adebayo et al. (2018)
    report both because gradient-type maps are signed and randomisation may flip their sign while
    keeping their edges. Grad-CAM and HiResCAM maps as displayed are already non-negative (the ReLU of
    pytorch-grad-cam, then min-max scaling), so an absolute value changes nothing; taking it on the
    raw maps instead would count the evidence *against* the class, which the ReLU discards, as
    evidence for it.
    """
    a, b = _as_maps(a, "a"), _as_maps(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"the two batches of maps differ in shape: {a.shape} and {b.shape}")
    if min(a.shape[1:]) < 7:
        raise ValueError(f"SSIM needs maps of at least 7x7 pixels (its window), got {a.shape[1:]}")
    ranks = [scipy.stats.rankdata(x.reshape(len(x), -1), axis=1) for x in (a, b)]
    ranks = [r - r.mean(axis=1, keepdims=True) for r in ranks]
    numerator = (ranks[0] * ranks[1]).sum(axis=1)
    denominator = np.sqrt((ranks[0] ** 2).sum(axis=1) * (ranks[1] ** 2).sum(axis=1))
    spearman = np.full(len(a), np.nan)
    np.divide(numerator, denominator, out=spearman, where=denominator > 0)
    ssim = np.array([structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b)])
    return spearman, ssim


# -- the test -------------------------------------------------------------------------------------


def predicted_classes(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The classes ``model`` predicts for ``images`` (eval mode, ``batch_size`` images per pass)."""
    with evaluating(model), torch.no_grad():
        return torch.cat([model(images[i:i + batch_size]).argmax(dim=1) for i in range(0, len(images), batch_size)])


def _explain_batches(explain: Explain, model, target_layer, images, targets, batch_size) -> dict[str, torch.Tensor]:
    parts = [explain(model, target_layer, images[i:i + batch_size], targets[i:i + batch_size])
             for i in range(0, len(images), batch_size)]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0] if key != "targets"}


def cascade_maps(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, generator: torch.Generator,
    batch_size: int = 32, explain: Explain = cams,
) -> Iterator[tuple[int, str, dict[str, torch.Tensor]]]:
    """Yield ``(step, layer, maps)``: the trained model's maps (step 0, layer ``"trained"``), then the maps
    of every step of :func:`cascading_randomisation`, always of the classes the trained model predicts.

    ``explain(model, target_layer, images, targets)`` returns a dict of maps ``(N, H, W)`` in [0, 1] per
    method (a ``"targets"`` entry is ignored); the default, :func:`camfaith.cams.cams`, gives Grad-CAM
    and HiResCAM from one pass. The same ``generator`` seed gives the same randomised networks
    whatever the images, so a few images can be shown from the networks a larger test scored.
    """
    check_positive_integers(batch_size=batch_size)
    if len(images) == 0:
        raise ValueError("no images to explain: images has length 0")
    layer_name = module_name(model, target_layer)
    targets = predicted_classes(model, images, batch_size)
    yield 0, "trained", _explain_batches(explain, model, target_layer, images, targets, batch_size)
    for step, (layer, randomised) in enumerate(cascading_randomisation(model, generator), start=1):
        target = dict(randomised.named_modules())[layer_name]
        yield step, layer, _explain_batches(explain, randomised, target, images, targets, batch_size)


def randomisation_test(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, generator: torch.Generator,
    batch_size: int = 32, explain: Explain = cams, ids: list | None = None,
) -> pd.DataFrame:
    """The model-parameter randomisation test (Adebayo et al. 2018) of each method of ``explain``.

    One row per (step, method, image): ``step`` (the number of layers re-initialised, 1 to L; the
    trained model itself, step 0, is the reference and has no row), ``layer`` (the layer re-initialised
    at that step), ``method``, ``id`` (``ids``, else the image's index), and the ``spearman`` and
    ``ssim`` of :func:`map_similarity` between the map after the step and the trained model's map.
    **Lower is better**: a map that keeps its similarity ignores the parameters it claims to explain.
    """
    ids = list(range(len(images))) if ids is None else list(ids)
    if len(ids) != len(images):
        raise ValueError(f"got {len(ids)} ids for {len(images)} images")
    steps = cascade_maps(model, target_layer, images, generator, batch_size, explain)
    _, _, trained = next(steps)
    parts = []
    for step, layer, maps in steps:
        for method, values in maps.items():
            spearman, ssim = map_similarity(trained[method], values)
            parts.append(pd.DataFrame({"step": step, "layer": layer, "method": method, "id": ids,
                                       "spearman": spearman, "ssim": ssim}))
    return pd.concat(parts, ignore_index=True)


def trained_identity(
    model: nn.Module, target_layer: nn.Module, images: torch.Tensor, batch_size: int = 32, ids: list | None = None
) -> pd.DataFrame:
    """Proposition 4 of Lamprou (2023) on the trained model, per image, relative to the score it explains.

    Columns: ``id``, ``target`` (the predicted class), ``score`` and ``bias`` (s^m and b^m),
    ``hirescam_sum`` and ``gradcam_sum`` (sums of the raw signed maps, from
    :func:`camfaith.theory.identity_residuals`), and ``hirescam_residual`` and ``gradcam_residual``:
    ``|sum(map) - (s^m - b^m)| / |s^m - b^m|``. On a Flatten head with the target feeding it, eq. 20
    makes the HiResCAM residual zero up to float rounding; Grad-CAM's is its gap from the score.
    (:func:`identity_residuals` scales its residuals by the size of the summed terms instead.)
    """
    parts = [identity_residuals(model, target_layer, images[i:i + batch_size])
             for i in range(0, len(images), batch_size)]
    frame = pd.concat(parts, ignore_index=True)
    explained = (frame["score"] - frame["bias"]).abs().clip(lower=1e-12)
    out = frame[["target", "score", "bias", "hirescam_sum", "gradcam_sum"]].copy()
    out.insert(0, "id", list(range(len(images))) if ids is None else list(ids))
    for method in ("hirescam", "gradcam"):
        out[f"{method}_residual"] = (frame[f"{method}_sum"] - (frame["score"] - frame["bias"])).abs() / explained
    return out


# -- figures --------------------------------------------------------------------------------------


def similarity_curves(frame: pd.DataFrame):
    """Mean Spearman and SSIM (band: one standard error) against the layers re-initialised so far.

    Step 0 is the trained model, similar to itself by definition (1), drawn as the curves' start.
    """
    layers = frame.groupby("step")["layer"].first()
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(10, 3.8), sharex=True)
    for ax, measure in zip(axes, MEASURES):
        stats = frame.groupby(["method", "step"])[measure].agg(["mean", "sem"]).reset_index()
        for method, group in stats.groupby("method"):
            steps = np.r_[0, group["step"]]
            mean, error = np.r_[1.0, group["mean"]], np.r_[0.0, group["sem"].fillna(0)]
            colour = METHOD_COLOURS.get(method)
            ax.plot(steps, mean, marker="o", color=colour, label=METHOD_LABELS.get(method, method))
            ax.fill_between(steps, mean - error, mean + error, color=colour, alpha=0.2)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(np.r_[0, layers.index], ["trained", *layers], rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("re-initialised down to layer (cascade from the head)")
        ax.set_ylabel(f"mean {'Spearman' if measure == 'spearman' else 'SSIM'} with the trained map")
    axes[0].legend()
    fig.tight_layout()
    return fig


def cascade_grid(images: torch.Tensor, steps: list[tuple[int, str, dict]], columns: int = 8):
    """Maps of a few images as the layers are re-initialised: one row per (image, method), one column per
    step (the trained model first; at most ``columns`` steps, evenly spread, the last always shown)."""
    chosen = np.unique(np.linspace(0, len(steps) - 1, min(columns, len(steps))).round().astype(int))
    methods = list(steps[0][2])
    rows = [(i, method) for i in range(len(images)) for method in methods]
    fig, axes = plt.subplots(len(rows), 1 + len(chosen), figsize=(1.5 * (1 + len(chosen)), 1.6 * len(rows)),
                             squeeze=False)
    for r, (i, method) in enumerate(rows):
        image = images[i].detach().cpu().float().permute(1, 2, 0)
        image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-12)
        axes[r, 0].imshow(image.squeeze(-1).numpy(), cmap="gray" if image.shape[-1] == 1 else None)
        axes[r, 0].set_title(METHOD_LABELS.get(method, method), fontsize=8, loc="left")
        for c, index in enumerate(chosen, start=1):
            step, layer, maps = steps[index]
            axes[r, c].imshow(maps[method][i].detach().cpu().numpy(), cmap="jet", vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(layer if step == 0 else f"{step}: {layer}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
