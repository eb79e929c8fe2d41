"""Control maps: maps whose quality is known in advance, scored exactly like the CAMs.

Whether a metric prefers HiResCAM to Grad-CAM only means something if the metric can tell a good
ranking from a bad one on those data, and that must be shown with maps that know nothing of the two
CAMs (Tomsett et al. 2020, "Sanity checks for saliency metrics"; Adebayo et al. 2018 compare
saliency maps with an edge detector for the same reason). Every metric chapter scores, on the same
images with the same noise:

- the **positive control**: an occlusion map on the metric's own grid, the drop of the tracked class
  probability when each cell alone is removed with the metric's own removal and draws (built by
  :func:`camfaith.metrics.aopc_methods` with ``occlusion=True`` and
  :func:`camfaith.metrics.occlusion_maps`). It uses the model but neither CAM, and approximates the
  greedy best MoRF order; its inversion ``occlusion_inverted`` is the negative control;
- the **oracle**, where the data have object masks: the mask itself (``mask``) and its inversion;
- each CAM's **own inversion** (``gradcam_inverted``, ``hirescam_inverted``: ``1 - map``, the least
  relevant first; under AOPC its MoRF score is the CAM's LeRF score), so that neither CAM is judged
  against the other's ordering;
- three **reference maps**, in every table:

  - ``random``: uniform noise in [0, 1], from a random stream of its own (:mod:`camfaith.seeds`),
    unrelated to image, model and the metric's noise. It is the chance level a map must beat. As an
    explanation function it draws fresh maps at every call, so Max-Sensitivity scores it near its
    worst;
  - ``centre``: a centred Gaussian, the "objects are in the middle" prior. It uses neither image nor
    model, yet on centred data it can beat random; as an explanation it is constant, so
    Max-Sensitivity scores it 0, the best possible score: Max-Sensitivity rewards stability, not
    faithfulness;
  - ``edges``: the Sobel gradient magnitude of the image, which depends on the input only. A metric
    that rates it like a CAM responds to image structure rather than to the model.

Max-Sensitivity (without ``normalize``) scores an inverted map exactly like the map,
``||(1 - a) - (1 - b)|| = ||a - b||``, so inversions are not scored there.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from camfaith.seeds import draw

__all__ = [
    "centre_prior",
    "control_explainers",
    "inverted",
    "random_maps",
    "reference_maps",
    "sobel_edges",
]

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``(h, w)`` map to [0, 1] exactly; a constant map becomes 0.

    The CAMs are scaled by :func:`camfaith.cams.min_max` instead, which keeps pytorch-grad-cam's ``1e-7`` in
    the denominator so that they equal the library's maps; the controls owe the library nothing, and a
    near-constant control map keeps its full [0, 1] range here."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    span = maps.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, 1.0), 0.0)


def random_maps(
    n: int, height: int, width: int, generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n, height, width)`` maps of uniform draws in [0, 1) from ``generator``.

    The draws are made on the generator's device (the CPU or ``device``) and moved to ``device``, so
    a CPU generator gives the same maps on every device; ``None`` uses the global RNG of ``device``.
    """
    return draw((n, height, width), generator, device)


def centre_prior(
    n: int, height: int, width: int, sigma: float = 0.25, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n, height, width)`` copies of a centred isotropic Gaussian, min-max scaled to [0, 1].

    ``sigma`` is the standard deviation as a fraction of the shorter side; the centre is the middle
    of the pixel grid, ``((height - 1) / 2, (width - 1) / 2)``, so the map is mirror-symmetric.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive fraction of the image side, got {sigma!r}")
    spread = sigma * min(height, width)
    rows = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2
    columns = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2
    squared = rows[:, None].square() + columns[None, :].square()
    prior = _min_max(torch.exp(-squared / (2 * spread**2)))
    return prior.expand(n, height, width).clone()


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of ``(N, C, H, W)`` images (channels averaged first), per-image min-max.

    The border is replicated, so a constant image has no edges anywhere (all 0). Returns
    ``(N, H, W)`` in [0, 1] on the images' device; the model plays no part.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a floating-point tensor of shape (N, C, H, W), got {getattr(images, 'shape', images)}"
        )
    grey = F.pad(images.detach().mean(dim=1, keepdim=True), (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None].to(grey)
    gradients = F.conv2d(grey, kernels)
    return _min_max(gradients.square().sum(dim=1).sqrt())


def inverted(maps: torch.Tensor) -> torch.Tensor:
    """``1 - maps``: for maps in [0, 1] the least relevant pixel becomes the most relevant."""
    return 1 - maps


def reference_maps(
    images: torch.Tensor, cams: dict[str, torch.Tensor], generator: torch.Generator | None,
    masks: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The maps a chapter scores beside the positive control, each ``(N, H, W)`` on the images' device.

    ``cams`` (name -> maps in [0, 1]) come first, then each CAM's inversion, the oracle ``mask`` and
    ``mask_inverted`` where ``masks`` (``(N, H, W)``, the object's pixels) are given, then ``random``
    (drawn from ``generator``: give it a stream of its own), ``centre`` and ``edges`` at the image size.
    """
    n, _, height, width = images.shape
    for name, values in cams.items():
        if values.ndim != 3 or values.shape[0] != n:
            raise ValueError(f"need one {name} map per image (N, H, W); got {tuple(values.shape)} for {n} images")
    maps = {name: values.detach().to(images.device) for name, values in cams.items()}
    maps |= {f"{name}_inverted": inverted(values) for name, values in list(maps.items())}
    if masks is not None:
        oracle = masks.to(images.device, torch.float32)
        maps |= {"mask": oracle, "mask_inverted": inverted(oracle)}
    return maps | {
        "random": random_maps(n, height, width, generator, images.device),
        "centre": centre_prior(n, height, width, device=images.device),
        "edges": sobel_edges(images),
    }


def control_explainers(generator: torch.Generator | None) -> dict[str, Callable]:
    """Explanation functions ``explain(images, targets) -> (N, H, W)`` of the reference maps, for
    Max-Sensitivity.

    ``random`` draws fresh maps from ``generator`` at every call (use a stream of its own, not the
    metric's noise); ``centre`` is the same map for every input; ``edges`` depends on the input only.
    """

    def random(images: torch.Tensor, targets=None) -> torch.Tensor:
        return random_maps(images.shape[0], images.shape[2], images.shape[3], generator, images.device)

    def centre(images: torch.Tensor, targets=None) -> torch.Tensor:
        return centre_prior(images.shape[0], images.shape[2], images.shape[3], device=images.device)

    def edges(images: torch.Tensor, targets=None) -> torch.Tensor:
        return sobel_edges(images)

    return {"random": random, "centre": centre, "edges": edges}
