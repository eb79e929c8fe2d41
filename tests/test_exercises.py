"""The pen-and-paper solutions of the book's exercises, recomputed with the package.

The solutions in book/theory.md and book/metrics.md are worked by hand; each test here computes the
same quantities with camfaith and compares them with the values the solutions state.
"""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
from torch import nn

from camfaith.cams import activations_and_gradients, postprocess, raw_maps
from camfaith.controls import inverted
from camfaith.metrics import aopc, ha_attribution, ha_images, max_sensitivity, relevance_mass


def flatten_head(weights: torch.Tensor, bias: float) -> nn.Linear:
    """A one-channel Flatten head ``s = sum(W * A) + b``: one linear layer on the flattened activations."""
    head = nn.Linear(weights.numel(), 1)
    with torch.no_grad():
        head.weight.copy_(weights.reshape(1, -1))
        head.bias.fill_(bias)
    return head


def maps_of(head: nn.Linear, activations: torch.Tensor) -> tuple[float, dict]:
    leaf = activations.reshape(1, 1, *activations.shape).requires_grad_(True)
    score = head(leaf.flatten(1))[0, 0]
    (gradients,) = torch.autograd.grad(score, leaf)
    return float(score.detach()), {name: m[0] for name, m in raw_maps(leaf.detach(), gradients).items()}


def test_ex_theory_flatten_2x2():
    weights, activations = torch.tensor([[1.0, -1.0], [2.0, 0.0]]), torch.tensor([[3.0, 1.0], [0.0, 2.0]])
    score, maps = maps_of(flatten_head(weights, 1.0), activations)
    assert score == 3
    assert torch.equal(maps["hirescam"], torch.tensor([[3.0, -1.0], [0.0, 0.0]])) and maps["hirescam"].sum() == 2
    assert torch.equal(maps["gradcam"], torch.tensor([[1.5, 0.5], [0.0, 1.0]])) and maps["gradcam"].sum() == 3
    covariance = ((weights - weights.mean()) * (activations - activations.mean())).mean()
    assert covariance == -0.25 and maps["gradcam"].sum() == score - 1 - 4 * covariance


def test_ex_theory_displayed_sign():
    """The small example of Proposition 4: displayed Grad-CAM (0, 1) on the harmful location, HiResCAM empty."""
    score, maps = maps_of(flatten_head(torch.tensor([[2.0, -1.0]]), 0.0), torch.tensor([[0.0, 1.0]]))
    assert score == -1
    displayed = {name: postprocess(m[None], (1, 2))[0] for name, m in maps.items()}
    assert torch.allclose(displayed["gradcam"], torch.tensor([[0.0, 1.0]]), atol=1e-6)
    assert torch.equal(displayed["hirescam"], torch.zeros(1, 2))


def test_ex_theory_two_channel():
    generator = torch.Generator().manual_seed(0)
    weights, bias = torch.randn(2, generator=generator), 0.3
    activations = torch.randn(1, 2, 2, 2, generator=generator, requires_grad=True)
    score = (weights * activations.mean(dim=(2, 3))).sum() + bias  # GAP head, eq. eq-gap
    (gradients,) = torch.autograd.grad(score, activations)
    assert torch.allclose(gradients, (weights / 4).view(1, 2, 1, 1).expand(1, 2, 2, 2))
    gradcam = raw_maps(activations.detach(), gradients)["gradcam"][0]
    cam = torch.einsum("f,fij->ij", weights, activations.detach()[0])
    assert torch.allclose(gradcam, cam / 4) and torch.isclose(gradcam.sum(), score.detach() - bias)


@pytest.mark.parametrize("conv_bias, adds_up", [(False, True), (True, False)])
def test_ex_theory_bias_free(conv_bias, adds_up):
    """HiResCAM at an earlier layer adds up to s - b exactly when no layer in between has an offset."""
    torch.manual_seed(0)
    first = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(first, nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1, bias=conv_bias),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    activations, gradients, logits, targets = activations_and_gradients(model, first, torch.randn(4, 3, 8, 8))
    total = raw_maps(activations, gradients)["hirescam"].sum(dim=(1, 2))
    score_minus_bias = logits.gather(1, targets[:, None])[:, 0] - model[-1].bias[targets].detach()
    assert torch.allclose(total, score_minus_bias, atol=1e-5) is adds_up


class AdditiveDrops(nn.Module):
    """Two-class logits whose class-0 probability is ``floor + sum(drop of each kept pixel)``."""

    def __init__(self, drops: torch.Tensor, floor: float):
        super().__init__()
        self.register_buffer("drops", drops.double().flatten())
        self.floor = floor

    def forward(self, x):
        p = self.floor + x.double().flatten(1) @ self.drops
        return torch.stack([p.log(), (1 - p).log()], dim=1)


