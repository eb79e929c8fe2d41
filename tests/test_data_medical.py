"""The four medical loaders on tiny trees in their official layouts, built in a temporary folder."""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from camfaith.data.base import read_manifest
from camfaith.data.medical import (
    BREAKHIS_CLASSES,
    CRC_CLASSES,
    HAM10000_CLASSES,
    breakhis,
    breakhis_case,
    breakhis_slide,
    covid19,
    crc,
    ham10000,
)
from camfaith.data.transforms import CorruptImageError

SIZE = 16


def _image(path, seed, mode="RGB", size=(10, 8), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path, format=fmt)
    return path


def _check_items(splits, classes):
    assert splits.classes == list(classes)
    for dataset in (splits.train, splits.val, splits.test):
        if len(dataset):
            image, label, sample_id = dataset[0]
            assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
            assert -1 <= image.min() and image.max() <= 1
            assert isinstance(label, int) and 0 <= label < len(classes)
            assert isinstance(sample_id, str)
    manifest = splits.manifest
    assert list(manifest.columns) == ["id", "split", "label", "group"]
    assert manifest["id"].is_unique
    for name, dataset in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        rows = manifest[manifest["split"] == name]
        assert rows["id"].tolist() == dataset.ids
        assert rows["label"].tolist() == dataset.labels.tolist()
        assert rows["group"].tolist() == dataset.groups


@pytest.fixture
def crc_tree(tmp_path):
    folder = tmp_path / "crc"
    for label, name in enumerate(CRC_CLASSES):
        for index in range(5):
            _image(folder / "NCT-CRC-HE-100K" / name / f"{name}-TILE{index}.tif", 10 * label + index)
        _image(folder / "CRC-VAL-HE-7K" / name / f"{name}-TCGA-{label}.tif", 100 + label)
    return tmp_path


def test_crc_official_layout(crc_tree):
    splits = crc(crc_tree, input_size=SIZE, seed=0)
    _check_items(splits, CRC_CLASSES)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36, 9, 9)
    assert splits.test.ids[0] == "CRC-VAL-HE-7K/ADI/ADI-TCGA-0.tif"
    assert all(sample_id.startswith("NCT-CRC-HE-100K/") for sample_id in splits.train.ids + splits.val.ids)
    # The dataset folder itself is accepted as root, and gives the same split.
    same = crc(crc_tree / "crc", input_size=SIZE, seed=0)
    pd.testing.assert_frame_equal(same.manifest, splits.manifest)


def test_crc_without_test_folder_needs_allow_small(crc_tree):
    shutil.rmtree(crc_tree / "crc" / "CRC-VAL-HE-7K")
    with pytest.raises(FileNotFoundError, match="CRC-VAL-HE-7K.*allow_small=True"):
        crc(crc_tree, input_size=SIZE)
    splits = crc(crc_tree, input_size=SIZE, allow_small=True)
    assert len(splits.test) == 0 and len(splits.train) == 36


def test_crc_tiny_sample_needs_allow_small(tmp_path):
    for name in CRC_CLASSES:
        _image(tmp_path / "crc" / "NCT-CRC-HE-100K" / name / f"{name}-ONLY.tif", 0)
        _image(tmp_path / "crc" / "CRC-VAL-HE-7K" / name / f"{name}-TCGA.tif", 1)
    with pytest.raises(ValueError, match="val split has no images of ADI.*allow_small=True"):
        crc(tmp_path, input_size=SIZE)
    splits = crc(tmp_path, input_size=SIZE, allow_small=True)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 0, 9)


def test_crc_missing_class_folder_is_named(crc_tree):
    shutil.rmtree(crc_tree / "crc" / "NCT-CRC-HE-100K" / "MUS")
    with pytest.raises(FileNotFoundError, match="MUS"):
        crc(crc_tree, input_size=SIZE)


def test_missing_dataset_names_the_layout_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        crc(tmp_path, input_size=SIZE)
    message = str(caught.value)
    assert "NCT-CRC-HE-100K/<CLASS>/*.tif" in message and "zenodo.org/records/1214456" in message


def test_data_root_comes_from_the_environment(crc_tree, monkeypatch):
    monkeypatch.setenv("CAMFAITH_DATA", str(crc_tree))
    assert len(crc(input_size=SIZE).train) == 36


