"""The metrics the way the original study's code computed them: one image and one step at a time.

These per-image loops are the reference camfaith's batched metrics are timed and checked against.
They take their randomness from outside (``fill``, ``noise``) so that the check can share camfaith's.
Explanations come from pytorch-grad-cam's ``HiResCAM``, as in the original study.
"""

from __future__ import annotations

import numpy as np
import torch


def cell_slices(size: int, regions: int) -> list[slice]:
    """Row (or column) ranges of a regions x regions grid; ``floor(i * size / regions)`` boundaries."""
    return [slice(i * size // regions, (i + 1) * size // regions) for i in range(regions)]


def loop_aopc(model, images, maps, regions, targets, fill=None, generator=None) -> torch.Tensor:
    """AOPC (eq. 6-7 of Lamprou 2023) one image and one removal step at a time.

    ``fill`` (N, C, H, W) gives the value of every removed pixel; when None, each removed cell gets
    uniform noise in [-1, 1] drawn when it is removed, as a straightforward implementation would.
    """
    _, _, height, width = images.shape
    rows, cols = cell_slices(height, regions), cell_slices(width, regions)
    scores = []
    with torch.no_grad():
        for n in range(images.shape[0]):
            image = images[n : n + 1].clone()
            target = int(targets[n])
            clean = model(image).softmax(1)[0, target]
            heat = torch.stack([maps[n, r, c].mean() for r in rows for c in cols])
            order = torch.sort(heat, descending=True, stable=True).indices.tolist()
            drop = image.new_zeros(())
            for cell in order:
                r, c = rows[cell // regions], cols[cell % regions]
                if fill is None:
                    patch = 2 * torch.rand(image[0, :, r, c].shape, generator=generator) - 1
                    image[0, :, r, c] = patch.to(image.device)
                else:
                    image[0, :, r, c] = fill[n, :, r, c]
                drop += clean - model(image).softmax(1)[0, target]
            scores.append(drop / (regions * regions + 1))
    return torch.stack(scores)


def loop_max_sensitivity(model, target_layer, images, targets, radius, n_samples, noise=None, generator=None):
    """Max-Sensitivity (eq. 8 of Lamprou 2023) one image and one perturbed sample at a time, explained
    by pytorch-grad-cam's HiResCAM.

    ``noise(n, s)`` gives the perturbation of sample ``s`` of image ``n``; when None it is drawn
    uniformly in [-radius, radius] per sample.
    """
    from pytorch_grad_cam import HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    scores = []
    with HiResCAM(model=model, target_layers=[target_layer]) as cam:
        for n in range(images.shape[0]):
            image = images[n : n + 1]
            target = [ClassifierOutputTarget(int(targets[n]))]
            clean = cam(input_tensor=image, targets=target)[0]
            largest = 0.0
            for s in range(n_samples):
                if noise is None:
                    delta = radius * (2 * torch.rand(image.shape, generator=generator) - 1)
                else:
                    delta = noise(n, s)
                perturbed = cam(input_tensor=image + delta.to(image.device), targets=target)[0]
                largest = max(largest, float(np.linalg.norm(perturbed - clean)))
            scores.append(largest)
    model.zero_grad(set_to_none=True)
    return torch.tensor(scores)


def loop_haas(model, target_layer, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """HAAS (eq. 9-10 of Lamprou 2023) one image at a time: a pytorch-grad-cam HiResCAM map, the HA image and
    two predictions."""
    from pytorch_grad_cam import HiResCAM

    predictions, ha_predictions = [], []
    with HiResCAM(model=model, target_layers=[target_layer]) as cam:
        for n in range(images.shape[0]):
            image = images[n : n + 1]
            attribution = torch.from_numpy(cam(input_tensor=image, targets=None)).to(image.device)
            assisted = (image * (1 + attribution[:, None])).clamp(-1, 1)
            with torch.no_grad():
                predictions.append(int(model(image).argmax(1)))
                ha_predictions.append(int(model(assisted).argmax(1)))
    model.zero_grad(set_to_none=True)
    return torch.tensor(predictions), torch.tensor(ha_predictions)


def noise_blocks(images, radius, n_samples, seed) -> list[torch.Tensor]:
    """The noise :func:`camfaith.max_sensitivity` draws from ``torch.Generator().manual_seed(seed)``:
    one ``(N, C, H, W)`` block per sample, uniform in [-radius, radius]."""
    generator = torch.Generator().manual_seed(seed)
    return [radius * (2 * torch.rand(images.shape, generator=generator) - 1) for _ in range(n_samples)]
