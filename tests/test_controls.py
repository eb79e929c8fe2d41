"""The control maps: shapes, ranges, seeding, and the analytic cases each control is built on."""

from __future__ import annotations

import importlib

import pytest
import torch

from camfaith.controls import (
    centre_prior,
    control_explainers,
    inverted,
    random_maps,
    reference_maps,
    sobel_edges,
)
from camfaith.metrics import aopc_methods, max_sensitivity, occlusion_maps
from camfaith.seeds import STREAMS, stream_generator, stream_seed

aopc_module = importlib.import_module("camfaith.metrics.aopc")  # the module, not the function it exports


def images_and_maps(n: int = 3, size: int = 12, seed: int = 0, device: str = "cpu"):
    generator = torch.Generator().manual_seed(seed)
    images = (2 * torch.rand(n, 3, size, size, generator=generator) - 1).to(device)
    hirescam = torch.rand(n, size, size, generator=generator).to(device)
    return images, hirescam


def hirescam_like(images: torch.Tensor, targets=None) -> torch.Tensor:
    """A stand-in explanation that depends on the input: the squashed first channel, in [0, 1]."""
    return torch.sigmoid(4 * images[:, 0])


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_reference_maps_have_the_image_shape_range_and_device(device):
    images, hirescam = images_and_maps(device=device)
    masks = torch.zeros(3, 12, 12, dtype=torch.bool, device=device)
    masks[:, 2:6, 3:9] = True
    maps = reference_maps(images, {"hirescam": hirescam}, torch.Generator().manual_seed(1), masks)
    assert tuple(maps) == ("hirescam", "hirescam_inverted", "mask", "mask_inverted", "random", "centre", "edges")
    for name, values in maps.items():
        assert values.shape == (3, 12, 12), name
        assert values.device == images.device, name
        assert float(values.min()) >= 0 and float(values.max()) <= 1, name
    torch.testing.assert_close(maps["hirescam_inverted"], 1 - hirescam)
    assert torch.equal(maps["mask"] + maps["mask_inverted"], torch.ones_like(maps["mask"]))
    assert "mask" not in reference_maps(images, {"hirescam": hirescam}, None)