@pytest.fixture
def covid_tree(tmp_path):
    base = tmp_path / "covid19_radiography" / "COVID-19_Radiography_Dataset"
    for label, name in enumerate(["COVID", "Normal", "Viral Pneumonia"]):
        for index in range(10):
            _image(base / name / "images" / f"{name}-{index + 1}.png", 20 * label + index, mode="L")
        _image(base / name / "masks" / f"{name}-1.png", 0, mode="L")
    (base / "README.md.txt").write_text("readme")
    return tmp_path


def test_covid19_present_classes_and_stratified_split(covid_tree):
    splits = covid19(covid_tree, input_size=SIZE, seed=0)
    _check_items(splits, ["COVID", "Normal", "Viral Pneumonia"])
    counts = splits.manifest.groupby(["split", "label"]).size().unstack()
    assert counts.loc["train"].tolist() == [8, 8, 8]
    assert counts.loc["val"].tolist() == [1, 1, 1] and counts.loc["test"].tolist() == [1, 1, 1]
    assert not splits.manifest["id"].str.contains("/masks/").any()
    image, _, _ = splits.val[0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # gray X-ray, 3 channels


def test_splits_are_deterministic_for_a_seed_and_differ_between_seeds(covid_tree):
    first = covid19(covid_tree, input_size=SIZE, seed=0).manifest
    pd.testing.assert_frame_equal(first, covid19(covid_tree, input_size=SIZE, seed=0).manifest)
    assert not first.equals(covid19(covid_tree, input_size=SIZE, seed=1).manifest)


def test_covid19_class_subset_and_errors(covid_tree):
    splits = covid19(covid_tree, input_size=SIZE, classes=["Viral Pneumonia", "COVID"])
    assert splits.classes == ["COVID", "Viral Pneumonia"]
    with pytest.raises(ValueError, match="Lung_Opacity"):
        covid19(covid_tree, input_size=SIZE, classes=["COVID", "Lung_Opacity"])
    with pytest.raises(FileNotFoundError, match="at least two"):
        covid19(covid_tree, input_size=SIZE, classes=["COVID"])


def test_augmentation_on_the_training_split_only(covid_tree):
    splits = covid19(covid_tree, input_size=SIZE, augment=True)
    random_steps = {"RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation"}
    names = {split: {type(step).__name__ for step in getattr(splits, split).transform.transforms}
             for split in ("train", "val", "test")}
    assert random_steps <= names["train"]
    assert not random_steps & (names["val"] | names["test"])
    plain = covid19(covid_tree, input_size=SIZE, augment=False)
    assert torch.equal(plain.train[0][0], plain.train[0][0])


def test_corrupt_image_raises_with_its_name_or_is_skipped(covid_tree, monkeypatch):
    monkeypatch.delenv("CAMFAITH_SKIP_CORRUPT", raising=False)
    broken = covid_tree / "covid19_radiography" / "COVID-19_Radiography_Dataset" / "Normal" / "images" / "Normal-3.png"
    broken.write_bytes(b"not an image")
    splits = covid19(covid_tree, input_size=SIZE)
    split = splits.manifest.set_index("id").loc[
        "COVID-19_Radiography_Dataset/Normal/images/Normal-3.png", "split"]
    dataset = getattr(splits, split)
    position = dataset.ids.index("COVID-19_Radiography_Dataset/Normal/images/Normal-3.png")
    with pytest.raises(CorruptImageError, match="Normal-3.png"):
        dataset[position]

    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        skipping = covid19(covid_tree, input_size=SIZE, skip_corrupt=True)
    kept = getattr(skipping, split)
    assert kept.num_skipped == 1 and kept.skipped_ids == ("COVID-19_Radiography_Dataset/Normal/images/Normal-3.png",)
    assert len(skipping.manifest) == 29 and "Normal-3.png" not in " ".join(skipping.manifest["id"])
    for index in range(len(kept)):
        kept[index]

    monkeypatch.setenv("CAMFAITH_SKIP_CORRUPT", "1")
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(covid19(covid_tree, input_size=SIZE).manifest) == 29


def _ham_tree(root, lesions_per_class=5, drop=()):
    folder = root / "ham10000"
    rows = []
    image_number = 24000
    for label, dx in enumerate(HAM10000_CLASSES):
        for lesion in range(lesions_per_class):
            for _ in range(1 + lesion % 2):
                image_id = f"ISIC_{image_number:07d}"
                rows.append({"lesion_id": f"HAM_{label}{lesion:05d}", "image_id": image_id, "dx": dx,
                             "dx_type": "histo", "age": 50.0, "sex": "male", "localization": "back"})
                part = "HAM10000_images_part_1" if image_number % 2 else "HAM10000_images_part_2"
                if image_id not in drop:
                    _image(folder / part / f"{image_id}.jpg", image_number, size=(12, 9))
                image_number += 1
    pd.DataFrame(rows).to_csv(folder / "HAM10000_metadata.csv", index=False)
    return pd.DataFrame(rows)


def test_ham10000_split_is_grouped_by_lesion_and_stratified(tmp_path):
    metadata = _ham_tree(tmp_path)
    splits = ham10000(tmp_path, input_size=SIZE, seed=0)
    _check_items(splits, HAM10000_CLASSES)
    merged = splits.manifest.merge(metadata, left_on="id", right_on="image_id", validate="one_to_one")
    assert len(merged) == len(metadata)
    assert (merged.groupby("lesion_id")["split"].nunique() == 1).all()
    assert (merged["group"] == merged["lesion_id"]).all()
    assert (merged["label"] == merged["dx"].map(HAM10000_CLASSES.index)).all()
    images = merged.groupby(["dx", "split"]).size().unstack(fill_value=0)
    assert (images[["train", "val", "test"]] > 0).all().all()
    assert (images["train"] >= images["val"] + images["test"]).all()


def test_ham10000_images_in_one_images_folder(tmp_path):
    metadata = _ham_tree(tmp_path)
    folder = tmp_path / "ham10000"
    (folder / "images").mkdir()
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        for path in (folder / part).iterdir():
            path.rename(folder / "images" / path.name)
        (folder / part).rmdir()
    assert len(ham10000(folder, input_size=SIZE).manifest) == len(metadata)


def test_ham10000_rows_without_image_raise_or_are_dropped(tmp_path):
    metadata = _ham_tree(tmp_path, drop={"ISIC_0024003"})
    with pytest.raises(FileNotFoundError, match="1 of 49 metadata rows have no image.*ISIC_0024003"):
        ham10000(tmp_path, input_size=SIZE)
    with pytest.warns(UserWarning, match="1 of 49 metadata rows"):
        splits = ham10000(tmp_path, input_size=SIZE, allow_missing=True)
    assert len(splits.manifest) == len(metadata) - 1


def test_ham10000_bad_metadata_is_explained(tmp_path):
    _ham_tree(tmp_path)
    csv = tmp_path / "ham10000" / "HAM10000_metadata.csv"
    frame = pd.read_csv(csv)
    frame.drop(columns="lesion_id").to_csv(csv, index=False)
    with pytest.raises(ValueError, match="lacks the columns \\['lesion_id'\\]"):
        ham10000(tmp_path, input_size=SIZE)
    frame.assign(dx=frame["dx"].replace("nv", "naevus")).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="unknown dx values \\['naevus'\\]"):
        ham10000(tmp_path, input_size=SIZE)


