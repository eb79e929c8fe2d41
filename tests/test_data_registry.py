import numpy as np
import pytest

from camfaith.data import DATASETS, load_dataset
from camfaith.data.base import DatasetSplits
from camfaith.data.check import _CHECKS, GENERATED


def test_every_data_set_of_the_registry_can_be_checked_before_a_run():
    """The pipeline checks a run's data before any notebook: every registered data set is read from disk and
    has a check of its layout, or is made on the fly."""
    assert set(DATASETS) == set(_CHECKS) | set(GENERATED) and not set(_CHECKS) & set(GENERATED)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*crc, covid19, ham10000"):
        load_dataset("mnist")


def test_registry_passes_the_common_arguments_and_options(tmp_path):
    arrays = {}
    for split, count in (("train", 9), ("val", 3), ("test", 3)):
        arrays[f"{split}_images"] = np.full((count, 5, 5, 3), 7, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 3).reshape(-1, 1)
    np.savez(tmp_path / "tiny.npz", **arrays)
    splits = load_dataset("MedMNIST", path=tmp_path / "tiny.npz", input_size=12, seed=3, augment=False)
    assert isinstance(splits, DatasetSplits)
    assert splits.train[0][0].shape == (3, 12, 12)
    assert splits.num_classes == 3


def test_synthetic_is_loaded_through_the_registry():
    pytest.importorskip("camfaith.data.synthetic")
    splits = load_dataset("synthetic", input_size=32, seed=0, augment=False)
    image, label, sample_id = splits.train[0]
    assert image.shape == (3, 32, 32) and isinstance(label, int) and isinstance(sample_id, str)
    assert list(splits.manifest.columns[:3]) == ["id", "split", "label"]
