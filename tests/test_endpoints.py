"""Primary endpoints, the null-control test of discrimination, and the summary's verdicts built on them."""

import numpy as np
import pandas as pd
import pytest

from camfaith.endpoints import comparer, discriminates, discrimination, select
from camfaith.runs import Run
from camfaith.summary import collect, discriminating_runs, verdict_counts

RNG = np.random.default_rng(0)
IDS = [f"img{i}" for i in range(40)]


def aopc_frame(means: dict[str, float], noise: float = 0.02) -> pd.DataFrame:
    """Per-image AOPC of each map at two heatmap sizes, around the given means."""
    return pd.DataFrame([{"id": i, "method": method, "regions": size, "aopc": mean + noise * RNG.standard_normal()}
                         for method, mean in means.items() for size in (4, 8) for i in IDS])


def test_a_metric_that_ranks_both_cams_above_the_controls_discriminates():
    frame = aopc_frame({"gradcam": 0.6, "hirescam": 0.62, "random": 0.3, "inverted": 0.1})
    table = discrimination(comparer(frame, "aopc"))
    assert list(table["control"]) == ["random", "inverted", "random", "inverted"]
    assert table["beats"].all() and discriminates(table) == "yes"
    assert (table["difference"] > 0).all()


def test_a_metric_that_scores_a_random_map_like_the_cams_does_not():
    frame = aopc_frame({"gradcam": 0.6, "hirescam": 0.6, "random": 0.6, "inverted": 0.1})
    table = discrimination(comparer(frame, "aopc"))
    assert not table.query("control == 'random'")["beats"].any() and discriminates(table) == "no"
    assert discrimination(comparer(aopc_frame({"gradcam": 0.6, "hirescam": 0.6}), "aopc")) is None
    assert discriminates(None) == "no controls"


def test_lower_is_better_metrics_and_the_primary_setting():
    rows = [{"id": i, "method": m, "radius": 0.1, "normalized": normalized, "max_sensitivity": value}
            for i in IDS for normalized in (False, True)
            for m, value in (("gradcam", 1.0), ("hirescam", 0.5), ("random", 3.0), ("inverted", 0.5))]
    frame = pd.DataFrame(rows)
    assert set(select(frame, "max_sensitivity")["normalized"]) == {False}
    table = discrimination(comparer(frame, "max_sensitivity"))
    # the inverted map moves exactly as much as HiResCAM: no interval excludes zero
    assert discriminates(table) == "no"
    assert table.query("control == 'random'")["beats"].all()
    with pytest.raises(ValueError, match="no rows with"):
        select(frame, "max_sensitivity", {"normalized": "both"})


def test_haas_compares_the_correctness_of_ha_predictions():
    rows = []
    for n, i in enumerate(IDS):
        for method, right in (("gradcam", n % 4 != 0), ("hirescam", True), ("random", n % 4 == 0),
                              ("inverted", n % 4 == 1)):
            rows.append({"id": i, "scaling": "centered", "method": method, "label": 1, "prediction": 1,
                         "ha_prediction": 1 if right else 0})
    compare = comparer(pd.DataFrame(rows), "haas", n_resamples=500)
    assert compare("gradcam", "hirescam")["better"] == "second"
    assert discriminates(discrimination(compare)) == "yes"
    # a network that gets no image right: HAAS is undefined, and neither a verdict nor discrimination rests on it
    wrong = comparer(pd.DataFrame(rows).assign(prediction=0), "haas", n_resamples=500)
    assert wrong("gradcam", "hirescam")["better"] == "neither"
    assert discriminates(discrimination(wrong)) == "no"


def test_the_summary_reports_a_verdict_only_where_the_metric_discriminates(tmp_path):
    report = {"balanced_accuracy": 0.9, "precision_weighted": 0.9, "recall_weighted": 0.9, "f1_weighted": 0.9,
              "mean_auc": 0.95, "confusion_matrix": [[1]], "class_names": ["a"]}
    for name, means in (("good", {"gradcam": 0.5, "hirescam": 0.6, "random": 0.2, "inverted": 0.1}),
                        ("blind", {"gradcam": 0.5, "hirescam": 0.6, "random": 0.6, "inverted": 0.6})):
        run = Run.create(tmp_path / name, dataset="synthetic", arch="vgg11", input_size=32)
        run.save_report(report)
        run.save_scores("aopc", aopc_frame(means))
    summary = collect(tmp_path, ["good", "blind"], n_resamples=500)
    verdicts = summary.verdicts.set_index("run")
    assert verdicts.loc["good", "verdict"] == "HiResCAM" and verdicts.loc["good", "discriminates"] == "yes"
    assert verdicts.loc["blind", "favours"] == "HiResCAM" and verdicts.loc["blind", "verdict"] == "not interpretable"
    counts = verdict_counts(summary.verdicts)
    assert counts.loc["aopc", "hirescam"] == 1 and counts.loc["aopc", "not_interpretable"] == 1
    assert counts.loc["haas"].sum() == 0
    assert discriminating_runs(summary.verdicts)["aopc"] == 1
    assert set(summary.controls["run"]) == {"good", "blind"}


