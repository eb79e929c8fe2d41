"""The anchors: other libraries computing the same (or the nearest) metric, called the way their docs show.

pytorch-grad-cam gives the CAMs and ROAD, Quantus ``RegionPerturbation`` and ``MaxSensitivity``,
Captum ``sensitivity_max``. Each adapter takes camfaith's tensors and returns per-image scores as a
tensor; where randomness can be shared, ``blocks`` (or a constant baseline) replaces the library's
own noise by camfaith's, so that the scores can be checked against camfaith's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def library_cam(model, target_layer, images, targets, method: str) -> np.ndarray:
    """pytorch-grad-cam's map for a batch, the way its README runs it (hooks released afterwards)."""
    from pytorch_grad_cam import GradCAM, HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_class = {"gradcam": GradCAM, "hirescam": HiResCAM}[method]
    with cam_class(model=model, target_layers=[target_layer]) as cam:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    model.zero_grad(set_to_none=True)  # the library's backward fills every parameter's .grad
    return maps


def quantus_max_sensitivity(explain, model, images, targets, radius, n_samples, chunk, blocks=None):
    """Quantus ``MaxSensitivity``: relative distance ``||Phi(x) - Phi(y)|| / ||Phi(x)||``, one batch per sample.

    The explanation is camfaith's HiResCAM (called through Quantus's numpy interface), so that only
    the metric machinery differs. ``blocks`` replaces Quantus's own noise by camfaith's for the check.
    """
    import quantus

    def explain_numpy(model, inputs, targets, **kwargs):
        inputs = torch.as_tensor(inputs, device=images.device)
        return explain(inputs, torch.as_tensor(targets, device=images.device)).cpu().numpy()

    options = {}
    if blocks is not None:
        counter = iter(range(n_samples))

        def shared_noise(arr, indices, **kwargs):
            return arr + blocks[next(counter)].reshape(arr.shape[0], -1).numpy()

        options["perturb_func"] = shared_noise
    metric = quantus.MaxSensitivity(
        nr_samples=n_samples, lower_bound=radius, normalise=False, abs=False, disable_warnings=True, **options
    )
    scores = metric(
        model=model,
        x_batch=images.cpu().numpy(),
        y_batch=targets.cpu().numpy(),
        a_batch=None,
        explain_func=explain_numpy,
        device=str(images.device),
        batch_size=chunk if blocks is None else images.shape[0],  # shared noise: one batch of all images
    )
    return torch.tensor(np.asarray(scores, dtype=np.float64))


def captum_sensitivity_max(explain, images, targets, radius, n_samples, chunk, blocks=None):
    """Captum ``sensitivity_max`` (relative distance, like Quantus) with camfaith's HiResCAM.

    Captum runs the explanation function under ``torch.no_grad``; camfaith's CAMs enable gradients
    themselves. ``blocks`` replaces Captum's noise by camfaith's for the check.
    """
    from captum.metrics import sensitivity_max

    def explain_tensors(inputs, target):
        if isinstance(inputs, tuple):  # Captum passes the clean inputs as a tuple and wants a tuple back
            return (explain(inputs[0], target),)
        return explain(inputs, target)

    options = {}
    if blocks is not None:
        drawn = iter(range(len(blocks)))  # Captum asks for the perturbed samples a few at a time

        def shared_noise(inputs, radius):
            per_image = inputs.shape[0] // images.shape[0]
            samples = [blocks[next(drawn)] for _ in range(per_image)]
            noise = torch.stack([torch.stack(samples)[:, n] for n in range(images.shape[0])])
            return inputs + noise.flatten(0, 1).to(inputs.device)

        options["perturb_func"] = shared_noise
    return sensitivity_max(
        explain_tensors,
        images,
        perturb_radius=radius,
        n_perturb_samples=n_samples,
        max_examples_per_batch=max(chunk, images.shape[0]),
        target=targets,
        **options,
    )


def quantus_region_perturbation(model, images, maps, targets, regions, chunk, baseline):
    """Quantus ``RegionPerturbation`` (MoRF) on square patches of ``size / regions`` pixels.

    Returns per-image AOPC ``sum_k (f(x_0) - f(x_k)) / (L + 1)`` (eq. 6 of Lamprou 2023) from its curve
    of differences. Quantus runs one forward pass per removal step on the whole batch.
    """
    import quantus

    size = images.shape[-1]
    if size % regions:
        raise ValueError(f"Quantus patches need the image size ({size}) to be a multiple of regions ({regions})")
    options = {"perturb_baseline": baseline}
    if baseline == "uniform":
        options["perturb_func_kwargs"] = {"uniform_low": -1.0, "uniform_high": 1.0}
    metric = quantus.RegionPerturbation(
        patch_size=size // regions,
        order="morf",
        regions_evaluation=regions * regions,
        normalise=False,
        abs=False,
        disable_warnings=True,
        **options,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = metric(
            model=model,
            x_batch=images.cpu().numpy(),
            y_batch=targets.cpu().numpy(),
            a_batch=maps[:, None].cpu().numpy(),
            softmax=True,
            device=str(images.device),
            batch_size=chunk,
        )
    return torch.tensor(np.asarray(curves, dtype=np.float64)).sum(1) / (regions * regions + 1)


def road_morf(model, images, maps, targets, percentiles):
    """pytorch-grad-cam ``ROADMostRelevantFirstAverage``: mean drop of the class probability after
    removing the top pixels (by percentile of the map) and filling them by noisy linear imputation.

    A different metric from AOPC (pixel ranks instead of cells, imputation instead of noise, the
    mean over thresholds instead of an area), with one forward pass of the whole batch per threshold
    plus one of the clean batch, and a sparse linear solve per image and threshold on the CPU.
    """
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    metric = ROADMostRelevantFirstAverage(percentiles=list(percentiles))
    scores = metric(images, maps.cpu().numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model)
    return torch.as_tensor(np.asarray(scores))
