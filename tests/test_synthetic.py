"""Synthetic data with ground truth: determinism, balance, masks, the colour and clutter variants, learnability."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from camfaith.data.base import DatasetSplits
from camfaith.data.synthetic import (
    FAINT_CONTRAST,
    FAINT_SHARE,
    MAX_COLOUR_CLASSES,
    SHAPES,
    SyntheticDataset,
    _distractors,
    _paint,
    class_names,
    make_synthetic,
    synthetic,
)
from camfaith.evaluate import classification_report, predict
from camfaith.train import TrainConfig, train


def _dilate(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    kernel = 2 * pixels + 1
    return nn.functional.max_pool2d(masks[:, None].float(), kernel, stride=1, padding=pixels)[:, 0] > 0


def _rgb_to_hue(rgb: torch.Tensor) -> torch.Tensor:
    """Hue in [0, 1) of (n, 3) colours, via matplotlib's reference conversion."""
    from matplotlib.colors import rgb_to_hsv

    return torch.from_numpy(rgb_to_hsv(rgb.clamp(0, 1).numpy())[:, 0])


@pytest.mark.parametrize("variant", ["shape", "colour", "clutter"])
def test_same_seed_same_data_other_seed_other_data(variant):
    first = make_synthetic(40, 32, variant, 4, seed=3)
    again = make_synthetic(40, 32, variant, 4, seed=3)
    other = make_synthetic(40, 32, variant, 4, seed=4)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("variant", ["shape", "colour", "clutter"])
def test_shapes_types_and_value_range(variant):
    images, labels, masks = make_synthetic(30, 40, variant, 3, seed=0)
    assert images.shape == (30, 3, 40, 40) and images.dtype == torch.float32
    assert labels.shape == (30,) and labels.dtype == torch.long
    assert masks.shape == (30, 40, 40) and masks.dtype == torch.bool
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.2  # not a constant image


@pytest.mark.parametrize("n, num_classes", [(10, 4), (41, 6), (7, 2)])
def test_classes_balanced(n, num_classes):
    _, labels, _ = make_synthetic(n, 16, "shape", num_classes, seed=1)
    counts = torch.bincount(labels, minlength=num_classes)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("variant", ["shape", "colour"])
def test_masks_cover_the_object(variant):
    images, _, masks = make_synthetic(60, 48, variant, 4, seed=2)
    # Every image has one object, fully inside the image.
    assert masks.flatten(1).any(1).all()
    assert not masks[:, 0].any() and not masks[:, -1].any()
    assert not masks[:, :, 0].any() and not masks[:, :, -1].any()
    # Inside the mask the image is the object's flat colour, up to the pixel noise ...
    ring = _dilate(masks, 2) & ~masks
    for image, mask, around in zip(images, masks, ring):
        inside = image[:, mask]
        colour = inside.mean(1, keepdim=True)
        assert (inside - colour).abs().mean() < 0.05
        # ... and the pixels just outside it are clearly not that colour.
        assert (image[:, around] - colour).norm(dim=0).median() > 0.25


@pytest.mark.parametrize("variant", ["shape", "clutter"])
def test_shape_classes_have_their_shapes(variant):
    images, labels, masks = make_synthetic(240, 64, variant, len(SHAPES), seed=0)
    rows, cols = masks.any(2), masks.any(1)
    box_area = rows.sum(1) * cols.sum(1)
    fill = masks.flatten(1).sum(1) / box_area
    expected = {"square": 1.0, "disc": np.pi / 4, "cross": 0.51, "triangle": 0.5, "ring": 0.61, "diamond": 0.5}
    for index, name in enumerate(SHAPES):
        assert fill[labels == index].mean() == pytest.approx(expected[name], abs=0.05), name
    # The colour carries no class signal: the mean object hue is about the same for every class.
    object_rgb = torch.stack([(image[:, mask].mean(1) + 1) / 2 for image, mask in zip(images, masks)])
    hue_angle = 2 * np.pi * _rgb_to_hue(object_rgb)
    spread = [torch.stack([hue_angle[labels == c].cos().mean(), hue_angle[labels == c].sin().mean()]).norm()
              for c in range(len(SHAPES))]
    assert max(spread) < 0.45  # a class of one colour would give 1


def test_background_carries_no_class_signal():
    images, labels, masks = make_synthetic(600, 32, "shape", 4, seed=5)
    background = (images * ~masks[:, None]).sum((2, 3)) / (~masks).sum((1, 2))[:, None]
    means = torch.stack([background[labels == c].mean(0) for c in range(4)])
    assert (means - background.mean(0)).abs().max() < 0.08


