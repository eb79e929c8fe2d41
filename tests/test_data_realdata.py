"""The loaders on the staged real data (``$CAMFAITH_DATA``); see each folder's SOURCE.md for the counts."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from camfaith.data import load_dataset
from camfaith.data.breakhis import breakhis_case
from camfaith.data.medical import CRC_CLASSES, HAM10000_CLASSES
from camfaith.metrics import relevance_mass

pytestmark = pytest.mark.realdata
SIZE = 32


def _require(path):
    """``path`` if it exists; otherwise fail under CI (``$CI`` set) and skip elsewhere."""
    if not path.exists():
        message = f"staged data missing: {path}"
        if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _decode_some(dataset, count=2):
    for index in np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).astype(int):
        image, label, sample_id = dataset[int(index)]
        assert image.shape == (3, SIZE, SIZE) and -1 <= image.min() and image.max() <= 1
        assert isinstance(label, int) and isinstance(sample_id, str)


@pytest.fixture(scope="module")
def ham(data_root):
    metadata = pd.read_csv(_require(data_root / "ham10000" / "HAM10000_metadata.csv"))
    return load_dataset("ham10000", data_root, input_size=SIZE, seed=0), metadata


def test_ham10000_no_lesion_in_two_splits(ham):
    splits, metadata = ham
    merged = splits.manifest.merge(metadata, left_on="id", right_on="image_id", validate="one_to_one")
    assert len(merged) == len(metadata) == 10015
    assert merged.groupby("lesion_id")["split"].nunique().max() == 1
    assert (merged["group"] == merged["lesion_id"]).all() and merged["group"].nunique() == 7470
    assert (merged["label"] == merged["dx"].map(HAM10000_CLASSES.index)).all()


def test_ham10000_keeps_class_proportions_and_60_20_20(ham):
    splits, _ = ham
    manifest = splits.manifest
    split_share = manifest["split"].value_counts(normalize=True)
    assert np.allclose(split_share[["train", "val", "test"]], [0.6, 0.2, 0.2], atol=0.01)
    overall = manifest["label"].value_counts(normalize=True).sort_index()
    for split in ("train", "val", "test"):
        share = manifest.loc[manifest["split"] == split, "label"].value_counts(normalize=True).sort_index()
        assert (share - overall).abs().max() < 0.02, split
        # Within each class, the split takes its share of that class's images.
        per_class = manifest.groupby("label")["split"].apply(lambda column, s=split: (column == s).mean())
        target = {"train": 0.6, "val": 0.2, "test": 0.2}[split]
        assert (per_class - target).abs().max() < 0.04, (split, per_class.to_dict())
    _decode_some(splits.train, 3)
    _decode_some(splits.test, 1)


def test_ham10000_staged_masks_lie_on_the_lesions(data_root):
    """The 1,257 staged masks (600x450) fit their 200x150 images: each lesion is darker than the skin around it."""
    _require(data_root / "ham10000" / "masks_subset")
    splits = load_dataset("ham10000", data_root, input_size=SIZE, seed=0, augment=False)
    assert sum(len(getattr(splits, name).mask_indices) for name in ("train", "val", "test")) == 1257
    test = splits.test
    assert test.mask(int(np.flatnonzero(~test.has_mask)[0])) is None
    indices = test.mask_indices[:40]
    masks = test.masks_at(indices)
    assert masks.shape == (40, SIZE, SIZE) and masks.dtype == torch.bool and masks.any((1, 2)).all()
    assert torch.allclose(relevance_mass(masks.float(), masks), torch.ones(40))
    gray = torch.stack([test[int(index)][0] for index in indices]).mean(1)

    def contrast(region):  # mean brightness outside minus inside
        return (gray * ~region).sum((1, 2)) / (~region).sum((1, 2)) - (gray * region).sum((1, 2)) / region.sum((1, 2))

    assert (contrast(masks) > 0).float().mean() >= 0.8
    for moved in (masks.flip(-1), masks.flip(-2), masks.transpose(1, 2)):
        assert (contrast(masks) > contrast(moved)).float().mean() >= 0.75


def test_breakhis_release_folders_are_split_by_case(data_root, tmp_path):
    """A tree of the 82 folders of SLIDES.tsv: no case number, whatever its suffixes, lands in two splits."""
    slides = pd.read_csv(_require(data_root / "breakhis" / "SLIDES.tsv"), sep="\t")
    breast = tmp_path / "breakhis" / "BreaKHis_v1" / "histology_slides" / "breast"
    for number, row in slides.iterrows():
        for magnification in ("40X", "100X", "200X", "400X"):
            folder = breast / row["class"] / "SOB" / row["tumour_type"] / row["slide_folder"] / magnification
            folder.mkdir(parents=True)
            Image.fromarray(np.full((4, 6, 3), number, np.uint8)).save(folder / f"{number}-{magnification}.png")
    manifest = load_dataset("breakhis", tmp_path, input_size=SIZE, seed=0).manifest
    assert len(manifest) == 328 and manifest["group"].nunique() == 70
    assert manifest.groupby("group")["split"].nunique().max() == 1
    suffixes = manifest[manifest["id"].str.contains("_14-22549")]["id"].str.extract(r"_14-22549([A-Z]+)/")[0]
    assert set(suffixes) == {"AB", "CD", "G"} and manifest.loc[suffixes.index, "split"].nunique() == 1


def test_covid19_three_classes_80_10_10(data_root):
    _require(data_root / "covid19_radiography" / "COVID-19_Radiography_Dataset")
    splits = load_dataset("covid19", data_root, input_size=SIZE, seed=0)
    assert splits.classes == ["COVID", "Normal", "Viral Pneumonia"]
    counts = splits.manifest.groupby(["split", "label"]).size().unstack()
    assert counts.loc["train"].tolist() == [240] * 3
    assert counts.loc["val"].tolist() == [30] * 3 and counts.loc["test"].tolist() == [30] * 3
    _decode_some(splits.val, 2)


def test_crc_sample_loads_through_the_official_layout(data_root):
    _require(data_root / "crc" / "NCT-CRC-HE-100K")
    with pytest.raises((FileNotFoundError, ValueError), match="CRC-VAL-HE-7K|allow_small"):
        load_dataset("crc", data_root, input_size=SIZE)
    splits = load_dataset("crc", data_root, input_size=SIZE, allow_small=True)
    assert splits.classes == list(CRC_CLASSES)
    assert sorted(splits.manifest["label"]) == list(range(9)) and len(splits.test) == 0
    assert splits.manifest["id"].str.match(r"NCT-CRC-HE-100K/[A-Z]+/[A-Z]+-[A-Z]+\.tif$").all()
    _decode_some(splits.train, 9)


def test_breakhis_sample_loads_with_slides_kept_together(data_root):
    _require(data_root / "breakhis" / "BreaKHis_v1")
    splits = load_dataset("breakhis", data_root, input_size=SIZE, allow_small=True)
    manifest = splits.manifest
    assert len(manifest) == 12 and splits.classes == ["benign", "malignant"]
    assert manifest.groupby("label").size().tolist() == [8, 4]
    fibroadenoma = manifest[manifest["id"].str.contains("SOB_B_F_14-25197/")]
    assert len(fibroadenoma) == 4 and fibroadenoma["split"].nunique() == 1
    folders = manifest["id"].str.extract(r"/(SOB_[BM]_[A-Z]+_[^/]+)/")[0]
    assert (manifest["group"] == folders.map(breakhis_case)).all()
    _decode_some(splits.train, 2)


def test_pathmnist_subset_has_all_nine_classes(data_root):
    _require(data_root / "pathmnist")
    splits = load_dataset("pathmnist", data_root, input_size=SIZE, seed=0)
    manifest = splits.manifest
    assert len(manifest) == 1000 and splits.classes == list(CRC_CLASSES)
    assert set(manifest["group"]) == {""}  # MedMNIST keeps no patient or slide ids
    assert manifest.groupby("label").size().tolist() == [106, 119, 107, 140, 91, 145, 82, 91, 119]
    assert (manifest.groupby("split")["label"].nunique() == 9).all()
    _decode_some(splits.test, 2)


def test_dermamnist_official_splits(data_root):
    _require(data_root / "dermamnist")
    splits = load_dataset("dermamnist", data_root, input_size=SIZE)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (7007, 1003, 2005)
    assert np.bincount(splits.test.labels).tolist() == [66, 103, 220, 23, 223, 1341, 29]
    _decode_some(splits.val, 2)