def test_a_verdict_that_flips_with_the_noise_seed_is_unstable(tmp_path):
    from camfaith.endpoints import noise_stability

    report = {"balanced_accuracy": 0.9, "precision_weighted": 0.9, "recall_weighted": 0.9, "f1_weighted": 0.9,
              "mean_auc": 0.95, "confusion_matrix": [[1]], "class_names": ["a"]}
    flipping = pd.concat([
        aopc_frame({"gradcam": 0.5, "hirescam": 0.6, "random": 0.1, "inverted": 0.1}).assign(noise_seed=0),
        aopc_frame({"gradcam": 0.6, "hirescam": 0.5, "random": 0.1, "inverted": 0.1}).assign(noise_seed=1)])
    table = noise_stability(flipping, "aopc", n_resamples=300)
    assert list(table["better"]) == ["second", "first"]
    assert noise_stability(flipping[flipping["noise_seed"] == 0], "aopc") is None
    run = Run.create(tmp_path / "flip", dataset="synthetic", arch="vgg11", input_size=32)
    run.save_report(report)
    run.save_scores("aopc", flipping)
    verdict = collect(tmp_path, ["flip"], n_resamples=300).verdicts.iloc[0]
    assert verdict["stable"] == "no" and verdict["verdict"] == "unstable" and verdict["noise seeds"] == 2


def test_a_verdict_holds_across_replicates_only_when_every_network_gives_it():
    from camfaith.summary import replicate_agreement

    verdicts = pd.DataFrame({"run": ["a", "a_t2", "a_t3", "a", "a_t2", "a_t3", "b"],
                             "replicate of": ["a"] * 6 + ["b"], "metric": ["AOPC"] * 3 + ["HAAS"] * 3 + ["AOPC"],
                             "verdict": ["HiResCAM"] * 3 + ["HiResCAM", "neither", "HiResCAM", "neither"]})
    table = replicate_agreement(verdicts).set_index("metric")
    assert list(table["replicate of"]) == ["a", "a"]
    assert table.loc["AOPC", "holds"] == "yes" and table.loc["HAAS", "holds"] == "no"
    assert replicate_agreement(verdicts[verdicts["run"] == "b"]) is None


def test_primary_endpoints_are_declared_and_can_be_overridden():
    from camfaith.endpoints import primary_settings

    assert primary_settings()["haas"] == {"scaling": "centered"}
    overridden = primary_settings("haas.scaling=unit, max_sensitivity.normalized=true")
    assert overridden["haas"] == {"scaling": "unit"} and overridden["max_sensitivity"] == {"normalized": True}
    with pytest.raises(ValueError, match="metric of a primary endpoint='accuracy' is not known"):
        primary_settings("accuracy.top=1")
    with pytest.raises(ValueError, match="metric.column=value"):
        primary_settings("haas=unit")


def test_the_localisation_answer_sets_relevance_mass_beside_aopc():
    from camfaith.summary import localisation_answer

    verdicts = pd.DataFrame({"run": ["ham", "ham", "shape", "shape", "covid"],
                             "metric": ["AOPC", "Relevance mass", "AOPC", "Relevance mass", "AOPC"],
                             "verdict": ["HiResCAM", "HiResCAM", "neither", "not interpretable", "HiResCAM"]})
    controls = pd.DataFrame({"run": ["ham"] * 4 + ["shape"] * 4, "metric": "Relevance mass",
                             "map": ["gradcam", "gradcam", "hirescam", "hirescam"] * 2,
                             "control": ["random", "inverted"] * 4,
                             "beats": [True, False, True, True, False, False, True, True]})
    text = localisation_answer(verdicts, controls)
    assert "measured on 2 run(s)" in text and "for Grad-CAM on 0 and for HiResCAM on 2" in text
    assert "favours HiResCAM on ham" in text and "is not interpretable on shape" in text
    assert "same map as AOPC on ham:" in text
    assert "No run" in localisation_answer(verdicts[verdicts["metric"] == "AOPC"], controls)
    assert "On no run" in localisation_answer(verdicts.drop(index=0), controls.iloc[:0])


def test_the_pooled_estimate_counts_the_replicates_of_one_network_once():
    from camfaith.stats import interval_standard_error, pooled_effect
    from camfaith.summary import forest_table

    def row(run, of, difference, low, high):
        return {"run": run, "replicate of": of, "metric": "AOPC", "HiResCAM - Grad-CAM": difference,
                "low": low, "high": high}

    single = [row("a", "a", 0.10, 0.05, 0.15), row("b", "b", 0.30, 0.20, 0.40)]
    replicated = single + [row("a_t2", "a", 0.12, 0.06, 0.18), row("a_t3", "a", 0.08, 0.02, 0.14)]
    pooled = forest_table(pd.DataFrame(replicated)).query("source == 'pooled'").iloc[0]
    errors = interval_standard_error([0.05, 0.06, 0.02], [0.15, 0.18, 0.14])
    expected = pooled_effect([0.10, 0.30], [errors.mean(), interval_standard_error(0.20, 0.40)])
    assert pooled["difference"] == pytest.approx(expected["mean"])
    assert (pooled["low"], pooled["high"]) == pytest.approx((expected["low"], expected["high"]))
    assert len(forest_table(pd.DataFrame(replicated)).query("source == 'ours'")) == 4  # every replicate is drawn
