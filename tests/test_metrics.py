"""AOPC, Max-Sensitivity and HAAS on tiny hand-built models whose right answers are known."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camfaith.metrics import (
    aopc,
    cell_partition,
    ha_attribution,
    ha_images,
    haas,
    haas_ratio,
    max_sensitivity,
    pool_regions,
)

SIZE = 16
SQUARE = (slice(4, 8), slice(4, 8))  # exactly cell 5 (row 1, column 1) of a 4 x 4 grid on 16 px
SQUARE_CELL = 5


class SquareMean(nn.Module):
    """Two-class logits ``[threshold, mean]`` where ``mean`` is the mean of channel 0 over SQUARE.

    Scaled by ``gain``: the class-1 probability is ``sigmoid(gain * (mean - threshold))`` and depends
    on SQUARE only.
    """

    def __init__(self, gain: float = 1.0, threshold: float = 0.0):
        super().__init__()
        self.register_buffer("gain", torch.tensor(gain, dtype=torch.float64))
        self.threshold = threshold

    def forward(self, x):
        mean = x[:, 0, SQUARE[0], SQUARE[1]].mean(dim=(1, 2)).double()
        return self.gain * torch.stack([torch.full_like(mean, self.threshold), mean], dim=1)


def square_images(n: int, generator: torch.Generator, value: float = 1.0) -> torch.Tensor:
    images = 2 * torch.rand(n, 2, SIZE, SIZE, generator=generator, dtype=torch.float64) - 1
    images[:, :, SQUARE[0], SQUARE[1]] = value
    return images


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def oracle_maps(n: int) -> torch.Tensor:
    maps = torch.zeros(n, SIZE, SIZE, dtype=torch.float64)
    maps[:, SQUARE[0], SQUARE[1]] = 1.0
    return maps


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    ).double()


# ------------------------------------------------------------------------------------------------
# AOPC
# ------------------------------------------------------------------------------------------------


def test_cell_partition_is_a_partition_with_floor_boundaries():
    cells = cell_partition(10, 7, 3)
    assert cells[:, 0].tolist() == [0, 0, 0, 3, 3, 3, 6, 6, 6, 6]  # rows 0-2, 3-5, 6-9
    assert cells[0].tolist() == [0, 0, 1, 1, 2, 2, 2]  # columns 0-1, 2-3, 4-6
    assert torch.bincount(cells.flatten()).tolist() == [6, 6, 9, 6, 6, 9, 8, 8, 12]


@pytest.mark.parametrize("regions", [4, 8, 14])
def test_pooling_equals_adaptive_average_pooling_when_divisible(regions):
    maps = torch.rand(2, 224, 224, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = F.adaptive_avg_pool2d(maps.unsqueeze(1), regions).squeeze(1)
    torch.testing.assert_close(pool_regions(maps, regions), expected)


def test_aopc_exact_value_and_curve_with_constant_baseline():
    gain, n_cells = 3.0, 16
    model = SquareMean(gain)
    images = square_images(2, torch.Generator().manual_seed(0))
    # map ranks cells 0, 1 first, then the square's cell: it is removed at step 3
    maps = torch.zeros(2, SIZE, SIZE, dtype=torch.float64)
    maps[:, 0:4, 0:4] = 3.0
    maps[:, 0:4, 4:8] = 2.0
    maps[:, SQUARE[0], SQUARE[1]] = 1.0
    result = aopc(model, images, maps, regions=4, perturbation=0.0)

    clean = torch.sigmoid(torch.tensor(gain, dtype=torch.float64))
    expected_curve = torch.tensor([clean] * 3 + [0.5] * 14, dtype=torch.float64)
    torch.testing.assert_close(result.curves, expected_curve.expand(2, -1))
    expected_score = (n_cells - 2) * (clean - 0.5) / (n_cells + 1)
    torch.testing.assert_close(result.scores, expected_score.expand(2))
    assert result.order[0, :3].tolist() == [0, 1, SQUARE_CELL]
    assert result.targets.tolist() == [1, 1]


def test_aopc_ties_are_broken_by_lower_cell_index():
    model = SquareMean(2.0)
    images = square_images(1, torch.Generator().manual_seed(0))
    result = aopc(model, images, torch.zeros(1, SIZE, SIZE), regions=4, perturbation=0.0)
    assert result.order.tolist() == [list(range(16))]
    # the square (cell 5) falls at step 6, and from then on the class probability is 1/2
    assert torch.all(result.curves[0, 6:] == 0.5) and torch.all(result.curves[0, :6] > 0.8)


def test_oracle_map_beats_random_maps_under_uniform_noise():
    model = SquareMean(gain=4.0)
    images = square_images(8, torch.Generator().manual_seed(0))
    random_maps = torch.rand(8, SIZE, SIZE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    oracle = aopc(model, images, oracle_maps(8), regions=4, generator=torch.Generator().manual_seed(2))
    random = aopc(model, images, random_maps, regions=4, generator=torch.Generator().manual_seed(2))
    assert torch.all(oracle.order[:, 0] == SQUARE_CELL)
    assert oracle.scores.mean() > random.scores.mean() + 0.1
    # the oracle's curve falls at the first step and stays down
    assert torch.all(oracle.curves[:, 1:].amax(dim=1) < oracle.curves[:, 0])


def test_aopc_resizes_low_resolution_maps():
    model = SquareMean(2.0)
    images = square_images(3, torch.Generator().manual_seed(0))
    low_res = torch.zeros(3, 4, 4)
    low_res[:, 1, 1] = 1.0  # the 4 x 4 map's pixel over the square
    result = aopc(model, images, low_res, regions=4, perturbation=0.0)
    assert torch.all(result.order[:, 0] == SQUARE_CELL)


def test_aopc_image_range_noise_stays_in_each_image_range():
    gain = 4.0
    model = SquareMean(gain)
    images = torch.stack([torch.full((2, SIZE, SIZE), 0.2), torch.full((2, SIZE, SIZE), -0.6)]).double()
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 0.4, -0.5  # ranges [0.2, 0.4] and [-0.6, -0.5]
    result = aopc(
        model,
        images,
        oracle_maps(2),
        regions=4,
        perturbation="image_range",
        generator=torch.Generator().manual_seed(0),
    )
    # after the square is removed its mean lies in the image's range, which bounds the probability of
    # class 1 (image 0, sigmoid(gain * mean)) and of class 0 (image 1, sigmoid(-gain * mean))
    assert result.targets.tolist() == [1, 0]
    after = result.curves[:, 1]
    assert sigmoid(gain * 0.2) <= after[0] <= sigmoid(gain * 0.4)
    assert sigmoid(gain * 0.5) <= after[1] <= sigmoid(gain * 0.6)
    assert after[0] < sigmoid(gain * 0.4) - 1e-3  # the square did change


def test_aopc_is_seeded_and_independent_of_chunk_size():
    model = tiny_cnn()
    images = (
        2 * torch.rand(3, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    )
    maps = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))

    def run(seed, chunk_size):
        return aopc(
            model,
            images,
            maps,
            regions=4,
            generator=torch.Generator().manual_seed(seed),
            chunk_size=chunk_size,
        )

    reference = run(0, 48)
    assert torch.equal(reference.curves, run(0, 48).curves)
    for chunk_size in (1, 7, 100):
        torch.testing.assert_close(run(0, chunk_size).curves, reference.curves, rtol=0, atol=1e-12)
    assert not torch.allclose(run(1, 48).curves, reference.curves)


def test_aopc_restores_training_mode_and_tracks_given_targets():
    model = tiny_cnn()
    model.train()
    model[0].eval()
    images = torch.zeros(2, 2, SIZE, SIZE, dtype=torch.float64)
    result = aopc(
        model, images, torch.rand(2, SIZE, SIZE), regions=2, perturbation=0.0, targets=torch.tensor([2, 0])
    )
    assert model.training and not model[0].training and model[1].training
    expected = model.eval()(images).softmax(1)[[0, 1], [2, 0]]
    # a constant baseline equal to the image leaves every step at the clean probability: AOPC 0
    torch.testing.assert_close(result.curves, expected[:, None].expand(2, 5))
    torch.testing.assert_close(result.scores, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regions": 0}, "regions"),
        ({"regions": SIZE + 1}, "regions"),
        ({"perturbation": "gaussian"}, "unknown perturbation"),
        ({"perturbation": None}, "perturbation"),
        ({"maps": torch.zeros(3, SIZE, SIZE)}, "3 maps for 2 images"),
        ({"maps": torch.zeros(2, 1, SIZE, SIZE)}, "squeeze"),
        ({"maps": torch.full((2, SIZE, SIZE), math.nan)}, "NaN"),
        ({"images": torch.zeros(2, SIZE, SIZE)}, r"\(N, C, H, W\)"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"generator": 0}, "torch.Generator"),
        ({"targets": torch.tensor([0, 5])}, "below 2"),
        ({"targets": torch.tensor([0])}, "1 targets for 2 images"),
    ],
)
def test_aopc_rejects_bad_parameters(kwargs, message):
    arguments = {
        "model": SquareMean(),
        "images": torch.zeros(2, 1, SIZE, SIZE),
        "maps": torch.zeros(2, SIZE, SIZE),
    }
    with pytest.raises(ValueError, match=message):
        aopc(**(arguments | kwargs))


# ------------------------------------------------------------------------------------------------
# Max-Sensitivity
# ------------------------------------------------------------------------------------------------


def first_channel(images, targets):
    return images[:, 0]


def test_constant_explainer_has_zero_sensitivity():
    images = torch.rand(3, 2, 8, 8)
    result = max_sensitivity(
        lambda x, t: torch.ones(x.shape[0], 8, 8),
        images,
        radius=0.5,
        n_samples=4,
        targets=torch.zeros(3, dtype=torch.long),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(result.scores, torch.zeros(3))
    assert result.distances.shape == (3, 4)


def test_identity_explainer_matches_the_noise_norm():
    radius, height, width = 0.1, 8, 8
    images = torch.rand(4, 2, height, width, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.zeros(4, dtype=torch.long)
    result = max_sensitivity(
        first_channel,
        images,
        radius,
        n_samples=50,
        targets=targets,
        generator=torch.Generator().manual_seed(1),
        chunk_size=13,
    )
    # ||u||_F <= r sqrt(HW), and E||u||_F^2 = r^2 HW / 3 for u uniform in [-r, r]^(HW)
    assert torch.all(result.scores <= radius * math.sqrt(height * width))
    mean_square = (result.distances**2).mean()
    assert mean_square == pytest.approx(radius**2 * height * width / 3, rel=0.05)
    # an explanation twice as large is exactly twice as sensitive to the same noise
    doubled = max_sensitivity(
        lambda x, t: 2 * x[:, 0],
        images,
        radius,
        n_samples=50,
        targets=targets,
        generator=torch.Generator().manual_seed(1),
        chunk_size=13,
    )
    torch.testing.assert_close(doubled.scores, 2 * result.scores)


def test_single_pixel_identity_approaches_the_radius():
    radius, n_samples = 0.3, 400
    images = torch.zeros(2, 1, 1, 1, dtype=torch.float64)
    result = max_sensitivity(
        first_channel,
        images,
        radius,
        n_samples,
        targets=torch.zeros(2, dtype=torch.long),
        generator=torch.Generator().manual_seed(0),
        chunk_size=64,
    )
    # the largest of n draws of |u| has mean r n / (n + 1)
    assert torch.all(result.scores <= radius)
    assert torch.all(result.scores > radius * 0.98)


def test_sensitivity_is_seeded_and_independent_of_chunk_size():
    images = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([0, 1, 2])

    def explain(x, t):
        return torch.tanh(x.sum(dim=1) * (t + 1)[:, None, None])

    def run(seed, chunk_size):
        return max_sensitivity(
            explain,
            images,
            0.2,
            5,
            targets,
            generator=torch.Generator().manual_seed(seed),
            chunk_size=chunk_size,
        ).distances

    reference = run(0, 4)
    assert torch.equal(reference, run(0, 4))
    for chunk_size in (1, 3, 15, 64):
        assert torch.equal(run(0, chunk_size), reference)
    assert not torch.allclose(run(1, 4), reference)


def test_sensitivity_agrees_with_captum_on_the_same_perturbations():
    from captum.metrics import sensitivity_max

    radius, n_samples = 0.1, 6
    images = torch.rand(3, 2, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([1, 0, 2])
    calls = []

    def explain(x, t):
        return torch.sin(3 * x[:, 0] * x[:, 1] + t[:, None, None])

    def recording_explain(x, t):
        calls.append((x.clone(), t.clone()))
        return explain(x, t)

    ours = max_sensitivity(
        recording_explain,
        images,
        radius,
        n_samples,
        targets,
        normalize=True,
        generator=torch.Generator().manual_seed(3),
        chunk_size=4,
    )

    # recover which image and which sample each perturbed copy was, from the copies themselves
    assert torch.equal(calls[0][0], images)
    perturbed = [[] for _ in images]
    for batch, batch_targets in calls[1:]:
        for copy, target in zip(batch, batch_targets, strict=True):
            distance = (copy - images).abs().flatten(1).amax(dim=1)
            index = int(distance.argmin())
            assert distance[index] <= radius and target == targets[index]
            perturbed[index].append(copy)
    perturbed = torch.stack([torch.stack(copies) for copies in perturbed])  # (N, n_samples, C, H, W)

    def captum_explain(inputs, target):  # captum passes and expects tuples, as its attribute methods do
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (explain(inputs, target),)

    theirs = sensitivity_max(
        captum_explain,
        images,
        perturb_func=lambda x: perturbed.flatten(0, 1),
        n_perturb_samples=n_samples,
        norm_ord="fro",
        target=targets,
    )
    torch.testing.assert_close(ours.scores, theirs.reshape(-1))

    unnormalized = max_sensitivity(
        explain, images, radius, n_samples, targets, generator=torch.Generator().manual_seed(3), chunk_size=4
    )
    clean_norm = torch.linalg.vector_norm(explain(images, targets).flatten(1), dim=1)
    torch.testing.assert_close(unnormalized.scores, theirs.reshape(-1) * clean_norm)


def test_sensitivity_clip_keeps_perturbed_images_in_range():
    seen = []

    def explain(x, t):
        seen.append(x)
        return x[:, 0]

    images = torch.ones(2, 1, 4, 4)
    max_sensitivity(
        explain,
        images,
        0.5,
        3,
        torch.zeros(2, dtype=torch.long),
        clip=(-1, 1),
        generator=torch.Generator().manual_seed(0),
    )
    assert all(batch.max() <= 1 for batch in seen)
    assert torch.cat(seen[1:]).min() < 1  # still perturbed below the upper bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"radius": 0.0}, "radius"),
        ({"radius": -0.1}, "radius"),
        ({"n_samples": 0}, "n_samples"),
        ({"targets": torch.zeros(3, dtype=torch.long)}, "3 targets for 2 images"),
        ({"targets": torch.zeros(2)}, "integer"),
        ({"clip": (1, -1)}, "clip"),
        ({"explain": lambda x, t: x}, "one map per image"),
        ({"explain": lambda x, t: x[:1, 0]}, "one map per image"),
    ],
)
def test_sensitivity_rejects_bad_parameters(kwargs, message):
    arguments = {
        "explain": first_channel,
        "images": torch.zeros(2, 1, 4, 4),
        "radius": 0.1,
        "n_samples": 2,
        "targets": torch.zeros(2, dtype=torch.long),
    }
    with pytest.raises(ValueError, match=message):
        max_sensitivity(**(arguments | kwargs))


# ------------------------------------------------------------------------------------------------
# HAAS
# ------------------------------------------------------------------------------------------------


def test_ha_images_reproduce_the_worked_example_and_clip():
    # section 2.2.3 of Lamprou (2023): x = +-1/2 under a = +-1/2, then two pixels pushed past +-1
    images = torch.tensor([0.5, -0.5, 0.5, -0.5, 0.8, -0.8]).view(1, 1, 1, 6)
    attribution = torch.tensor([0.5, 0.5, -0.5, -0.5, 0.5, 1.0]).view(1, 1, 6)
    expected = torch.tensor([0.75, -0.75, 0.25, -0.25, 1.0, -1.0]).view(1, 1, 1, 6)
    torch.testing.assert_close(ha_images(images, attribution), expected)


def test_ha_images_broadcast_over_channels():
    images = torch.tensor([0.5, -0.25]).view(1, 2, 1, 1)
    torch.testing.assert_close(ha_images(images, torch.full((1, 1, 1), 0.5)), 1.5 * images)


def test_attribution_scalings():
    maps = torch.tensor([[[0.0, 0.25], [1.0, 0.5]]])
    torch.testing.assert_close(ha_attribution(maps, (2, 2), "unit"), maps)
    torch.testing.assert_close(ha_attribution(maps, (2, 2), "centered"), 2 * maps - 1)
    signed = torch.tensor([[[-2.0, 1.0], [0.5, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    expected = torch.tensor([[[-1.0, 0.5], [0.25, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(ha_attribution(signed, (2, 2), "signed"), expected)
    resized = ha_attribution(maps, (4, 4), "unit")
    torch.testing.assert_close(resized, F.interpolate(maps[None], size=(4, 4), mode="bilinear")[0])
    with pytest.raises(ValueError, match="signed"):
        ha_attribution(signed, (2, 2), "unit")
    with pytest.raises(ValueError, match="unknown attribution_scaling"):
        ha_attribution(maps, (2, 2), "minmax")


def haas_setting():
    """Class 1 iff the square's mean exceeds 0.25; every label is 1; squares at 0.2, 0.2, 0.5, 0.1.

    Originally one image in four is right; doubling the square (a = 1 there) lifts 0.2 to 0.4 and
    makes three in four right: HAAS = 3.
    """
    images = square_images(4, torch.Generator().manual_seed(0), value=0.0)
    for image, value in zip(images, (0.2, 0.2, 0.5, 0.1), strict=True):
        image[:, SQUARE[0], SQUARE[1]] = value
    return SquareMean(gain=10.0, threshold=0.25), images, torch.ones(4, dtype=torch.long)


def test_haas_known_ratio():
    model, images, labels = haas_setting()
    result = haas(model, images, labels, oracle_maps(4), return_images=True, chunk_size=3)
    assert result.predictions.tolist() == [0, 0, 1, 0]
    assert result.ha_predictions.tolist() == [1, 1, 1, 0]
    assert result.accuracy.item() == 0.25 and result.ha_accuracy.item() == 0.75
    assert result.score.item() == pytest.approx(3.0)
    torch.testing.assert_close(result.ha_images, ha_images(images, oracle_maps(4)))
    # centered scaling also sets the background to -1, which zeroes it; the square is doubled as before
    centered = haas(model, images, labels, oracle_maps(4), attribution_scaling="centered")
    assert centered.score.item() == pytest.approx(3.0)
    # an all-zero unit map leaves the images unchanged; an anti-oracle removes the square
    assert haas(model, images, labels, torch.zeros(4, SIZE, SIZE)).score.item() == 1.0
    anti = haas(model, images, labels, 1 - oracle_maps(4), attribution_scaling="centered")
    assert anti.score.item() == 0.0


def test_haas_is_nan_without_correct_original_predictions():
    model, images, _ = haas_setting()
    result = haas(model, images, torch.tensor([1, 1, 0, 1]), oracle_maps(4))
    assert result.accuracy.item() == 0.0 and math.isnan(result.score.item())
    pooled = haas_ratio(torch.ones(4, dtype=torch.long), result.predictions, result.ha_predictions)
    assert pooled.item() == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": torch.full((4, 2, SIZE, SIZE), 128.0)}, r"scaled to \[-1, 1\].*section 4.2"),
        ({"labels": torch.ones(3, dtype=torch.long)}, "3 labels for 4 images"),
        ({"maps": torch.zeros(2, SIZE, SIZE)}, "2 maps for 4 images"),
        ({"attribution_scaling": "absolute"}, "unknown attribution_scaling"),
        ({"maps": torch.full((4, SIZE, SIZE), 2.0)}, r"needs maps in \[0, 1\]"),
    ],
)
def test_haas_rejects_bad_input(kwargs, message):
    model, images, labels = haas_setting()
    arguments = {"model": model, "images": images, "labels": labels, "maps": oracle_maps(4)}
    with pytest.raises(ValueError, match=message):
        haas(**(arguments | kwargs))


def test_ha_images_rejects_out_of_range_input():
    with pytest.raises(ValueError, match="images must lie in"):
        ha_images(torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="attribution must lie in"):
        ha_images(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 1.5))
    with pytest.raises(ValueError, match="ha_attribution"):
        ha_images(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_gives_the_same_noise_on_cuda():
    model = tiny_cnn()
    images = torch.rand(2, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    maps = torch.rand(2, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    on_cpu = aopc(model, images, maps, regions=4, generator=torch.Generator().manual_seed(2))
    on_cuda = aopc(model.cuda(), images, maps, regions=4, generator=torch.Generator().manual_seed(2))
    assert on_cuda.scores.device.type == "cuda"
    torch.testing.assert_close(on_cuda.curves.cpu(), on_cpu.curves)

    targets = torch.zeros(2, dtype=torch.long)
    cpu_sensitivity = max_sensitivity(
        first_channel, images, 0.1, 3, targets, generator=torch.Generator().manual_seed(3)
    )
    cuda_sensitivity = max_sensitivity(
        first_channel, images.cuda(), 0.1, 3, targets.cuda(), generator=torch.Generator().manual_seed(3)
    )
    assert cuda_sensitivity.scores.device.type == "cuda"
    torch.testing.assert_close(cuda_sensitivity.distances.cpu(), cpu_sensitivity.distances)


def test_relevance_mass_is_the_share_of_the_map_on_the_object():
    from camfaith.metrics import relevance_mass

    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, :2, :2] = 1.0  # all mass on the object
    maps[1] = 1.0  # uniform: a quarter of the mass
    maps[1, 3, 3] = -5.0  # negative evidence is not mass
    assert torch.allclose(relevance_mass(maps, masks), torch.tensor([1.0, 4 / 15]))
    assert relevance_mass(torch.zeros(1, 4, 4), masks[:1]).item() == 0.0
    with pytest.raises(ValueError, match="must match"):
        relevance_mass(maps, masks[:1])


def test_localisation_scores_on_analytic_masks():
    from camfaith.metrics import energy_pointing_game, relevance_mass, relevance_rank

    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, 2:4, 2:6] = True  # a 2x4 object: 8 pixels, bounding box the same
    inside = masks.float()
    outside = (~masks).float()
    half = inside.clone()
    half[:, 2, 2:6] = 0  # half of the object
    half[:, 7, 0:4] = 1  # and 4 pixels far away
    maps = torch.stack([inside[0], outside[0], half[0]])
    assert torch.allclose(relevance_mass(masks.float(), masks), torch.ones(3))
    assert torch.allclose(relevance_mass(maps, masks), torch.tensor([1.0, 0.0, 0.5]))
    assert torch.allclose(relevance_rank(maps, masks), torch.tensor([1.0, 0.0, 0.5]))
    diagonal = torch.zeros(1, 8, 8, dtype=torch.bool)
    diagonal[0, 1, 1] = diagonal[0, 5, 5] = True  # bounding box rows and columns 1-5, mask of 2 pixels
    box_only = torch.zeros(1, 8, 8)
    box_only[0, 3, 3] = 1.0
    assert float(energy_pointing_game(box_only, diagonal)) == 1.0
    assert float(relevance_mass(box_only, diagonal)) == 0.0
    assert float(relevance_rank(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8, dtype=torch.bool))) == 0.0