def test_colour_variant_has_identical_shape_statistics_across_classes():
    _, labels, masks = make_synthetic(800, 48, "colour", 4, seed=0)
    rows, cols = masks.any(2), masks.any(1)
    area = masks.flatten(1).sum(1).float()
    fill = area / (rows.sum(1) * cols.sum(1))
    assert fill.mean() == pytest.approx(np.pi / 4, abs=0.04)  # every object is a disc
    per_class_fill = torch.stack([fill[labels == c].mean() for c in range(4)])
    per_class_area = torch.stack([area[labels == c].mean() for c in range(4)])
    assert per_class_fill.max() - per_class_fill.min() < 0.02
    assert (per_class_area / area.mean() - 1).abs().max() < 0.08
    # The geometry is drawn independently of the labels: other class counts, same masks.
    _, _, masks_two_classes = make_synthetic(800, 48, "colour", 2, seed=0)
    assert torch.equal(masks, masks_two_classes)


@pytest.mark.parametrize("num_classes", [2, 4, MAX_COLOUR_CLASSES])
def test_colour_variant_class_is_the_hue(num_classes):
    images, labels, masks = make_synthetic(120, 32, "colour", num_classes, seed=1)
    object_rgb = torch.stack([(image[:, mask].mean(1) + 1) / 2 for image, mask in zip(images, masks)])
    hue = _rgb_to_hue(object_rgb)
    nearest = torch.round(hue * num_classes).long() % num_classes
    assert torch.equal(nearest, labels)
    assert class_names("colour", num_classes)[0] == "hue000"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "texture"}, "unknown variant"),
        ({"num_classes": 7}, "num_classes must be"),
        ({"variant": "colour", "num_classes": 1}, "num_classes must be"),
        ({"image_size": 8}, "image_size"),
        ({"n": 0}, "n must be"),
        ({"distractors": -1}, "distractors must be"),
        ({"distractors": 1.5}, "distractors must be"),
        ({"label_noise": 1.5}, "label_noise must be"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = {"n": 4, "image_size": 32} | kwargs
    with pytest.raises(ValueError, match=message):
        make_synthetic(**arguments)


def test_loader_splits_ids_manifest_and_masks():
    splits = synthetic(input_size=32, n_train=20, n_val=8, n_test=12, num_classes=3, seed=0)
    assert isinstance(splits, DatasetSplits)
    assert splits.classes == ["square", "disc", "cross"]
    assert [len(splits.train), len(splits.val), len(splits.test)] == [20, 8, 12]
    image, label, sample_id = splits.test[11]
    assert image.shape == (3, 32, 32) and isinstance(label, int) and sample_id == "synthetic-test-00011"
    assert isinstance(splits.test, SyntheticDataset) and splits.test.masks.shape == (12, 32, 32)
    manifest = splits.manifest
    assert list(manifest.columns) == ["id", "split", "label"]
    assert manifest["id"].is_unique and len(manifest) == 40
    test_rows = manifest[manifest["split"] == "test"]
    assert test_rows["label"].tolist() == splits.test.labels.tolist()
    assert test_rows["id"].tolist() == splits.test.ids


def test_loader_splits_are_independent_and_seeded():
    base = synthetic(input_size=24, n_train=16, n_val=8, n_test=8, seed=7)
    bigger_val = synthetic(input_size=24, n_train=16, n_val=30, n_test=8, seed=7)
    other_seed = synthetic(input_size=24, n_train=16, n_val=8, n_test=8, seed=8)
    assert torch.equal(base.train.images, bigger_val.train.images)
    assert torch.equal(base.test.images, bigger_val.test.images)
    assert not torch.equal(base.train.images, base.test.images[:8].repeat(2, 1, 1, 1))
    assert not torch.equal(base.test.images, other_seed.test.images)


def test_augmentation_flips_training_items_only_and_follows_torch_seed():
    splits = synthetic(input_size=24, n_train=16, n_val=4, n_test=4, augment=True, seed=0)
    assert splits.train.augment and not splits.val.augment and not splits.test.augment
    torch.manual_seed(0)
    first = torch.stack([splits.train[i][0] for i in range(16)])
    torch.manual_seed(0)
    again = torch.stack([splits.train[i][0] for i in range(16)])
    assert torch.equal(first, again)
    originals = splits.train.images
    assert not torch.equal(first, originals)
    for item, original in zip(first, originals):
        assert any(torch.equal(item, flipped) for flipped in
                   (original, original.flip(-1), original.flip(-2), original.flip(-1).flip(-2)))
    assert torch.equal(splits.test[0][0], splits.test.images[0])


def _tiny_cnn(num_classes: int, input_size: int) -> nn.Module:
    """A small network shaped like camfaith.models.CamNet: ``features`` then a flatten ``head``."""
    features = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 16, 3, padding=1)), ("bn1", nn.BatchNorm2d(16)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("bn2", nn.BatchNorm2d(32)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(32, 64, 3, padding=1)), ("relu3", nn.ReLU()),
    ]))
    model = nn.Sequential(OrderedDict([
        ("features", features),
        ("head", nn.Sequential(nn.Flatten(), nn.Linear(64 * (input_size // 4) ** 2, num_classes))),
    ]))
    return model


@pytest.fixture
def one_thread():
    """One CPU thread: faster than two on a shared 2-core machine, and the numbers do not change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_small_cnn_learns_the_shapes_quickly(tmp_path, one_thread):
    splits = synthetic(input_size=24, n_train=800, n_val=200, n_test=200, variant="shape", seed=0)
    torch.manual_seed(0)
    model = _tiny_cnn(splits.num_classes, 24)
    config = TrainConfig(lr=1e-3, batch_size=16, epochs=5, trainable_layers="all", seed=0)
    result = train(model, splits, config, tmp_path, device="cpu", progress=False)
    probabilities, labels, _ = predict(model, splits.test, device="cpu")
    report = classification_report(probabilities, labels, splits.classes)
    assert result.history["val_loss"].iloc[-1] < result.history["val_loss"].iloc[0]
    assert report["balanced_accuracy"] > 0.6  # chance is 0.25


@pytest.mark.parametrize("variant", ["shape", "colour"])
def test_shape_and_colour_variants_have_no_clutter_and_are_reproducible(variant):
    """The clutter options default to none outside the clutter variant, and a seed fixes every image."""
    images, labels, masks = make_synthetic(6, 16, variant, 4, seed=11)
    plain = make_synthetic(6, 16, variant, 4, seed=11, distractors=0, label_noise=0.0)
    again = make_synthetic(6, 16, variant, 4, seed=11)
    other = make_synthetic(6, 16, variant, 4, seed=12)
    for first, second in zip((images, labels, masks), plain):
        assert torch.equal(first, second)
    assert all(torch.equal(a, b) for a, b in zip((images, labels, masks), again))
    assert not torch.equal(images, other[0])


def _components(mask: torch.Tensor) -> tuple[np.ndarray, int]:
    """8-connected components of a bool (S, S) mask."""
    from scipy.ndimage import label

    return label(mask.numpy(), structure=np.ones((3, 3)))


def test_clutter_masks_mark_exactly_the_deciding_object():
    images, labels, masks, distractors = make_synthetic(200, 48, "clutter", 4, seed=3, return_distractors=True)
    assert class_names("clutter", 4) == list(SHAPES[:4])
    assert distractors.flatten(1).any(1).float().mean() > 0.75  # most images have distractors
    # At least one background pixel between the deciding object and any distractor.
    assert not (_dilate(masks, 1) & distractors).any()
    for image, mask, extra in zip(images, masks, distractors):
        _, count = _components(mask)
        assert count == 1  # one object, in one piece
        inside = image[:, mask]
        assert (inside - inside.mean(1, keepdim=True)).abs().mean() < 0.05  # one flat colour
        pieces, pieces_count = _components(extra)
        sizes = np.bincount(pieces.ravel(), minlength=pieces_count + 1)[1:]
        assert (sizes < mask.sum().item()).all()  # every distractor is smaller than the deciding object


def test_distractors_keep_apart_from_the_object_and_each_other():
    generator = torch.Generator().manual_seed(0)
    object_boxes = torch.tensor([[16.0, 16.0, 8.0], [10.0, 10.0, 6.0], [22.0, 12.0, 9.0]]).repeat(50, 1)
    object_masks = _dilate(torch.zeros(len(object_boxes), 32, 32, dtype=torch.bool), 0)
    for index, (x, y, r) in enumerate(object_boxes.tolist()):
        object_masks[index, round(y - r):round(y + r), round(x - r):round(x + r)] = True  # the whole box
    masks, colours = _distractors(generator, object_boxes, 32, 4, torch.arange(4))
    assert masks.shape == (150, 4, 32, 32) and colours.shape == (150, 4, 3)
    assert masks.flatten(2).any(2).sum(1).float().mean() > 1.5  # beside the two off-centre objects, most fit
    grown = _dilate(masks.flatten(0, 1), 1).view_as(masks)
    assert not (grown & object_masks[:, None]).any()
    for first in range(4):
        for second in range(first + 1, 4):
            assert not (grown[:, first] & masks[:, second]).any()


def test_distractors_carry_no_class_signal():
    _, labels, masks, distractors = make_synthetic(1200, 32, "clutter", 4, seed=5, return_distractors=True)
    share = distractors.flatten(1).float().mean(1)
    per_class = torch.stack([share[labels == c].mean() for c in range(4)])
    assert (per_class / share.mean() - 1).abs().max() < 0.1
    # Distractors are drawn after the deciding objects: they leave labels and masks as they were.
    _, labels_alone, masks_alone = make_synthetic(1200, 32, "clutter", 4, seed=5, distractors=0)
    assert torch.equal(labels, labels_alone) and torch.equal(masks, masks_alone)


@pytest.mark.parametrize("variant, num_classes", [("shape", 4), ("colour", MAX_COLOUR_CLASSES)])
def test_distractors_can_be_added_to_any_variant(variant, num_classes):
    plain = make_synthetic(30, 32, variant, num_classes, seed=2)
    cluttered = make_synthetic(30, 32, variant, num_classes, seed=2, distractors=2, return_distractors=True)
    assert torch.equal(plain[1], cluttered[1]) and torch.equal(plain[2], cluttered[2])
    assert not torch.equal(plain[0], cluttered[0]) and cluttered[3].any()
    assert not (_dilate(cluttered[2], 1) & cluttered[3]).any()


def test_faint_objects_keep_the_requested_share_of_their_contrast():
    n, size = 4000, 8
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    masks[:, :, 2:6, 2:6] = True
    background = torch.zeros(n, 3, size, size)
    painted = _paint(torch.Generator().manual_seed(0), background, masks, torch.ones(n, 1, 3), faint=True)
    kept = painted[:, 0, 3, 3]
    faint = kept < 1
    assert faint.float().mean() == pytest.approx(FAINT_SHARE, abs=0.03)
    assert kept[faint].min() >= FAINT_CONTRAST[0] and kept[faint].max() <= FAINT_CONTRAST[1]
    assert (painted[:, :, masks[0, 0]] == kept[:, None, None]).all()  # still one flat colour
    assert (painted[:, :, ~masks[0, 0]] == 0).all()
    plain = _paint(torch.Generator().manual_seed(0), background, masks, torch.ones(n, 1, 3), faint=False)
    assert (plain[:, :, masks[0, 0]] == 1).all()


@pytest.mark.parametrize("share", [0.1, 0.25, 1.0])
def test_label_noise_flips_exactly_the_requested_share(share):
    n, num_classes = 400, 4
    clean = make_synthetic(n, 24, "clutter", num_classes, seed=9, label_noise=0.0)
    noisy = make_synthetic(n, 24, "clutter", num_classes, seed=9, label_noise=share)
    again = make_synthetic(n, 24, "clutter", num_classes, seed=9, label_noise=share)
    other = make_synthetic(n, 24, "clutter", num_classes, seed=10, label_noise=share)
    flipped = noisy[1] != clean[1]
    assert flipped.sum() == round(share * n)  # every chosen label moves to another class
    assert noisy[1].min() >= 0 and noisy[1].max() < num_classes
    assert torch.equal(noisy[0], clean[0]) and torch.equal(noisy[2], clean[2])  # images and masks unchanged
    assert torch.equal(noisy[1], again[1])
    other_clean = make_synthetic(n, 24, "clutter", num_classes, seed=10, label_noise=0.0)
    assert not torch.equal((noisy[1] - clean[1]) % num_classes, (other[1] - other_clean[1]) % num_classes)
    # The flips hit every class and land on every other class.
    assert set(clean[1][flipped].tolist()) == set(range(num_classes))
    assert set(noisy[1][flipped].tolist()) == set(range(num_classes))


def test_loader_flips_training_and_validation_labels_only():
    sizes = dict(input_size=24, n_train=200, n_val=40, n_test=40, variant="clutter", seed=1)
    clean, noisy = synthetic(**sizes), synthetic(**sizes, label_noise=0.2)
    assert (noisy.train.labels != clean.train.labels).sum() == 40
    assert (noisy.val.labels != clean.val.labels).sum() == 8
    assert torch.equal(noisy.test.labels, clean.test.labels)
    assert torch.equal(noisy.train.images, clean.train.images)
    assert noisy.manifest["label"].tolist() == torch.cat(
        [noisy.train.labels, noisy.val.labels, noisy.test.labels]).tolist()
    for split in (clean.train, clean.val, clean.test):
        assert split.distractors.shape == split.masks.shape and not (split.distractors & split.masks).any()
