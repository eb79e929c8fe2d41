"""MedMNIST files and the non-medical datasets (CIFAR-10, STL-10, Imagenette) on tiny fake copies."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from camfaith.data.medical import CRC_CLASSES
from camfaith.data.medmnist import dermamnist, medmnist, pathmnist
from camfaith.data.natural import CIFAR10_CLASSES, IMAGENETTE_CLASSES, STL10_CLASSES, cifar10, imagenette, stl10

rng = np.random.default_rng(0)


def _labelled(count, classes):
    return np.arange(count) % classes


def _npz(path, splits, classes=3, side=6, channels=3):
    arrays = {}
    for split, count in splits.items():
        shape = (count, side, side, channels) if channels else (count, side, side)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = _labelled(count, classes).reshape(-1, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_official_splits_are_kept(tmp_path):
    arrays = _npz(tmp_path / "tinymnist.npz", {"train": 12, "val": 6, "test": 6})
    splits = medmnist(path=tmp_path / "tinymnist.npz", input_size=8, augment=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 6)
    assert splits.classes == ["0", "1", "2"]
    image, label, sample_id = splits.val[4]
    assert sample_id == "val/000004" and label == 1
    expected = torch.from_numpy(arrays["val_images"][4] / 127.5 - 1).permute(2, 0, 1).float()
    small = medmnist(path=tmp_path / "tinymnist.npz", input_size=6, augment=False)
    assert image.shape == (3, 8, 8)
    assert torch.allclose(small.val[4][0], expected, atol=1e-6)


def test_medmnist_partial_file_carves_missing_splits_from_train(tmp_path):
    _npz(tmp_path / "pathmnist" / "pathmnist_subset.npz", {"train": 90}, classes=9)
    splits = pathmnist(tmp_path, input_size=8, seed=0)
    assert splits.classes == list(CRC_CLASSES)
    counts = splits.manifest.groupby(["split", "label"]).size().unstack()
    assert counts.loc["train"].tolist() == [7] * 9
    assert counts.loc["val"].tolist() == [1] * 9 and counts.loc["test"].tolist() == [2] * 9
    assert splits.manifest["id"].str.startswith("train/").all()
    again = pathmnist(tmp_path, input_size=8, seed=0).manifest
    other = pathmnist(tmp_path, input_size=8, seed=1).manifest
    pd.testing.assert_frame_equal(again, splits.manifest)
    assert not other.equals(splits.manifest)


def test_medmnist_train_and_test_only_carves_val(tmp_path):
    _npz(tmp_path / "t.npz", {"train": 24, "test": 6})
    splits = medmnist(path=tmp_path / "t.npz", input_size=8)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (21, 3, 6)
    assert all(sample_id.startswith("test/") for sample_id in splits.test.ids)


def test_medmnist_grayscale_becomes_rgb_and_dermamnist_names(tmp_path):
    _npz(tmp_path / "dermamnist" / "dermamnist.npz", {"train": 14, "val": 7, "test": 7}, classes=7, channels=0)
    splits = dermamnist(tmp_path, input_size=8)
    assert splits.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    image = splits.test[0][0]
    assert image.shape == (3, 8, 8) and torch.equal(image[0], image[2])


def test_medmnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path=<file>.npz"):
        medmnist(path=tmp_path / "absent.npz")
    np.savez(tmp_path / "multi.npz", train_images=np.zeros((4, 5, 5), np.uint8),
             train_labels=np.zeros((4, 14), np.uint8))
    with pytest.raises(ValueError, match="multi-label"):
        medmnist(path=tmp_path / "multi.npz")
    np.savez(tmp_path / "novel.npz", val_images=np.zeros((4, 5, 5), np.uint8), val_labels=np.zeros((4, 1), np.uint8))
    with pytest.raises(ValueError, match="no train_images"):
        medmnist(path=tmp_path / "novel.npz")
    np.savez(tmp_path / "float.npz", train_images=np.zeros((4, 5, 5), np.float32), train_labels=np.zeros((4, 1)))
    with pytest.raises(ValueError, match="uint8"):
        medmnist(path=tmp_path / "float.npz")
    (tmp_path / "pathmnist").mkdir()
    with pytest.raises(FileNotFoundError, match="zenodo.org/records/10519652|10519652"):
        pathmnist(tmp_path)
    _npz(tmp_path / "pathmnist" / "pathmnist.npz", {"train": 9, "val": 9, "test": 9}, classes=9)
    _npz(tmp_path / "pathmnist" / "pathmnist_64.npz", {"train": 9, "val": 9, "test": 9}, classes=9)
    assert pathmnist(tmp_path, input_size=8).manifest.shape[0] == 27
    assert len(pathmnist(tmp_path, input_size=8, file="pathmnist_64.npz").train) == 9


def _cifar_tree(root, per_batch=20):
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(label) for label in _labelled(per_batch, 10)]
        batches[name] = (data, labels)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [name.encode() for name in CIFAR10_CLASSES], b"num_vis": 3072}, handle)
    return batches


def test_cifar10_reads_torchvision_python_batches(tmp_path):
    batches = _cifar_tree(tmp_path)
    splits = cifar10(tmp_path, input_size=32, augment=False, seed=0)
    assert splits.classes == list(CIFAR10_CLASSES)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    position = splits.test.ids.index("test/000013")
    image, label, _ = splits.test[position]
    data, labels = batches["test_batch"]
    expected = torch.from_numpy(data[13].reshape(3, 32, 32) / 127.5 - 1).float()
    assert label == labels[13] and torch.allclose(image, expected, atol=1e-6)
    row = int(splits.train.ids[0].split("/")[1])
    batch, offset = divmod(row, 20)
    assert splits.train[0][1] == batches[f"data_batch_{batch + 1}"][1][offset]


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    _cifar_tree(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("this should never run",))

    with open(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3", "wb") as handle:
        pickle.dump({"data": Exploit(), "labels": []}, handle)
    with pytest.raises(ValueError, match="refusing to unpickle builtins.print"):
        cifar10(tmp_path)


def test_cifar10_missing_files_and_image_folder_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*cs.toronto.edu"):
        cifar10(tmp_path)
    for split, count in (("train", 10), ("test", 1)):
        for name in ("cat", "dog"):
            for index in range(count):
                path = tmp_path / "cifar10" / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    splits = cifar10(tmp_path, input_size=16)
    assert splits.classes == ["cat", "dog"]  # CIFAR-10 order, a subset of its classes
    assert (len(splits.train), len(splits.val), len(splits.test)) == (18, 2, 2)
    assert splits.test.ids[0] == "test/cat/0.png"
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        cifar10(tmp_path)


def test_stl10_binary_files_keep_image_orientation(tmp_path):
    folder = tmp_path / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    images = {}
    for split, count in (("train", 20), ("test", 10)):
        pictures = rng.integers(0, 256, size=(count, 96, 96, 3), dtype=np.uint8)
        pictures[:, :8, :, :] = 255  # a white top band tells rows from columns
        pictures[:, 8:, :, :] //= 2
        images[split] = pictures
        # STL-10 stores each image channel by channel, column-major.
        pictures.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        (_labelled(count, 10) + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    splits = stl10(tmp_path, input_size=96, augment=False, val_fraction=0.5)
    assert splits.classes == list(STL10_CLASSES)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 10, 10)
    image, label, sample_id = splits.test[3]
    expected = torch.from_numpy(images["test"][3] / 127.5 - 1).permute(2, 0, 1).float()
    assert sample_id == "test/000003" and label == 3
    assert torch.allclose(image, expected, atol=1e-6)
    assert (image[:, :8] == 1).all() and (image[:, 8:] < 0.01).all()
    (folder / "test_y.bin").unlink()
    with pytest.raises(FileNotFoundError, match="test_y.bin"):
        stl10(tmp_path)


def _imagenette_tree(root, variant="imagenette2-160"):
    wnids = ["n01440764", "n03888605"]
    for split, count in (("train", 4), ("val", 1)):
        for wnid in wnids:
            for index in range(count):
                path = root / "imagenette" / variant / split / wnid / f"{wnid}_{index}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path, format="JPEG")
    (root / "imagenette" / variant / "noisy_imagenette.csv").write_text("path,noisy_labels_0\n")
    return wnids


def test_imagenette_image_folder(tmp_path):
    wnids = _imagenette_tree(tmp_path)
    splits = imagenette(tmp_path, input_size=16, val_fraction=0.25)
    assert splits.classes == [IMAGENETTE_CLASSES[wnid] for wnid in wnids] == ["tench", "parachute"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (6, 2, 2)
    assert splits.test.ids == ["val/n01440764/n01440764_0.JPEG", "val/n03888605/n03888605_0.JPEG"]
    assert splits.train[0][0].shape == (3, 16, 16)
    direct = imagenette(tmp_path / "imagenette" / "imagenette2-160", input_size=16, val_fraction=0.25)
    pd.testing.assert_frame_equal(direct.manifest, splits.manifest)


def test_imagenette_ambiguous_or_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenette2.*fastai"):
        imagenette(tmp_path)
    _imagenette_tree(tmp_path, "imagenette2-160")
    _imagenette_tree(tmp_path, "imagenette2-320")
    with pytest.raises(ValueError, match="variant="):
        imagenette(tmp_path)
    assert len(imagenette(tmp_path, input_size=16, variant="imagenette2-320", val_fraction=0.25).test) == 2