def _breakhis_tree(root):
    breast = root / "breakhis" / "BreaKHis_v1" / "histology_slides" / "breast"
    slides = {
        "benign": [("adenosis", "A", "14-22549AB"), ("adenosis", "A", "14-29960CD"), ("fibroadenoma", "F", "14-9133"),
                   ("fibroadenoma", "F", "14-25197"), ("tubular_adenoma", "TA", "14-3411F")],
        "malignant": [("ductal_carcinoma", "DC", "14-2523"), ("ductal_carcinoma", "DC", "14-13412"),
                      ("lobular_carcinoma", "LC", "14-13412"), ("mucinous_carcinoma", "MC", "14-10147"),
                      ("papillary_carcinoma", "PC", "14-9146")],
    }
    for kind, entries in slides.items():
        letter = kind[0].upper()
        for number, (tumour, code, slide) in enumerate(entries):
            for magnification in ("40X", "100X"):
                name = f"SOB_{letter}_{code}-{slide}-{magnification[:-1]}-001.png"
                folder = breast / kind / "SOB" / tumour / f"SOB_{letter}_{code}_{slide}" / magnification
                _image(folder / name, number, size=(14, 9))
    return breast


def test_breakhis_split_groups_slides_across_magnifications_and_tumour_types(tmp_path):
    _breakhis_tree(tmp_path)
    splits = breakhis(tmp_path, input_size=SIZE, seed=0)
    _check_items(splits, BREAKHIS_CLASSES)
    manifest = splits.manifest.assign(slide=splits.manifest["id"].str.extract(r"SOB_[BM]_[A-Z]+_([^/]+)/")[0])
    assert len(manifest) == 20 and manifest["slide"].notna().all()
    assert (manifest.groupby("slide")["split"].nunique() == 1).all()
    # Slide 14-13412 appears under two tumour types; its four images stay together.
    assert (manifest["slide"] == "14-13412").sum() == 4
    assert (manifest["group"] == manifest["slide"].str.extract(r"^(\d+-\d+)")[0]).all()
    assert set(manifest["split"]) == {"train", "val", "test"}