def by_hand(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(1, 2, 2)


@pytest.mark.filterwarnings("ignore:AOPC uses full forward passes")
def test_ex_aopc_by_hand():
    model = AdditiveDrops(torch.tensor([0.30, 0.05, 0.20, 0.10]), floor=0.25)
    image = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    cam = by_hand([0.9, 0.2, 0.6, 0.2])

    def score(maps, order="morf"):
        return aopc(model, image, maps, regions=2, perturbation=0.0, order=order)

    morf = score(cam)
    assert morf.order.tolist() == [[0, 2, 1, 3]]
    assert torch.allclose(morf.curves, torch.tensor([[0.90, 0.60, 0.40, 0.35, 0.25]], dtype=torch.float64))
    assert morf.scores.item() == pytest.approx(0.40)
    flipped = score(inverted(cam))
    assert flipped.order.tolist() == [[1, 3, 2, 0]] == score(cam, "lerf").order.tolist()
    assert torch.allclose(flipped.curves, torch.tensor([[0.90, 0.85, 0.75, 0.55, 0.25]], dtype=torch.float64))
    assert flipped.scores.item() == pytest.approx(0.24) == score(cam, "lerf").scores.item()
    assert score(by_hand([0.9, 0.2, 0.6, 0.25])).scores.item() == pytest.approx(0.41)  # the tie broken the other way


def test_ex_haas_clipping_and_another_pixel():
    def ha(x, a):
        return ha_images(torch.full((1, 1, 1, 1), x), torch.full((1, 1, 1), a)).item()

    assert ha(0.8, 0.5) == 1 and ha(0.8, -1.0) == 0
    cam = torch.tensor([[[0.0, 0.5, 1.0]]])
    pixel = torch.full((1, 1, 1, 3), -0.3)
    centered = ha_images(pixel, ha_attribution(cam, (1, 3), "centered"))
    unit = ha_images(pixel, ha_attribution(cam, (1, 3), "unit"))
    assert torch.allclose(centered.flatten(), torch.tensor([0.0, -0.3, -0.6]))
    assert torch.allclose(unit.flatten(), torch.tensor([-0.3, -0.45, -0.6]))


def hue(x: torch.Tensor) -> float:
    """HSV hue in degrees of a pixel ``x`` in [-1, 1]^3."""
    return 360 * colorsys.rgb_to_hsv(*((x.double() + 1) / 2).tolist())[0]


def test_ex_haas_colour():
    x = torch.tensor([0.9, 0.5, -0.9])
    assisted = ha_images(x.view(1, 3, 1, 1), torch.ones(1, 1, 1)).flatten()
    assert torch.equal(assisted, torch.tensor([1.0, 1.0, -1.0]))
    assert hue(x) == pytest.approx(46.67, abs=0.01) and hue(assisted) == pytest.approx(60)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):  # without clipping, HA keeps the hue
        pixel = 0.4 * (2 * torch.rand(3, generator=generator) - 1)
        a = float(torch.rand(1, generator=generator)) * 1.4 - 0.9
        assert hue(ha_images(pixel.view(1, 3, 1, 1), torch.full((1, 1, 1), a)).flatten()) == pytest.approx(
            hue(pixel), abs=1e-3)


def smooth_explain(images: torch.Tensor, targets=None) -> torch.Tensor:
    """A deterministic 'explanation' that moves with the image: a squashed channel mean."""
    return torch.sigmoid(4 * images.mean(dim=1))


def test_ex_sens_samples_and_inverted():
    images = 2 * torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)) - 1
    targets = torch.zeros(3, dtype=torch.long)

    def run(explain, n_samples):
        return max_sensitivity(explain, images, 0.2, n_samples, targets, generator=torch.Generator().manual_seed(0))

    few, many = run(smooth_explain, 5), run(smooth_explain, 10)
    assert torch.equal(many.distances[:, :5], few.distances)  # the first five copies are the same
    assert bool((many.scores >= few.scores).all())  # a maximum over more of the same distances
    flipped = run(lambda x, t=None: inverted(smooth_explain(x, t)), 5)
    assert torch.allclose(flipped.scores, few.scores, atol=1e-6)


def test_ex_gallery_chance():
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(8, 64, 64, dtype=torch.bool)
    for n in range(8):
        top, left, side = (int(v) for v in torch.randint(4, 30, (3,), generator=generator))
        masks[n, top:top + side, left:left + side] = True
    random_maps = torch.rand(8, 64, 64, generator=generator)
    share = masks.float().mean(dim=(1, 2))
    assert math.isclose(float(relevance_mass(random_maps, masks).mean()), float(share.mean()), abs_tol=0.02)
