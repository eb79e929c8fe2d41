"""The manifest's group column, BreakHis grouped by patient case, and HAM10000 lesion masks (temporary trees)."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from camfaith.data import load_dataset
from camfaith.data.base import read_manifest
from camfaith.data.breakhis import BREAKHIS_FRACTIONS, breakhis, breakhis_case
from camfaith.data.masks import MaskedImageFileDataset, MaskError, load_mask
from camfaith.data.medical import HAM10000_CLASSES, covid19, ham10000
from camfaith.data.samples import ImageFileDataset
from camfaith.data.splits import grouped_stratified_assignment
from camfaith.data.transforms import image_transform
from camfaith.metrics import relevance_mass

SIZE = 16

# The 82 slide folders of the full BreakHis v1 release (as /work/shared/data/breakhis/SLIDES.tsv lists them):
# 70 case numbers, 10 of them in several folders, 14-21998 and 14-13412 under two tumour types.
BREAKHIS_SLIDES = {
    ("benign", "adenosis", "A"): "14-22549AB 14-22549CD 14-22549G 14-29960CD",
    ("benign", "fibroadenoma", "F"): "14-14134 14-21998EF 14-23222AB 14-9133 14-14134E 14-23060AB 14-25197 "
                                     "14-21998CD 14-23060CD 14-29960AB",
    ("benign", "phyllodes_tumor", "PT"): "14-21998AB 14-22704 14-29315EF",
    ("benign", "tubular_adenoma", "TA"): "14-13200 14-16184 14-19854C 14-3411F 14-15275 14-16184CD 14-21978AB",
    ("malignant", "ductal_carcinoma", "DC"): "14-10926 14-15572 14-17901 14-4364 14-11031 14-15696 14-17915 "
                                             "14-4372 14-11520 14-15792 14-18650 14-5287 14-11951 14-16188 14-20629 "
                                             "14-5694 14-12312 14-16336 14-20636 14-5695 14-13412 14-16448 14-2523 "
                                             "14-6241 14-13993 14-16601 14-2773 14-8168 14-14015 14-16716 14-2980 "
                                             "14-9461 14-14926 14-16875 14-2985 14-14946 14-17614 14-3909",
    ("malignant", "lobular_carcinoma", "LC"): "14-12204 14-15570 14-16196 14-13412 14-15570C",
    ("malignant", "mucinous_carcinoma", "MC"): "14-10147 14-13418DE 14-18842D 14-12773 14-16456 14-19979 14-13413 "
                                               "14-18842 14-19979C",
    ("malignant", "papillary_carcinoma", "PC"): "14-12465 14-15704 14-9146 14-15687B 14-19440 15-190EF",
}


def breakhis_folders() -> list[tuple[str, str, str]]:
    """(class, tumour type, slide folder) of the full release."""
    return [(kind, tumour, f"SOB_{kind[0].upper()}_{code}_{slide}")
            for (kind, tumour, code), slides in BREAKHIS_SLIDES.items() for slide in slides.split()]


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory):
    """An empty copy of the full release: one tiny PNG per slide folder and magnification."""
    root = tmp_path_factory.mktemp("breakhis_release")
    breast = root / "breakhis" / "BreaKHis_v1" / "histology_slides" / "breast"
    for number, (kind, tumour, folder) in enumerate(breakhis_folders()):
        for magnification in ("40X", "100X", "200X", "400X"):
            path = breast / kind / "SOB" / tumour / folder / magnification / f"{folder}-{magnification}-001.png"
            path.parent.mkdir(parents=True)
            Image.fromarray(np.full((4, 6, 3), number, np.uint8)).save(path)
    return root


def test_the_release_has_82_folders_of_70_cases():
    cases = pd.Series([breakhis_case(folder) for _, _, folder in breakhis_folders()])
    assert len(cases) == 82 and cases.nunique() == 70 and (cases.value_counts() > 1).sum() == 10


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_breakhis_keeps_every_case_in_one_split(release_tree, seed):
    manifest = breakhis(release_tree, input_size=SIZE, seed=seed).manifest
    folder = manifest["id"].str.extract(r"/(SOB_[BM]_[A-Z]+_[^/]+)/")[0]
    assert len(manifest) == 82 * 4 and (manifest["group"] == folder.map(breakhis_case)).all()
    assert (manifest.groupby("group")["split"].nunique() == 1).all()
    # The suffix variants and the cases filed under two tumour types are among them.
    for case, folders in (("14-22549", 3), ("14-21998", 3), ("14-13412", 2), ("15-190", 1)):
        rows = manifest[manifest["group"] == case]
        assert folder[rows.index].nunique() == folders and rows["split"].nunique() == 1


def test_grouping_by_folder_would_split_cases(release_tree):
    """The reason for case groups: the folder-level grouping of the earlier loader splits cases across splits."""
    manifest = breakhis(release_tree, input_size=SIZE, seed=0).manifest.sort_values("id", kind="stable")
    slide = manifest["id"].str.extract(r"/SOB_[BM]_[A-Z]+_([^/]+)/")[0]
    split_cases = []
    for seed in range(4):
        by_folder = pd.Series(grouped_stratified_assignment(manifest["label"], slide, BREAKHIS_FRACTIONS, seed))
        split_cases.append(int((by_folder.groupby(manifest["group"].to_numpy()).nunique() > 1).sum()))
    assert max(split_cases) > 0, split_cases


def test_breakhis_case_split_follows_the_targets(release_tree):
    manifest = breakhis(release_tree, input_size=SIZE, seed=0).manifest
    for label, target in BREAKHIS_FRACTIONS.items():
        shares = manifest[manifest["label"] == label]["split"].value_counts(normalize=True)
        assert np.allclose(shares[["train", "val", "test"]], target, atol=0.08), (label, shares.to_dict())


def _gray_tree(root, count=6):
    base = root / "covid19_radiography" / "COVID-19_Radiography_Dataset"
    for label, name in enumerate(["COVID", "Normal"]):
        for index in range(count):
            path = base / name / "images" / f"{name}-{index + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * label + index, np.uint8)).save(path)
    return base


def test_data_sets_without_groups_have_empty_groups(tmp_path):
    _gray_tree(tmp_path)
    files = covid19(tmp_path, input_size=SIZE, allow_small=True)
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, **{f"{split}_{kind}": (rng.integers(0, 256, (6, 5, 5, 3), dtype=np.uint8) if kind == "images"
                                         else np.arange(6).reshape(-1, 1) % 3)
                     for split in ("train", "val", "test") for kind in ("images", "labels")})
    arrays = load_dataset("medmnist", input_size=SIZE, path=npz)
    for splits in (files, arrays):
        assert list(splits.manifest.columns) == ["id", "split", "label", "group"]
        assert set(splits.manifest["group"]) == {""}


def test_skipped_images_drop_their_group_too(tmp_path):
    base = _gray_tree(tmp_path)
    (base / "Normal" / "images" / "Normal-2.png").write_bytes(b"broken")
    dataset = ImageFileDataset(sorted(base.glob("*/images/*.png")), [0] * 12, [f"id{i}" for i in range(12)],
                               image_transform(SIZE), skip_corrupt=True, groups=[f"g{i}" for i in range(12)])
    assert dataset.skipped_ids == ("id7",) and dataset.groups == [f"g{i}" for i in range(12) if i != 7]


def test_read_manifest_keeps_groups_as_strings(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "val", "test"], "label": [0, 1, 0],
                          "group": ["", "14-22549", "HAM_0000001"]})
    path = tmp_path / "manifest.csv"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_manifest(path), frame)
    frame.drop(columns="group").to_csv(path, index=False)
    assert read_manifest(path)["group"].tolist() == ["", "", ""]


# HAM10000 lesion masks. Images are 12x9 px with a bright off-centre 5x4 box; masks are the box at 3x scale
# (36x27 px), like the staged 200x150 images whose masks are 600x450.
IMAGE_SIZE, SCALE = (12, 9), 3
BOX = (1, 1, 6, 5)  # left, top, right, bottom, in image pixels


def _iou(first, second):
    return float((first & second).sum() / (first | second).sum())


def _box_mask(scale, box=BOX, size=IMAGE_SIZE):
    mask = np.zeros((size[1] * scale, size[0] * scale), np.uint8)
    left, top, right, bottom = (value * scale for value in box)
    mask[top:bottom, left:right] = 255
    return mask


def _ham_masks_tree(root, mask_folder="HAM10000_segmentations_lesion_tschandl", with_mask=lambda index: index % 2):
    folder = root / "ham10000"
    rows, index = [], 0
    for dx in HAM10000_CLASSES:
        for lesion in range(6):
            image_id = f"ISIC_{24000 + index:07d}"
            rows.append({"lesion_id": f"HAM_{dx}{lesion}", "image_id": image_id, "dx": dx})
            path = folder / "images" / f"{image_id}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.where(_box_mask(1)[..., None] > 0, 230, 20).astype(np.uint8).repeat(3, axis=2)
            Image.fromarray(pixels).save(path)
            if with_mask(index):
                (folder / mask_folder).mkdir(exist_ok=True)
                Image.fromarray(_box_mask(SCALE)).save(folder / mask_folder / f"{image_id}_segmentation.png")
            index += 1
    pd.DataFrame(rows).to_csv(folder / "HAM10000_metadata.csv", index=False)
    return folder


def test_masks_follow_the_image_and_only_some_images_have_one(tmp_path):
    _ham_masks_tree(tmp_path)
    splits = ham10000(tmp_path, input_size=SIZE, seed=0)
    assert not isinstance(splits.train, MaskedImageFileDataset)  # augmented: a mask could not follow
    test = splits.test
    assert isinstance(test, MaskedImageFileDataset) and isinstance(splits.val, MaskedImageFileDataset)
    expected = np.asarray([int(sample_id[-5:]) % 2 == 1 for sample_id in test.ids])
    assert np.array_equal(test.has_mask, expected) and np.array_equal(test.mask_indices, np.flatnonzero(expected))
    assert 0 < len(test.mask_indices) < len(test)
    assert test.mask(int(np.flatnonzero(~expected)[0])) is None
    masks = test.masks_at(test.mask_indices)
    assert masks.shape == (len(test.mask_indices), SIZE, SIZE) and masks.dtype == torch.bool
    bright = torch.stack([test[int(index)][0].mean(0) > 0 for index in test.mask_indices])
    assert _iou(masks, bright) > 0.9  # the mask lies on the bright box, not beside it
    assert _iou(masks.flip(-1), bright) < 0.5 and _iou(masks.flip(-2), bright) < 0.5
    assert torch.allclose(relevance_mass(masks.float(), masks), torch.ones(len(masks)))
    with pytest.raises(ValueError, match="no mask.*mask_indices"):
        test.masks_at([int(np.flatnonzero(~expected)[0])])


def test_masks_on_the_training_split_without_augmentation_and_folder_choice(tmp_path):
    _ham_masks_tree(tmp_path, mask_folder="masks_subset", with_mask=lambda index: True)
    splits = ham10000(tmp_path, input_size=SIZE, augment=False)
    assert all(getattr(splits, name).has_mask.all() for name in ("train", "val", "test"))
    none = ham10000(tmp_path, input_size=SIZE, augment=False, mask_folders=())
    assert not none.test.has_mask.any() and none.test.mask(0) is None
    pd.testing.assert_frame_equal(none.manifest, splits.manifest)


def test_bad_masks_name_their_file(tmp_path):
    folder = _ham_masks_tree(tmp_path)
    test = ham10000(tmp_path, input_size=SIZE, seed=0).test
    first, second = (int(index) for index in test.mask_indices[:2])
    broken = folder / "HAM10000_segmentations_lesion_tschandl" / f"{test.ids[first]}_segmentation.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(MaskError, match=f"cannot read mask file.*{broken.name}"):
        test.mask(first)
    portrait = folder / "HAM10000_segmentations_lesion_tschandl" / f"{test.ids[second]}_segmentation.png"
    Image.fromarray(_box_mask(SCALE).T.copy()).save(portrait)
    with pytest.raises(MaskError, match=f"{portrait.name}' is 27x36 px but its image .* is 12x9 px"):
        test.mask(second)


def test_load_mask_refuses_random_transforms(tmp_path):
    image, mask = tmp_path / "image.png", tmp_path / "mask.png"
    Image.fromarray(_box_mask(1)).save(image)
    Image.fromarray(_box_mask(1)).save(mask)
    assert load_mask(mask, image, image_transform(SIZE)).shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="RandomHorizontalFlip.*augmented splits carry no masks"):
        load_mask(mask, image, image_transform(SIZE, augment=True))
