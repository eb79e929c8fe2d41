"""AOPC's removal order (MoRF/LeRF), tie-break and ROAD imputation on a model whose evidence is known."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from torch import nn

from camfaith.metrics import (
    HIGHER_IS_BETTER,
    aopc,
    aopc_methods,
    area_between_curves,
    pool_regions,
    road_impute,
    zero_shares,
)

SIZE, REGIONS = 16, 4
SQUARE = (slice(4, 12), slice(4, 12))  # exactly cells 5, 6, 9 and 10 of the 4 x 4 grid


def square_model(channels: int = 2, gain: float = 8.0) -> nn.Module:
    """A fixed conv net: logit 0 is ``gain`` times the mean of all channels over SQUARE, logit 1 is 0."""
    conv = nn.Conv2d(channels, 2, kernel_size=SIZE, bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, SQUARE[0], SQUARE[1]] = gain / (channels * 64)
    return nn.Sequential(conv, nn.Flatten())


def square_images(n: int, seed: int = 0) -> torch.Tensor:
    """Random background in [-1, 1], the square at 1: the model is confident in class 0."""
    images = 2 * torch.rand(n, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 1
    images[:, :, SQUARE[0], SQUARE[1]] = 1.0
    return images


def oracle_maps(n: int) -> torch.Tensor:
    maps = torch.zeros(n, SIZE, SIZE, dtype=torch.float64)
    maps[:, SQUARE[0], SQUARE[1]] = 1.0
    return maps


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("perturbation", ["uniform", 0.0, "road"])
def test_oracle_beats_random_and_inverted_oracle_scores_below_random(perturbation):
    model, images = square_model(), square_images(12)
    maps = {"oracle": oracle_maps(12), "inverted": 1 - oracle_maps(12),
            "random": torch.rand(12, SIZE, SIZE, generator=seeded(1), dtype=torch.float64)}
    results = aopc_methods(model, images, maps, regions=REGIONS, perturbation=perturbation, seed=2,
                           targets=torch.zeros(12, dtype=torch.long), orders=("morf", "lerf"))
    morf = {name: results[name, "morf"].scores for name in maps}
    assert bool((morf["random"] >= morf["inverted"]).all())  # the square last: the curve falls at step L only
    if perturbation != "road":  # ROAD re-imputes the removed square from whatever background is left, so a
        assert bool((morf["oracle"] >= morf["random"]).all())  # lucky random order can beat the oracle once
    assert float(morf["oracle"].mean()) > float(morf["random"].mean()) > float(morf["inverted"].mean())
    oracle_gap = area_between_curves(results["oracle", "morf"], results["oracle", "lerf"])
    inverted_gap = area_between_curves(results["inverted", "morf"], results["inverted", "lerf"])
    assert bool((oracle_gap > 0).all()) and bool((inverted_gap < 0).all())
    lerf = {name: results[name, "lerf"].scores for name in maps}  # LeRF: lower is better
    assert float(lerf["oracle"].mean()) < float(lerf["random"].mean()) < float(lerf["inverted"].mean())
    for order in ("morf", "lerf"):  # the declared direction is the one in which the oracle beats the random map
        oracle, random = (float(results[name, order].scores.mean()) for name in ("oracle", "random"))
        assert (oracle > random) == HIGHER_IS_BETTER[order]
    assert area_between_curves.higher_is_better == bool(oracle_gap.mean() > 0)


def test_lerf_of_a_map_is_morf_of_its_inverse():
    model, images = square_model(), square_images(4)
    maps = torch.rand(4, SIZE, SIZE, generator=seeded(3), dtype=torch.float64)
    lerf = aopc(model, images, maps, regions=REGIONS, perturbation=0.0, order="lerf")
    morf_of_inverse = aopc(model, images, -maps, regions=REGIONS, perturbation=0.0)
    assert torch.equal(lerf.order, morf_of_inverse.order)
    assert torch.equal(lerf.scores, morf_of_inverse.scores)


def tied_maps(n: int) -> torch.Tensor:
    """Half of the 16 cells are 0 (tied), the other half distinct and positive."""
    cells = torch.rand(n, REGIONS * REGIONS, generator=seeded(4), dtype=torch.float64) + 0.5
    cells[:, ::2] = 0.0
    return cells.view(n, REGIONS, REGIONS).repeat_interleave(4, 1).repeat_interleave(4, 2)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_random_tie_break_is_seeded_and_moves_only_tied_cells(order):
    model, images, maps = square_model(), square_images(6), tied_maps(6)

    def run(tie_break, seed=None):
        tie_generator = None if seed is None else seeded(seed)
        return aopc(model, images, maps, regions=REGIONS, perturbation=0.0, order=order,
                    tie_break=tie_break, tie_generator=tie_generator).order

    stable, first, again, other = run("stable"), run("random", 5), run("random", 5), run("random", 6)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, stable)
    heat = pool_regions(maps, REGIONS).flatten(1)
    for shuffled in (first, other):
        assert torch.equal(heat.gather(1, shuffled), heat.gather(1, stable))  # same values at every step
        untied = heat.gather(1, stable) > 0
        assert torch.equal(shuffled[untied], stable[untied])  # the distinct cells do not move
        assert torch.equal(shuffled.sort(dim=1).values, stable.sort(dim=1).values)  # still a permutation
    ties = stable[~(heat.gather(1, stable) > 0)].view(6, -1)
    assert bool((ties.diff(dim=1) > 0).all())  # the stable order takes tied cells by lower index


def test_random_tie_break_changes_the_score_of_an_all_zero_map():
    model, images = square_model(), square_images(8)
    zero = torch.zeros(8, SIZE, SIZE, dtype=torch.float64)
    stable = aopc(model, images, zero, regions=REGIONS, perturbation=0.0)
    shuffled = aopc(model, images, zero, regions=REGIONS, perturbation=0.0, tie_break="random",
                    tie_generator=seeded(7))
    assert torch.equal(stable.order, torch.arange(16).expand(8, 16))
    assert not torch.equal(stable.scores, shuffled.scores)


def cell_mask(removed_cells, regions: int, size: int) -> torch.Tensor:
    mask = torch.zeros(regions * regions, dtype=torch.bool)
    mask[list(removed_cells)] = True
    step = size // regions
    return mask.view(regions, regions).repeat_interleave(step, 0).repeat_interleave(step, 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2 warns inside the library's SciPy call
def test_road_imputation_equals_the_library_imputer_without_noise():
    images = 2 * torch.rand(3, 3, 24, 24, generator=seeded(8)) - 1
    removed = torch.stack([cell_mask(cells, 6, 24) for cells in ([0, 7, 14, 21], range(30), range(0, 36, 5))])
    removed[2, 3, 5] = True  # a lone pixel too
    ours = road_impute(images, removed)
    for image, mask, imputed in zip(images, removed, ours):
        reference = NoisyLinearImputer(noise=0.0)(image, (~mask).float())
        torch.testing.assert_close(imputed, reference, rtol=0, atol=1e-5)
    assert torch.equal(ours[~removed[:, None].expand_as(ours)], images[~removed[:, None].expand_as(images)])


def test_road_imputation_reproduces_constant_and_linear_images():
    rows = torch.arange(20, dtype=torch.float64)[:, None].expand(20, 20)
    linear = (0.05 * rows - 0.03 * rows.T - 0.2).expand(1, 2, 20, 20)
    interior = torch.zeros(1, 20, 20, dtype=torch.bool)
    interior[0, 3:15, 6:17] = True  # the weighted mean of neighbours is exact for a plane away from the border
    torch.testing.assert_close(road_impute(linear, interior), linear, rtol=0, atol=1e-7)
    constant = torch.full((1, 1, 20, 20), 0.4, dtype=torch.float64)
    touching = torch.ones(1, 20, 20, dtype=torch.bool)
    touching[0, 10, 10] = False  # one kept pixel fixes the whole image
    torch.testing.assert_close(road_impute(constant, touching), constant, rtol=0, atol=1e-7)


def test_road_adds_the_noise_to_removed_pixels_only_and_fills_an_empty_image_with_it():
    images = torch.rand(2, 1, 8, 8, generator=seeded(9))
    noise = torch.randn(2, 1, 8, 8, generator=seeded(10))
    removed = torch.zeros(2, 8, 8, dtype=torch.bool)
    removed[0, 2:5, 2:5] = True
    removed[1] = True  # nothing kept: nothing to interpolate from, the imputation is 0
    noisy, clean = road_impute(images, removed, noise), road_impute(images, removed)
    assert torch.equal(noisy[0, :, ~removed[0]], images[0, :, ~removed[0]])
    torch.testing.assert_close(noisy[0, :, removed[0]], clean[0, :, removed[0]] + noise[0, :, removed[0]])
    assert torch.equal(noisy[1], noise[1])


@pytest.mark.parametrize("perturbation,tie_break", [("uniform", "stable"), ("image_range", "random"),
                                                    ("road", "random"), (0.5, "stable")])
def test_aopc_methods_equals_aopc_map_by_map(perturbation, tie_break):
    model, images = square_model(), square_images(5, seed=11)
    maps = {"oracle": oracle_maps(5), "ties": tied_maps(5), "low_res": torch.rand(5, 3, 3, generator=seeded(12))}
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    results = aopc_methods(model, images, maps, regions=REGIONS, perturbation=perturbation, seed=13, chunk_size=7,
                           orders=("morf", "lerf"), tie_break=tie_break)
    assert len(calls) == 1 + 3 * 2 * math.ceil(5 * 16 / 7)  # one clean pass, then the perturbed chunks
    assert set(results) == {(name, order) for name in maps for order in ("morf", "lerf")}
    for (name, order), result in results.items():
        alone = aopc(model, images, maps[name], regions=REGIONS, perturbation=perturbation, generator=seeded(13),
                     chunk_size=7, order=order, tie_break=tie_break)
        for field in result._fields:
            assert torch.equal(getattr(result, field), getattr(alone, field)), (name, order, field)


def test_both_scores_come_from_one_set_of_forward_passes():
    model, images = square_model(), square_images(4, seed=21)
    maps = {"oracle": oracle_maps(4), "random": torch.rand(4, SIZE, SIZE, generator=seeded(22), dtype=torch.float64)}
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    both = aopc_methods(model, images, maps, regions=REGIONS, perturbation="uniform", seed=23, chunk_size=16,
                        score=("probability", "logit"))
    assert len(calls) == 1 + 2 * 4  # one clean pass, then 4 chunks of 16 perturbed images per map
    for score in ("probability", "logit"):
        alone = aopc_methods(model, images, maps, regions=REGIONS, perturbation="uniform", seed=23, chunk_size=16,
                             score=score)
        for (name, order), result in alone.items():
            assert torch.equal(both[name, order, score].curves, result.curves), (name, score)


def test_logit_aopc_of_the_oracle_is_the_removed_evidence():
    """Logit 0 is 8 times the square's mean; each of its four cells set to 0 takes 2 off, in MoRF order first:
    the curve is 8, 6, 4, 2, 0 and then 0 for the twelve background cells."""
    model, images = square_model(), square_images(3)
    result = aopc(model, images, oracle_maps(3), regions=REGIONS, perturbation=0.0, score="logit",
                  targets=torch.zeros(3, dtype=torch.long))
    expected_curve = torch.tensor([8.0, 6, 4, 2] + [0] * 13, dtype=torch.float64)
    torch.testing.assert_close(result.curves, expected_curve.expand(3, -1))
    torch.testing.assert_close(result.scores, torch.full((3,), (2 + 4 + 6 + 8 + 12 * 8) / 17, dtype=torch.float64))
    with pytest.raises(ValueError, match="score='margin' is not known"):
        aopc(model, images, oracle_maps(3), regions=REGIONS, score="margin")


def test_blur_removal_keeps_a_flat_image_and_draws_no_noise():
    model, maps = square_model(), {"oracle": oracle_maps(2), "random": torch.rand(2, SIZE, SIZE, generator=seeded(3))}
    flat = torch.full((2, 2, SIZE, SIZE), 0.3, dtype=torch.float64)
    for score in ("probability", "logit"):
        results = aopc_methods(model, flat, maps, regions=REGIONS, perturbation="blur", score=score)
        for result in results.values():  # blurring a flat image changes nothing: the curve stays flat
            torch.testing.assert_close(result.scores, torch.zeros(2, dtype=torch.float64))
    images = square_images(2)
    first = aopc(model, images, maps["random"], regions=REGIONS, perturbation="blur", generator=seeded(4))
    second = aopc(model, images, maps["random"], regions=REGIONS, perturbation="blur", generator=seeded(5))
    torch.testing.assert_close(first.curves, second.curves, rtol=0, atol=0)
    oracle = aopc(model, images, maps["oracle"], regions=REGIONS, perturbation="blur")
    assert bool((oracle.curves[:, 4] < oracle.curves[:, 0]).all())  # the blurred square loses its evidence


def test_road_aopc_does_not_depend_on_chunk_size():
    model, images, maps = square_model(), square_images(3), tied_maps(3)
    small = aopc(model, images, maps, regions=REGIONS, perturbation="road", generator=seeded(14), chunk_size=5)
    large = aopc(model, images, maps, regions=REGIONS, perturbation="road", generator=seeded(14), chunk_size=48)
    torch.testing.assert_close(small.curves, large.curves, rtol=0, atol=1e-9)


def test_zero_shares_counts_ties_after_pooling():
    maps = torch.stack([torch.zeros(SIZE, SIZE, dtype=torch.float64), tied_maps(1)[0],
                        torch.arange(SIZE * SIZE, dtype=torch.float64).view(SIZE, SIZE)])
    shares = zero_shares(maps, REGIONS)
    assert shares.all_zero.tolist() == [True, False, False]
    torch.testing.assert_close(shares.tie_share, torch.tensor([1.0, 0.5, 1 / 16], dtype=torch.float64))
    low_res = zero_shares(maps[:, ::4, ::4], REGIONS, size=(SIZE, SIZE))  # resized first, as AOPC does
    assert low_res.all_zero.tolist() == [True, False, False]


def test_variants_reject_unknown_choices():
    model, images, maps = square_model(), square_images(2), oracle_maps(2)
    with pytest.raises(ValueError, match="order"):
        aopc(model, images, maps, regions=REGIONS, order="middle")
    with pytest.raises(ValueError, match="tie_break"):
        aopc(model, images, maps, regions=REGIONS, tie_break="alphabetical")
    with pytest.raises(ValueError, match="maps 'bad'"):
        aopc_methods(model, images, {"bad": maps[:1]}, regions=REGIONS)
    first = aopc(model, images, maps, regions=REGIONS, targets=torch.zeros(2, dtype=torch.long))
    second = aopc(model, images, maps, regions=REGIONS, targets=torch.ones(2, dtype=torch.long), order="lerf")
    with pytest.raises(ValueError, match="different classes"):
        area_between_curves(first, second)


def test_road_raises_when_the_solver_does_not_converge():
    images = torch.rand(1, 1, 32, 32, generator=seeded(15), dtype=torch.float64)
    removed = torch.zeros(1, 32, 32, dtype=torch.bool)
    removed[0, 2:30, 2:30] = True
    with pytest.raises(RuntimeError, match="max_iterations"):
        road_impute(images, removed, max_iterations=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_road_aopc_on_cuda_matches_the_cpu_with_a_cpu_generator():
    model, images, maps = square_model(), square_images(4), tied_maps(4)
    on_cpu = aopc(model, images, maps, regions=REGIONS, perturbation="road", generator=seeded(16))
    on_cuda = aopc(model.cuda(), images, maps, regions=REGIONS, perturbation="road", generator=seeded(16))
    torch.testing.assert_close(on_cuda.curves.cpu(), on_cpu.curves, rtol=0, atol=1e-6)
