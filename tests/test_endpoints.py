"""The metric registry and the three answers: validity by controls that know nothing of the CAMs, each map's
informativeness, and the verdict between the two CAMs, in a chapter and in the summary."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from camfaith.controls import reference_maps
from camfaith.endpoints import (
    answer_table,
    answers,
    comparer,
    noise_stability,
    primary_settings,
    run_answers,
    select,
    stability,
    validity,
)
from camfaith.runs import Run
from camfaith.scoring import aopc_scores
from camfaith.seeds import stream_generator
from camfaith.summary import collect, counts_table, per_network, verdict_counts

RNG = np.random.default_rng(0)
IDS = [f"img{i}" for i in range(40)]
REPORT = {"balanced_accuracy": 0.9, "precision_weighted": 0.9, "recall_weighted": 0.9, "f1_weighted": 0.9,
          "mean_auc": 0.95, "confusion_matrix": [[1]], "class_names": ["a"]}
#: a run whose metric is valid: the occlusion control above random, random above its inversion
VALID = {"occlusion": 0.8, "occlusion_inverted": 0.05, "random": 0.3}


def aopc_frame(means: dict[str, float], noise: float = 0.02) -> pd.DataFrame:
    """Per-image AOPC of each map at two heatmap sizes (primary setting), around the given means."""
    return pd.DataFrame([{"id": i, "method": method, "regions": size, "order": "morf", "tie_break": "random",
                          "aopc": mean + noise * RNG.standard_normal()}
                         for method, mean in means.items() for size in (4, 8) for i in IDS])


# --- an analytic network whose best map is known ----------------------------------------------------


class QuadrantScore(nn.Module):
    """Class 0's logit is ``gain`` times the mean of the top-left quadrant; class 1's is 0.

    Removing a top-left cell by uniform noise in [-1, 1] lowers the probability of class 0 (the pixels
    there are positive); removing any other cell changes nothing. The object mask is the quadrant.
    """

    def __init__(self, gain: float = 4.0):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        half = x.shape[-1] // 2
        score = self.gain * x[:, :, :half, :half].mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class AnyRemovalDestroys(nn.Module):
    """A network for which removal itself destroys the class: class 0 while every 4 x 4 cell of the image
    keeps its clean mean (0.5), class 1 as soon as any cell is replaced by noise, wherever it is."""

    def forward(self, x):
        cells = nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), 4).flatten(1)
        intact = (cells.amin(dim=1) > 0.25).float()
        return torch.stack([10 * intact - 5, 5 - 10 * intact], dim=1)


def analytic_scores(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, cams: dict) -> pd.DataFrame:
    ids = [f"img{i}" for i in range(len(images))]
    maps = reference_maps(images, cams, stream_generator(0, "random map"), masks)
    targets = torch.zeros(len(images), dtype=torch.long)
    frame, _ = aopc_scores(model, images, ids, maps, [4], targets, 0, "uniform", chunk_size=64, occlusion=True)
    return frame


def quadrant_images(n: int = 24, size: int = 16):
    generator = torch.Generator().manual_seed(1)
    images = 0.2 + 0.6 * torch.rand(n, 3, size, size, generator=generator)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, : size // 2, : size // 2] = True
    return images, masks


def test_on_a_network_with_a_known_best_map_the_controls_validate_aopc_and_a_bad_map_is_worse_than_random():
    images, masks = quadrant_images()
    good, bad = masks.float(), 1 - masks.float()
    frame = analytic_scores(QuadrantScore(), images, masks, {"gradcam": bad, "hirescam": good})
    result = answers(frame, "aopc")
    assert result.validity["status"] == "valid"
    assert result.validity["oracle"]["better"] == "second"  # the object mask beats random
    maps = result.maps.set_index("map")
    assert maps.loc["hirescam", "standing"] == "beats random" and maps.loc["hirescam", "beats its inversion"] == "yes"
    assert maps.loc["gradcam", "standing"] == "worse than random"
    assert maps.loc["occlusion", "normalised"] == pytest.approx(1.0)
    assert maps.loc["hirescam", "normalised"] > 0.5 and maps.loc["gradcam", "normalised"] < 0
    assert result.category == "only HiResCAM" and result.comparison["better"] == "second"
    table = answer_table(result)
    assert table.loc[0, "answer"] == "valid" and table.loc[1, "answer"].startswith("worse than random")


def test_a_metric_that_is_blind_on_a_construction_is_reported_not_valid():
    """Removal that destroys the class everywhere: every order of removal gives the same curve."""
    images = torch.full((12, 3, 16, 16), 0.5)
    masks = torch.zeros(12, 16, 16, dtype=torch.bool)
    masks[:, :8, :8] = True
    frame = analytic_scores(AnyRemovalDestroys(), images, masks, {"gradcam": masks.float(), "hirescam": masks.float()})
    curves = frame.pivot_table(index="id", columns="method", values="aopc")
    assert np.allclose(curves.to_numpy(), curves.to_numpy()[:, :1])  # every map scores alike
    result = answers(frame, "aopc")
    assert result.validity["status"] == "not valid"
    assert answer_table(result).loc[3, "answer"].startswith("not read")


def test_validity_needs_the_positive_control_above_random_above_its_inversion():
    cams = {"gradcam": 0.5, "hirescam": 0.6}
    assert validity(comparer(aopc_frame(cams | VALID), "aopc"), "aopc")["status"] == "valid"
    inverted_flat = VALID | {"occlusion_inverted": 0.3}  # random no better than the inverted control
    assert validity(comparer(aopc_frame(inverted_flat | {"gradcam": 0.5, "hirescam": 0.6}), "aopc"),
                    "aopc")["status"] == "not valid"
    assert validity(comparer(aopc_frame({"gradcam": 0.5, "hirescam": 0.6}), "aopc"), "aopc")["status"] == "no controls"


def test_a_cam_that_fails_is_a_finding_not_a_blind_metric():
    """HiResCAM informative, Grad-CAM below random: the metric is valid and its verdict is read."""
    result = answers(aopc_frame({"gradcam": 0.2, "hirescam": 0.6} | VALID), "aopc")
    assert result.validity["status"] == "valid" and result.category == "only HiResCAM"
    maps = result.maps.set_index("map")
    assert maps.loc["gradcam", "standing"] == "worse than random"
    assert maps.loc["hirescam", "normalised"] == pytest.approx((0.6 - 0.3) / (0.8 - 0.3), abs=0.02)


def test_max_sensitivity_has_no_validity_gate_and_its_inversion_scores_like_the_map():
    rows = [{"id": i, "method": m, "radius": 0.1, "normalized": normalized, "max_sensitivity": value}
            for i in IDS for normalized in (False, True)
            for m, value in (("gradcam", 1.0), ("hirescam", 0.5), ("hirescam_inverted", 0.5), ("random", 3.0))]
    frame = pd.DataFrame(rows)
    assert set(select(frame, "max_sensitivity")["normalized"]) == {False}
    result = answers(frame, "max_sensitivity")
    assert result.validity["status"] == "not applicable"
    assert result.maps.set_index("map").loc["hirescam", "beats its inversion"] == "no"
    assert result.comparison["better"] == "second"  # lower is better: HiResCAM is the more stable
    with pytest.raises(ValueError, match="no rows with"):
        select(frame, "max_sensitivity", {"normalized": "both"})


def test_haas_compares_the_correctness_of_ha_predictions_as_a_ratio():
    rows = []
    for n, i in enumerate(IDS):
        for method, right in (("gradcam", n % 4 != 0), ("hirescam", True), ("random", n % 2 == 0),
                              ("occlusion", True), ("occlusion_inverted", False)):
            rows.append({"id": i, "scaling": "centered", "method": method, "label": 1, "prediction": int(n % 5 != 0),
                         "ha_prediction": 1 if right else 0})
    frame = pd.DataFrame(rows)
    result = answers(frame, "haas", n_resamples=500)
    assert result.comparison["better"] == "second" and result.validity["status"] == "valid"
    accuracy = 32 / 40  # HAAS divides by the accuracy on the originals
    assert result.comparison["mean_second"] == pytest.approx(1 / accuracy)
    # a network that gets no image right: HAAS is undefined, and no verdict rests on it
    wrong = answers(frame.assign(prediction=0), "haas", n_resamples=500)
    assert wrong.comparison["better"] == "neither" and np.isnan(wrong.comparison["mean_difference"])
    assert wrong.validity["status"] == "not valid"


def test_relevance_mass_is_valid_by_its_chance_level():
    rows = [{"id": i, "method": m, "relevance_mass": v + 0.01 * RNG.standard_normal()}
            for i in IDS for m, v in (("gradcam", 0.1), ("hirescam", 0.5), ("chance", 0.2), ("mask", 1.0))]
    result = answers(pd.DataFrame(rows), "relevance_mass")
    assert result.validity["status"] == "valid" and result.category == "only HiResCAM"
    maps = result.maps.set_index("map")
    assert maps.loc["gradcam", "standing"] == "worse than random"
    assert maps.loc["hirescam", "normalised"] == pytest.approx((0.5 - 0.2) / (1.0 - 0.2), abs=0.02)


def test_stability_is_not_checked_with_one_noise_seed_and_unstable_when_the_side_flips():
    flipping = pd.concat([
        aopc_frame({"gradcam": 0.5, "hirescam": 0.6} | VALID).assign(noise_seed=0),
        aopc_frame({"gradcam": 0.6, "hirescam": 0.5} | VALID).assign(noise_seed=1)])
    table = noise_stability(flipping, "aopc", n_resamples=300)
    assert list(table["better"]) == ["second", "first"] and stability(table) == "unstable"
    assert stability(noise_stability(flipping[flipping["noise_seed"] == 0], "aopc")) == "not checked"


def save_run(folder, name: str, frame: pd.DataFrame, replicate_of: str = "") -> Run:
    run = Run.create(folder / name, dataset="synthetic", arch="vgg11", input_size=32, replicate_of=replicate_of)
    run.save_report(REPORT)
    run.save_scores("aopc", frame)
    return run


def test_the_summary_reads_a_verdict_only_where_the_metric_is_valid(tmp_path):
    save_run(tmp_path, "good", aopc_frame({"gradcam": 0.5, "hirescam": 0.6} | VALID))
    save_run(tmp_path, "blind", aopc_frame({"gradcam": 0.5, "hirescam": 0.6, "occlusion": 0.3,
                                            "occlusion_inverted": 0.3, "random": 0.3}))
    flipping = pd.concat([aopc_frame({"gradcam": 0.5, "hirescam": 0.6} | VALID).assign(noise_seed=0),
                          aopc_frame({"gradcam": 0.6, "hirescam": 0.5} | VALID).assign(noise_seed=1)])
    save_run(tmp_path, "flip", flipping)
    summary = collect(tmp_path, ["good", "blind", "flip"])
    verdicts = summary.verdicts.set_index("run")
    assert verdicts.loc["good", "verdict"] == "HiResCAM" and verdicts.loc["good", "valid"] == "valid"
    assert verdicts.loc["blind", "favours"] == "HiResCAM" and verdicts.loc["blind", "verdict"] == "metric not valid"
    assert np.isnan(verdicts.loc["blind", "p (Holm)"])  # not read, so not in the family
    assert verdicts.loc["flip", "verdict"] == "unstable" and verdicts.loc["good", "stability"] == "not checked"
    counts = verdict_counts(summary.verdicts)
    assert counts.loc["aopc", ["networks", "valid", "hirescam", "not_valid", "unstable"]].tolist() == [3, 2, 1, 1, 1]
    assert counts.loc["haas"].sum() == 0
    assert set(summary.maps["run"]) == {"good", "blind", "flip"}
    shown = counts_table(counts)  # as the book shows it: Max-Sensitivity, without a validity gate, last
    assert shown.index[-1] == "Max-Sensitivity (robustness)" and shown.loc["AOPC", "favours HiResCAM"] == 1
    assert shown.loc["Max-Sensitivity (robustness)", ["valid", "HiResCAM informative"]].tolist() == ["n/a", "n/a"]


def test_the_chapter_and_the_summary_give_the_same_answers(tmp_path):
    run = save_run(tmp_path, "good", aopc_frame({"gradcam": 0.5, "hirescam": 0.6} | VALID))
    chapter = run_answers(run, run.scores("aopc"), "aopc").comparison
    row = collect(tmp_path, ["good"]).verdicts.iloc[0]
    assert (row["HiResCAM - Grad-CAM"], row["low"], row["high"], row["p"]) == (
        chapter["mean_difference"], chapter["low"], chapter["high"], chapter["p_value"])


def test_replicates_of_one_network_count_once(tmp_path):
    for name in ("a", "a_t2", "a_t3"):
        save_run(tmp_path, name, aopc_frame({"gradcam": 0.5, "hirescam": 0.6} | VALID), replicate_of="a")
    summary = collect(tmp_path, ["a", "a_t2", "a_t3"])
    networks = per_network(summary.verdicts)
    assert len(networks) == 1 and networks.loc[0, "runs"] == 3
    assert verdict_counts(summary.verdicts).loc["aopc", "networks"] == 1


def test_a_verdict_holds_across_replicates_only_when_every_network_gives_it():
    from camfaith.summary import replicate_agreement

    verdicts = pd.DataFrame({"run": ["a", "a_t2", "a_t3", "a", "a_t2", "a_t3", "b"],
                             "network": ["a"] * 6 + ["b"], "metric": ["AOPC"] * 3 + ["HAAS"] * 3 + ["AOPC"],
                             "verdict": ["HiResCAM"] * 3 + ["HiResCAM", "neither", "HiResCAM", "neither"]})
    table = replicate_agreement(verdicts).set_index("metric")
    assert list(table["network"]) == ["a", "a"]
    assert table.loc["AOPC", "holds"] == "yes" and table.loc["HAAS", "holds"] == "no"
    assert replicate_agreement(verdicts[verdicts["run"] == "b"]) is None


def test_primary_endpoints_are_declared_and_can_be_overridden():
    frame = pd.DataFrame({"id": ["a"] * 4, "method": "gradcam", "order": ["morf", "morf", "lerf", "lerf"],
                          "tie_break": ["random", "stable"] * 2, "aopc": [1.0, 2.0, 3.0, 4.0]})
    assert select(frame, "aopc")["aopc"].tolist() == [1.0]  # MoRF, ties at random: the primary AOPC
    overridden = primary_settings("haas.scaling=unit, max_sensitivity.normalized=true")
    assert overridden["haas"] == {"scaling": "unit"} and overridden["max_sensitivity"] == {"normalized": True}
    with pytest.raises(ValueError, match="metric of a primary endpoint='accuracy' is not known"):
        primary_settings("accuracy.top=1")
    with pytest.raises(ValueError, match="metric.column=value"):
        primary_settings("haas=unit")


def forest_row(run, network, difference, low, high, valid="valid"):
    return {"run": run, "network": network, "metric": "AOPC", "valid": valid, "HiResCAM - Grad-CAM": difference,
            "low": low, "high": high}


def test_the_pooled_estimate_counts_the_replicates_of_one_network_once_and_only_valid_runs():
    from camfaith.summary import forest_table

    def pooled(rows):
        table = forest_table(pd.DataFrame(rows))
        return table.query("source == 'pooled'").iloc[0][["difference", "low", "high"]].astype(float), table

    single = [forest_row("a", "a", 0.10, 0.05, 0.15), forest_row("b", "b", 0.30, 0.20, 0.40)]
    copies = [forest_row(name, "a", 0.10, 0.05, 0.15) for name in ("a_t2", "a_t3")]
    invalid = [forest_row("c", "c", 5.0, 4.0, 6.0, valid="not valid")]
    # two more trainings of network a with its very interval do not weigh it three times
    assert pooled(single + copies)[0].tolist() == pytest.approx(pooled(single)[0].tolist())
    # a run where the metric is not valid is drawn but not pooled
    with_invalid, table = pooled(single + copies + invalid)
    assert with_invalid.tolist() == pytest.approx(pooled(single)[0].tolist())
    assert len(table.query("source == 'ours'")) == 5
    # replicates that differ: the network's mean difference enters once, between the two networks' values
    varied = [forest_row("a_t2", "a", 0.12, 0.06, 0.18), forest_row("a_t3", "a", 0.08, 0.02, 0.14)]
    difference = pooled(single + varied)[0]["difference"]
    assert 0.10 < difference < 0.30
