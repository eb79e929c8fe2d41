"""The quick check of the data root that runs before any notebook: on empty, tiny and staged roots."""

from pathlib import Path

import pytest
import yaml

from camfaith.data import missing_data
from camfaith.data.download import CATALOGUE, MANUAL_DATASETS
from camfaith.data.medical import COVID19_CLASSES, CRC_CLASSES

ON_DISK = tuple(CATALOGUE)  # every dataset read from the data root
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _touch(path, content=b"not an image"):
    """A file that is no image at all: the check must not decode anything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_empty_root_gives_one_message_per_dataset(tmp_path):
    messages = missing_data(ON_DISK, tmp_path)
    assert len(messages) == len(ON_DISK)
    for name, message in zip(ON_DISK, messages, strict=True):
        info = CATALOGUE[name]
        assert message.startswith(f"{name}, {info.title}: ")
        assert f"Expected under the data root {tmp_path}:" in message
        assert all(line in message for line in info.layout)
        if name in MANUAL_DATASETS:
            assert "Get it by hand:" in message and "https://" in message
        else:
            assert f"python -m camfaith.data.download {name} --root {tmp_path}" in message


def test_synthetic_needs_nothing_and_names_are_checked(tmp_path):
    assert missing_data(["synthetic"], tmp_path) == []
    assert missing_data([], tmp_path) == []
    assert len(missing_data("covid19, synthetic,COVID19", tmp_path)) == 1  # a string, deduplicated
    with pytest.raises(ValueError, match="unknown dataset.*mnist.*choose from: crc, covid19"):
        missing_data(["crc", "mnist"], tmp_path)


def test_data_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMFAITH_DATA", str(tmp_path))
    [message] = missing_data(["pathmnist"])
    assert f"--root {tmp_path}" in message
    _touch(tmp_path / "pathmnist" / "pathmnist.npz")
    assert missing_data(["pathmnist"]) == []


def test_layout_is_checked_without_decoding_images(tmp_path):
    base = tmp_path / "covid19_radiography" / "COVID-19_Radiography_Dataset"
    _touch(base / "COVID" / "images" / "COVID-1.png")
    [message] = missing_data(["covid19"], tmp_path)
    assert "in 1 <class>/images/ folder(s)" in message
    _touch(base / "Normal" / "images" / "Normal-1.png")
    assert missing_data(["covid19"], tmp_path) == []
    [message] = missing_data(["covid19"], tmp_path, options={"covid19": "classes=Lung_Opacity"})
    assert "no images of Lung_Opacity" in message and set(COVID19_CLASSES) > {"Lung_Opacity"}


def test_crc_needs_its_test_set_unless_allow_small(tmp_path):
    for name in CRC_CLASSES:
        _touch(tmp_path / "crc" / "NCT-CRC-HE-100K" / name / f"{name}-A.tif")
    [message] = missing_data(["crc"], tmp_path)
    assert "CRC-VAL-HE-7K" in message and "allow_small=True" in message
    assert missing_data(["crc"], tmp_path, options={"crc": {"allow_small": True}}) == []
    (tmp_path / "crc" / "NCT-CRC-HE-100K" / "MUS" / "MUS-A.tif").unlink()
    [message] = missing_data(["crc"], tmp_path, options={"CRC": "allow_small=true"})
    assert "class folders MUS" in message


def test_ham10000_metadata_header_and_images(tmp_path):
    folder = tmp_path / "ham10000"
    _touch(folder / "HAM10000_metadata.csv", b"image_id,dx\nISIC_1,nv\n")
    [message] = missing_data(["ham10000"], tmp_path)
    assert "lacks the columns lesion_id" in message
    _touch(folder / "HAM10000_metadata.csv", b"lesion_id,image_id,dx\nHAM_1,ISIC_1,nv\n")
    [message] = missing_data(["ham10000"], tmp_path)
    assert "no images in any of HAM10000_images_part_1" in message
    _touch(folder / "images" / "ISIC_1.jpg")
    assert missing_data(["ham10000"], tmp_path) == []


def test_several_versions_must_be_chosen(tmp_path):
    _touch(tmp_path / "dermamnist" / "dermamnist.npz")
    _touch(tmp_path / "dermamnist" / "dermamnist_64.npz")
    assert missing_data(["dermamnist"], tmp_path) == []  # dermamnist.npz is the default
    _touch(tmp_path / "pathmnist" / "pathmnist_64.npz")
    _touch(tmp_path / "pathmnist" / "pathmnist_128.npz")
    [message] = missing_data(["pathmnist"], tmp_path)
    assert "several files" in message
    assert missing_data(["pathmnist"], tmp_path, options={"pathmnist": {"file": "pathmnist_64.npz"}}) == []
    for variant in ("imagenette2-160", "imagenette2-320"):
        for split in ("train", "val"):
            (tmp_path / "imagenette" / variant / split).mkdir(parents=True)
    [message] = missing_data(["imagenette"], tmp_path)
    assert "several versions" in message
    assert missing_data(["imagenette"], tmp_path, options={"imagenette": "variant=imagenette2-160"}) == []


@pytest.mark.realdata
def test_staged_data_root_has_the_real_datasets(data_root):
    staged = ["covid19", "ham10000", "breakhis", "pathmnist", "dermamnist"]
    assert missing_data(staged, data_root) == []
    assert missing_data(["crc"], data_root, options={"crc": {"allow_small": True}}) == []
    [message] = missing_data(["crc"], data_root)  # only nine training tiles are staged
    assert "CRC-VAL-HE-7K" in message
    [message] = missing_data(["cifar10"], data_root)
    assert f"python -m camfaith.data.download cifar10 --root {data_root}" in message


@pytest.mark.realdata
def test_staged_data_root_is_enough_for_the_cpu_configuration(data_root):
    with open(CONFIGS / "cpu-real.yaml") as handle:
        config = yaml.safe_load(handle)
    datasets = [run["dataset"] for run in config["runs"]]
    assert missing_data(datasets, data_root) == []
