"""Notebook helpers: parameter parsing and validation, run folders, reference tables, publishing."""

import pytest
import torch

from camfaith.pipeline import _fill_title, _parameter, publish
from camfaith.study import (
    check_parameters,
    load_trained,
    parse_list,
    parse_options,
    reference_table,
    sample_indices,
    save_model_spec,
)


def test_list_and_option_parameters():
    assert parse_list("4, 8,14", int) == [4, 8, 14]
    assert parse_list(0.5) == [0.5]
    with pytest.raises(ValueError, match="comma-separated list of int"):
        parse_list("4,eight", int)
    assert parse_options("n_train=600, variant=colour") == {"n_train": 600, "variant": "colour"}
    assert parse_options("") == {}
    with pytest.raises(ValueError, match="name=value"):
        parse_options("n_train")


def test_parameter_checks_name_the_choices():
    check_parameters("synthetic", "vgg11", n_images=3)
    with pytest.raises(ValueError, match="choose one of: crc"):
        check_parameters("mnist", "vgg11")
    with pytest.raises(ValueError, match="n_images must be a positive integer"):
        check_parameters("synthetic", "vgg11", n_images=True)


def test_trained_model_is_rebuilt_from_its_folder(tmp_path):
    from camfaith import build_model
    from camfaith.io import save_torch

    spec = dict(arch="vgg11", num_classes=3, head="flatten", weights=None, input_size=32, variant="intact",
                small_input=True, stages=2)
    torch.manual_seed(0)
    model, _ = build_model(**spec)
    save_model_spec(tmp_path, **spec)
    save_torch({"model": model.state_dict()}, tmp_path / "best.pt")
    rebuilt, target, loaded = load_trained(tmp_path, "cpu")
    assert loaded == spec
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(rebuilt(x), model(x))
    with pytest.raises(FileNotFoundError, match="02_train"):
        load_trained(tmp_path / "missing")


def test_test_sample_is_seeded():
    from camfaith.data.synthetic import synthetic

    splits = synthetic(input_size=16, n_train=8, n_val=4, n_test=20, seed=0)
    assert torch.equal(sample_indices(splits, 5, seed=1), sample_indices(splits, 5, seed=1))
    assert len(sample_indices(splits, 50, seed=1)) == 20


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
