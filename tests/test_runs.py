"""The run folder: settings written once and read back, the trained network rebuilt, the seeded test
sample, per-image scores and reports, and the publishing of executed notebooks."""

import json
import os
import stat

import pandas as pd
import pytest
import torch

from camfaith.evaluate import classification_report
from camfaith.io import save_torch
from camfaith.pipeline import _fill_title, _parameter, publish
from camfaith.runs import Run
from camfaith.summary import reference_table

SETTINGS = dict(dataset="synthetic", arch="vgg11", input_size=16, seed=1, dataset_options="n_train=8,n_val=4,n_test=20")
SPEC = dict(arch="vgg11", num_classes=3, head="flatten", input_size=16, variant="intact", small_input=True,
            stages=2)


def test_a_run_is_reopened_from_its_folder_alone(tmp_path):
    created = Run.create(tmp_path / "run", **SETTINGS, model=SPEC)
    reopened = Run.open(tmp_path / "run")
    assert reopened == created and reopened.name == "run"
    assert json.loads((tmp_path / "run/run.json").read_text())["model"] == SPEC
    assert set(reopened.files) >= {"run", "manifest", "report", "confusion", "best", "last", "history", "aopc"}
    with pytest.raises(FileNotFoundError, match="02_train"):
        Run.open(tmp_path / "missing")


@pytest.mark.parametrize("change, message", [
    ({"dataset": "mnist"}, "dataset='mnist' is not known"),
    ({"arch": "alexnet"}, "arch='alexnet' is not known"),
    ({"input_size": 0}, "input_size must be a positive integer"),
    ({"dataset_options": "n_train"}, "name=value"),
])
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        Run.create(tmp_path / "run", **(SETTINGS | change), model=SPEC)
    assert not (tmp_path / "run").exists()


def test_the_trained_network_is_rebuilt_in_eval_mode(tmp_path):
    run = Run.create(tmp_path, **SETTINGS, model=SPEC)
    torch.manual_seed(0)
    model, _ = run.build_model()
    save_torch({"model": model.state_dict()}, tmp_path / "best.pt")
    rebuilt, target = run.trained_model("cpu")
    x = torch.randn(2, 3, 16, 16)
    assert not rebuilt.training and torch.equal(rebuilt(x), model.eval()(x))
    assert target in dict(rebuilt.named_modules()).values()


def test_test_sample_is_seeded_by_the_run():
    run = Run(folder="unused", **SETTINGS)
    splits = run.load_splits()
    assert torch.equal(run.test_indices(splits, 5), run.test_indices(splits, 5))
    assert len(run.test_indices(splits, 50)) == 20
    other = Run(folder="unused", **(SETTINGS | {"seed": 2}))
    assert not torch.equal(other.test_indices(splits, 5), run.test_indices(splits, 5))
    images, labels, ids = run.test_images(splits, 3, "cpu")
    assert images.shape == (3, 3, 16, 16) and len(labels) == len(ids) == 3


def test_scores_and_reports_round_trip_with_the_users_permissions(tmp_path):
    run = Run.create(tmp_path, **SETTINGS, model=SPEC)
    frame = pd.DataFrame({"id": ["a", "b"], "method": ["gradcam", "hirescam"], "aopc": [0.25, 0.5]})
    assert not run.has_scores("aopc")
    run.save_scores("aopc", frame)
    pd.testing.assert_frame_equal(run.scores("aopc"), frame)
    with pytest.raises(ValueError, match="metric='accuracy' is not known"):
        run.save_scores("accuracy", frame)
    with pytest.raises(FileNotFoundError, match="haas chapter"):
        run.scores("haas")
    report = classification_report(torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]]), torch.tensor([0, 0, 1]),
                                   ["x", "y"])
    run.save_report(report)
    assert run.report()["balanced_accuracy"] == pytest.approx(report["balanced_accuracy"])
    confusion = pd.read_csv(run.files["confusion"])
    assert list(confusion.columns) == ["true", "x", "y"]
    assert confusion[["x", "y"]].to_numpy().tolist() == [[1, 1], [0, 1]]
    run.save_report(classification_report(torch.tensor([[0.9, 0.1]]), torch.tensor([0]), ["x", "y"]))
    assert run.report()["mean_auc"] is None  # NaN is written as null: valid JSON
    with pytest.raises(ValueError, match="not a classification report"):
        run.save_report({"balanced_accuracy": 1.0})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(run.files["aopc"]).st_mode) == 0o666 & ~mask


def test_reference_tables_are_packaged():
    table = reference_table("table10_summary")
    assert len(table) == 8 and {"dataset", "arch", "haas_hirescam"} <= set(table.columns)
    with pytest.raises(ValueError, match="table5_aopc"):
        reference_table("table99")


def test_titles_are_filled_and_publishing_replaces_the_folder(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# AOPC: {dataset} / {arch}")])
    _fill_title(notebook, {"dataset": "covid19", "arch": "vgg11"})
    assert notebook.cells[0].source == "# AOPC: covid19 / vgg11"
    assert _parameter("regions=4,8") == ("regions", "4,8") and _parameter("seed=3") == ("seed", 3)
    executed, book = tmp_path / "executed", tmp_path / "book"
    executed.mkdir()
    (executed / "a.ipynb").write_text("{}")
    (executed / ".a.ipynb.x1y2.ipynb").write_text("{}")  # left by a killed run
    book.mkdir()
    (book / "stale.ipynb").write_text("{}")
    publish(executed, book)
    assert sorted(p.name for p in book.iterdir()) == ["a.ipynb"]
    with pytest.raises(FileNotFoundError, match="make results"):
        publish(tmp_path / "nothing", book)