def test_random_maps_are_seeded():
    first = random_maps(2, 5, 7, torch.Generator().manual_seed(3))
    again = random_maps(2, 5, 7, torch.Generator().manual_seed(3))
    other = random_maps(2, 5, 7, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # every image gets its own map


@pytest.mark.parametrize("size", [9, 10])
def test_centre_prior_peaks_at_the_centre_and_is_symmetric(size):
    prior = centre_prior(2, size, size, sigma=0.25)
    assert torch.equal(prior[0], prior[1])
    single = prior[0]
    assert torch.equal(single, single.flip(0)) and torch.equal(single, single.flip(1))
    assert torch.equal(single, single.T)  # isotropic
    middle = slice((size - 1) // 2, size // 2 + 1)  # the centre pixel, or the four central ones
    assert torch.all(single[middle, middle] == 1)
    assert float(single.min()) == 0
    assert int((single == 1).sum()) == (1 if size % 2 else 4)


def test_centre_prior_narrows_with_sigma():
    wide = centre_prior(1, 21, 21, sigma=0.5)[0]
    narrow = centre_prior(1, 21, 21, sigma=0.1)[0]
    assert float(narrow[10, 14]) < float(wide[10, 14])
    with pytest.raises(ValueError, match="sigma"):
        centre_prior(1, 5, 5, sigma=0.0)


def test_sobel_of_a_constant_image_is_zero():
    edges = sobel_edges(torch.full((2, 3, 8, 8), 0.7))
    assert torch.equal(edges, torch.zeros(2, 8, 8))


def test_sobel_of_a_vertical_step_is_largest_on_the_step():
    images = torch.zeros(1, 3, 8, 10)
    images[..., 5:] = 1.0  # columns 0-4 dark, 5-9 bright
    edges = sobel_edges(images)[0]
    assert torch.all(edges[:, 4:6] == 1)  # the two columns either side of the step
    assert torch.all(edges[:, :4] == 0) and torch.all(edges[:, 6:] == 0)


def test_sobel_averages_the_channels_first():
    images = torch.zeros(1, 2, 6, 6)
    images[0, 0, :, 3:] = 1.0
    images[0, 1, :, 3:] = -1.0  # the channels cancel: the mean image is constant
    assert torch.equal(sobel_edges(images), torch.zeros(1, 6, 6))


def test_inverted_reverses_the_ranking():
    maps = torch.tensor([[[0.1, 0.9], [0.5, 0.0]]])
    flipped = inverted(maps)
    torch.testing.assert_close(flipped, torch.tensor([[[0.9, 0.1], [0.5, 1.0]]]))
    assert torch.equal(flipped.flatten().argsort(), maps.flatten().argsort(descending=True))


def test_control_explainers_behave_as_documented():
    images, _ = images_and_maps()
    targets = torch.zeros(3, dtype=torch.long)
    explainers = control_explainers(torch.Generator().manual_seed(5))
    assert not torch.equal(explainers["random"](images, targets), explainers["random"](images, targets))
    shifted = images + 0.1
    assert torch.equal(explainers["centre"](images, targets), explainers["centre"](shifted, targets))
    assert torch.equal(explainers["edges"](images, targets), sobel_edges(images))


def test_max_sensitivity_scores_constant_zero_and_inverted_like_the_original():
    images, _ = images_and_maps(n=4, seed=2)
    targets = torch.zeros(4, dtype=torch.long)
    explainers = control_explainers(torch.Generator().manual_seed(6))
    explainers["inverted"] = lambda x, t=None: inverted(hirescam_like(x, t))

    def sensitivity(explain):
        noise = torch.Generator().manual_seed(7)  # the same perturbed images for every explainer
        return max_sensitivity(explain, images, radius=0.1, n_samples=5, targets=targets, generator=noise).scores

    assert torch.equal(sensitivity(explainers["centre"]), torch.zeros(4))
    torch.testing.assert_close(sensitivity(explainers["inverted"]), sensitivity(hirescam_like))
    assert bool((sensitivity(explainers["random"]) > sensitivity(hirescam_like)).all())


def test_reference_maps_reject_mismatched_maps():
    images, hirescam = images_and_maps()
    with pytest.raises(ValueError, match="one hirescam map per image"):
        reference_maps(images, {"hirescam": hirescam[:2]}, None)


# --- separate random streams ------------------------------------------------------------------------


def test_the_random_map_and_the_metric_noise_come_from_independent_streams():
    """The random control drawn from the run's seed was a rescaled copy of the AOPC removal noise of that seed;
    from a stream of its own it is unrelated to it."""
    seeds = {stream_seed(0, name) for name in STREAMS} | {stream_seed(1, name) for name in STREAMS}
    assert len(seeds) == 2 * len(STREAMS) and 0 not in seeds and 1 not in seeds
    n, size = 64, 16
    noise = aopc_module._removal_fill(torch.zeros(n, 3, size, size), "uniform", torch.Generator().manual_seed(0))
    old = random_maps(n, size, size, torch.Generator().manual_seed(0))
    new = random_maps(n, size, size, stream_generator(0, "random map"))
    flat_noise = noise.flatten()[: old.numel()]
    assert torch.corrcoef(torch.stack([old.flatten(), flat_noise]))[0, 1] > 0.999  # the shared seed: same draws
    assert abs(float(torch.corrcoef(torch.stack([new.flatten(), flat_noise]))[0, 1])) < 0.02
    assert torch.equal(new, random_maps(n, size, size, stream_generator(0, "random map")))  # reproducible
    with pytest.raises(ValueError, match="unknown random stream"):
        stream_seed(0, "dropout")


# --- the occlusion control ----------------------------------------------------------------------------


class LeftHalf(torch.nn.Module):
    """Class 0's logit is 4 x the mean of the left half of the image; class 1's is 0."""

    def forward(self, x):
        score = 4 * x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_the_occlusion_map_finds_the_cells_the_model_reads_with_the_metrics_own_draws():
    images = 0.5 + 0.3 * torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = torch.zeros(5, dtype=torch.long)
    occlusion = occlusion_maps(LeftHalf(), images, regions=2, seed=3, targets=targets)
    assert occlusion.shape == (5, 8, 8) and float(occlusion.min()) >= 0 and float(occlusion.max()) <= 1
    assert bool((occlusion[..., 4:] == 0).all())  # the model ignores the right half: no drop there
    assert bool((occlusion[..., :4].amax(dim=(1, 2)) == 1).all())
    results = aopc_methods(LeftHalf(), images, {"none": torch.zeros(5, 8, 8)}, regions=2, seed=3, targets=targets,
                           occlusion=True, incremental=False)
    best, worst = results["occlusion", "morf"].scores, results["occlusion_inverted", "morf"].scores
    assert bool((best > worst).all())
