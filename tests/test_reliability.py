"""The reliability of a metric (MetaQuantus's procedure) and the multiverse of a verdict."""

import numpy as np
import pandas as pd
import pytest
import torch
from metaquantus import MetaEvaluation

from camfaith import build_model
from camfaith.cams import explain
from camfaith.multiverse import (
    CHOICES,
    aopc_multiverse,
    grid_is_complete,
    primary_specification,
    robustness,
    specifications,
)
from camfaith.reliability import (
    Perturbation,
    disrupted,
    inter_consistency,
    intra_consistency,
    meta_consistency,
    meta_evaluation,
    shuffle_order,
)
from camfaith.scoring import aopc_scores
from test_endpoints import AnyRemovalDestroys, QuadrantScore, quadrant_images

# the analytic networks are neither CamNets nor Sequentials: AOPC runs full forward passes, as intended
pytestmark = pytest.mark.filterwarnings("ignore::camfaith.incremental.IncrementalFallbackWarning")


def test_consistency_scores_equal_metaquantus_on_the_same_arrays():
    rng = np.random.default_rng(0)
    before, after = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    after[:, :10] = before[:, :10] + 0.01 * rng.normal(size=(4, 10))  # some images barely move
    keep = rng.random(30) < 0.7
    for adversary, name in ((False, "Model Resilience Test"), (True, "Model Adversary Test")):
        ours = intra_consistency(before[0], after[0], keep, adversary)
        assert ours == pytest.approx(MetaEvaluation.compute_iac_score(before[0], after[0], keep, name))
    assert inter_consistency(before, after, keep, False, True) == pytest.approx(
        MetaEvaluation.compute_iec_resilience(before, after, keep))
    # MetaQuantus counts q_hat > q with a truthy score direction (a lower-is-better metric got worse)
    assert inter_consistency(before, after, keep, True, higher_is_better=False) == pytest.approx(
        MetaEvaluation.compute_iec_adversary(before, after, keep, score_direction=True))
    assert inter_consistency(before, after, keep, True, higher_is_better=True) == pytest.approx(
        MetaEvaluation.compute_iec_adversary(before, after, keep, score_direction=False))


def aopc_scorer(maps: dict):
    """AOPC (4 x 4, uniform noise) of fixed maps, or of their disrupted versions."""
    def score(model, images, disrupt):
        order = None if disrupt is None else shuffle_order(images.shape[-2] * images.shape[-1], disrupt)
        used = {name: values if order is None else disrupted(values, order) for name, values in maps.items()}
        with torch.no_grad():
            predictions = model(images).argmax(1)
        ids = [f"img{i}" for i in range(len(images))]
        frame, _ = aopc_scores(model, images, ids, used, [4], predictions, 0, "uniform", chunk_size=64)
        return frame.pivot_table(index="id", columns="method", values="aopc").reindex(ids), predictions
    return score


def explanation_reactivity(model, images, maps) -> pd.Series:
    tests = {"explanation adversary": Perturbation("explanation", True, 1.0)}
    draws = meta_evaluation(aopc_scorer(maps), model, images, tests, higher_is_better=True, n_perturbations=2)
    return meta_consistency(draws).set_index("perturbation").loc["explanation"]


def test_reactivity_is_high_where_the_metric_sees_the_maps_and_zero_where_it_is_blind():
    images, masks = quadrant_images()
    blurred = torch.nn.functional.avg_pool2d(masks.float()[:, None], 3, 1, 1)[:, 0]
    good = {"mask": masks.float(), "blurred mask": blurred}
    sharp = explanation_reactivity(QuadrantScore(), images, good)
    assert sharp["IAC AR"] > 0.99 and sharp["IEC AR"] > 0.9
    constant = torch.full((12, 3, 16, 16), 0.5)  # any removal destroys the class: every map scores alike
    blind = explanation_reactivity(AnyRemovalDestroys(), constant, {k: v[:12] for k, v in good.items()})
    assert blind["IAC AR"] == 0 and blind["IEC AR"] == 0


def test_noise_that_changes_nothing_is_resilience_and_is_kept_apart_from_the_adversary():
    images, masks = quadrant_images(12)
    tests = {"input resilience": Perturbation("input", False, 1e-6),
             "input adversary": Perturbation("input", True, 1e-6)}
    draws = meta_evaluation(aopc_scorer({"mask": masks.float(), "inverse": 1 - masks.float()}), QuadrantScore(),
                            images, tests, higher_is_better=True, n_perturbations=1)
    rows = draws.set_index("test")
    assert rows.loc["input resilience", "kept"] == 12 and rows.loc["input resilience", "IEC"] == 1.0
    assert rows.loc["input adversary", "kept"] == 0  # no prediction changed: nothing to react to
    assert np.isnan(rows.loc["input adversary", "IEC"])


def test_the_specification_grid_is_complete_and_the_primary_specification_is_found():
    rng = np.random.default_rng(0)
    rows = [{"removal": removal, "size": size, "id": f"img{i}", "gradcam": g, "hirescam": g + shift}
            for removal, shift in (("noise", 0.5), ("constant", -0.5)) for size in ("4", "8", "all")
            for i, g in enumerate(rng.normal(size=10))]
    table = specifications(pd.DataFrame(rows), ["removal", "size"], higher_is_better=True)
    assert grid_is_complete(table, ["removal", "size"]) and len(table) == 6
    assert not grid_is_complete(table.iloc[1:], ["removal", "size"])
    summary, flips = robustness(table, {"removal": "noise", "size": "all"})
    assert summary == {"verdict": "HiResCAM", "specifications": 6, "agree": 0.5}
    flipped = flips.set_index(["choice", "value"])["flipped"]
    assert flipped[("removal", "constant")] == 1.0 and flipped[("removal", "noise")] == 0.0
    with pytest.raises(ValueError, match="matches 0 rows"):
        robustness(table, {"removal": "blur", "size": "all"})


def test_the_aopc_multiverse_scores_every_specification_once_on_a_real_network():
    torch.manual_seed(0)
    model, target_layer = build_model("vgg11", 3, input_size=32, small_input=True, stages=3)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    first = explain(model, target_layer, images, raw=True)
    raw = {m: first[f"raw_{m}"] for m in ("gradcam", "hirescam")}
    frame = aopc_multiverse(model, images, ["a", "b", "c"], raw, first["targets"], 0, [2, 4], ("uniform", 0.0, "blur"))
    counts = frame.groupby(list(CHOICES["aopc"])).size()
    assert len(counts) == 3 * 2 * 3 * 2 * 2 * 2 and set(counts) == {3}  # sizes 2, 4 and their average
    table = specifications(frame, CHOICES["aopc"], higher_is_better=True)
    assert grid_is_complete(table, CHOICES["aopc"])
    summary, _ = robustness(table, primary_specification("aopc"))
    assert summary["specifications"] == len(counts)
    by_score = {score: part.sort_values(["perturbation", "regions", "tie_break", "postprocessing", "upsampling", "id"])
                for score, part in frame.groupby("score")}
    assert not np.allclose(by_score["logit"]["hirescam"], by_score["probability"]["hirescam"])  # two scores, not one