def test_breakhis_magnification_filter_and_naming_errors(tmp_path):
    breast = _breakhis_tree(tmp_path)
    splits = breakhis(tmp_path, input_size=SIZE, magnifications=["40X"], allow_small=True)
    assert len(splits.manifest) == 10 and splits.manifest["id"].str.contains("/40X/").all()
    with pytest.raises(ValueError, match="unknown magnifications"):
        breakhis(tmp_path, input_size=SIZE, magnifications=["50X"])
    (breast / "benign" / "SOB" / "adenosis" / "slide-without-name").mkdir()
    with pytest.raises(ValueError, match="slide-without-name.*SOB_<B\\|M>"):
        breakhis(tmp_path, input_size=SIZE)


def test_breakhis_slide_parser():
    assert breakhis_slide("SOB_M_LC_14-12204") == ("malignant", "14-12204")
    assert breakhis_slide("SOB_B_PT_14-21998AB") == ("benign", "14-21998AB")
    assert [breakhis_case(f"SOB_B_A_14-22549{suffix}") for suffix in ("AB", "CD", "G")] == ["14-22549"] * 3
    assert breakhis_case("SOB_M_DC_15-190EF") == "15-190" and breakhis_case("SOB_M_LC_14-12204") == "14-12204"
    with pytest.raises(ValueError, match="SOB_B_A_slide7.*case number"):
        breakhis_case("SOB_B_A_slide7")


def test_write_manifest_round_trip(covid_tree, tmp_path):
    splits = covid19(covid_tree, input_size=SIZE)
    path = splits.write_manifest(tmp_path / "out" / "manifest.csv")
    assert set(splits.manifest["group"]) == {""}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(read_manifest(path), splits.manifest)


def test_wrong_layouts_name_the_expected_one(tmp_path):
    flat = tmp_path / "covid19_radiography" / "COVID-19_Radiography_Dataset"
    for name in ("COVID", "Normal"):
        _image(flat / name / f"{name}-1.png", 0, mode="L")  # an old release: no images/ sub-folder
    with pytest.raises(FileNotFoundError, match=r"COVID-19_Radiography_Dataset/\{COVID,.*\}/images/\*\.png"):
        covid19(tmp_path, input_size=SIZE)

    breast = _breakhis_tree(tmp_path)
    shutil.rmtree(breast / "malignant")
    with pytest.raises(FileNotFoundError, match="malignant/SOB is missing.*BreaKHis_v1/histology_slides"):
        breakhis(tmp_path, input_size=SIZE)

    (tmp_path / "ham10000").mkdir()
    pd.DataFrame({"lesion_id": ["HAM_1"], "image_id": ["ISIC_1"], "dx": ["nv"]}).to_csv(
        tmp_path / "ham10000" / "HAM10000_metadata.csv", index=False)
    with pytest.raises(FileNotFoundError, match="HAM10000_images_part_1.*exists in"):
        ham10000(tmp_path, input_size=SIZE)
