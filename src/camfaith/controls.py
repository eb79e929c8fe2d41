"""Control maps: explanations that are uninformative by design, scored exactly like the two CAMs.

Whether a metric prefers HiResCAM to Grad-CAM only means something if the metric can tell an
informative map from an uninformative one. So every metric chapter also scores four controls on
the same images with the same noise draws (Adebayo et al. 2018, "Sanity checks for saliency
maps", compare saliency maps with an edge detector for the same reason; Tomsett et al. 2020,
"Sanity checks for saliency metrics", apply the idea to the metrics themselves):

- ``random``: uniform noise in [0, 1], unrelated to image and model. AOPC of a random ranking is
  the chance level a map must beat; HAAS of a random attribution shows what scaling the image by
  arbitrary factors does. As an explanation function it draws fresh maps at every call, so it is
  both uninformative and unstable: Max-Sensitivity scores it near its worst, and a metric that
  does not is measuring something else.
- ``centre``: a centred Gaussian, the "objects are in the middle" prior. It uses neither image nor
  model, yet on centred data it can beat random under AOPC; a CAM that does not beat it has shown
  nothing about the model. As an explanation it is constant, so Max-Sensitivity scores it 0, the
  best possible score: Max-Sensitivity rewards stability, not faithfulness.
- ``edges``: the Sobel gradient magnitude of the image, which depends on the input only. A metric
  that rates it like a CAM responds to image structure rather than to the model (HAAS multiplies
  the image by the map, so it is the metric most at risk). Its Max-Sensitivity is the stability of
  an edge detector under the same noise, a model-free reference.
- ``inverted``: ``1 - HiResCAM``, the least relevant cells first. Under MoRF AOPC it should score
  below random, and its LeRF curve should fall fastest, if HiResCAM is informative. Max-Sensitivity
  (without ``normalize``) scores it exactly like HiResCAM by construction,
  ``||(1 - a) - (1 - b)|| = ||a - b||``: the metric cannot tell a map from its reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "CONTROLS",
    "centre_prior",
    "control_explainers",
    "control_maps",
    "inverted",
    "random_maps",
    "sobel_edges",
]

CONTROLS = ("random", "centre", "edges", "inverted")

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    """Scale each ``(h, w)`` map to [0, 1]; a constant map becomes 0."""
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
    draw_device = generator.device if generator is not None else torch.device(device)
    return torch.rand((n, height, width), generator=generator, device=draw_device).to(device)


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


def control_maps(
    images: torch.Tensor, hirescam_maps: torch.Tensor, generator: torch.Generator | None
) -> dict[str, torch.Tensor]:
    """The four controls of a batch, keys :data:`CONTROLS`, each ``(N, H, W)`` on the images' device.

    ``random``, ``centre`` and ``edges`` have the image size; ``inverted`` has the size of
    ``hirescam_maps`` (the image size for maps from :func:`camfaith.cams.explain`).
    """
    if images.ndim != 4 or hirescam_maps.ndim != 3 or hirescam_maps.shape[0] != images.shape[0]:
        raise ValueError(
            f"need images (N, C, H, W) and one HiResCAM map per image (N, H, W); got {tuple(images.shape)} "
            f"and {tuple(hirescam_maps.shape)}"
        )
    n, _, height, width = images.shape
    return {
        "random": random_maps(n, height, width, generator, images.device),
        "centre": centre_prior(n, height, width, device=images.device),
        "edges": sobel_edges(images),
        "inverted": inverted(hirescam_maps.detach().to(images.device)),
    }


def control_explainers(explain_hirescam: Callable, generator: torch.Generator | None) -> dict[str, Callable]:
    """Explanation functions ``explain(images, targets) -> (N, H, W)`` of the controls, for Max-Sensitivity.

    ``random`` draws fresh maps from ``generator`` at every call (use a generator of its own, not the
    one of the metric's noise); ``centre`` is the same map for every input; ``edges`` depends on the
    input only; ``inverted`` is ``1 - explain_hirescam(images, targets)``.
    """

    def random(images: torch.Tensor, targets=None) -> torch.Tensor:
        return random_maps(images.shape[0], images.shape[2], images.shape[3], generator, images.device)

    def centre(images: torch.Tensor, targets=None) -> torch.Tensor:
        return centre_prior(images.shape[0], images.shape[2], images.shape[3], device=images.device)

    def edges(images: torch.Tensor, targets=None) -> torch.Tensor:
        return sobel_edges(images)

    def inverted_hirescam(images: torch.Tensor, targets=None) -> torch.Tensor:
        return inverted(explain_hirescam(images, targets))

    return {"random": random, "centre": centre, "edges": edges, "inverted": inverted_hirescam}
