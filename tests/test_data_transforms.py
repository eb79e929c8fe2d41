import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from camfaith.data.transforms import (
    CorruptImageError,
    array_to_image,
    image_transform,
    load_image,
    skip_corrupt_default,
    to_rgb,
)


def _random_rgb(seed=0, size=(12, 10)):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return pixels, Image.fromarray(pixels)


def test_scaling_is_x_over_127_5_minus_1_at_native_size():
    pixels, image = _random_rgb()
    tensor = image_transform(12, augment=False)(image.resize((12, 12)))
    expected = torch.from_numpy(np.asarray(image.resize((12, 12)), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
    assert tensor.shape == (3, 12, 12) and tensor.dtype == torch.float32
    assert torch.allclose(tensor, expected, atol=1e-6)


def test_resize_to_input_size_and_range():
    _, image = _random_rgb(size=(40, 25))
    tensor = image_transform(16, augment=True)(image)
    assert tensor.shape == (3, 16, 16)
    assert tensor.min() >= -1 and tensor.max() <= 1


def test_augmentation_only_when_asked():
    plain = [type(step) for step in image_transform(8, augment=False).transforms]
    augmented = [type(step) for step in image_transform(8, augment=True).transforms]
    no_rotation = [type(step) for step in image_transform(8, augment=True, rotation_degrees=0).transforms]
    random_steps = {T.RandomHorizontalFlip, T.RandomVerticalFlip, T.RandomRotation}
    assert not random_steps & set(plain)
    assert random_steps <= set(augmented)
    assert T.RandomRotation not in no_rotation and T.RandomVerticalFlip in no_rotation


def test_augmentation_is_reproducible_with_torch_seed():
    _, image = _random_rgb(size=(16, 16))
    transform = image_transform(16, augment=True)
    torch.manual_seed(7)
    first = torch.stack([transform(image) for _ in range(4)])
    torch.manual_seed(7)
    second = torch.stack([transform(image) for _ in range(4)])
    assert torch.equal(first, second)
    assert not all(torch.equal(first[0], view) for view in first[1:])


@pytest.mark.parametrize("size", [0, -3, 2.5, "224", True, None])
def test_invalid_input_size_is_refused(size):
    with pytest.raises(ValueError, match="input_size"):
        image_transform(size)


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    tensor = image_transform(8)(to_rgb(gray))
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[1], tensor[2])


def test_sixteen_bit_grayscale_is_rescaled_not_clipped():
    pixels = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000).astype(np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode == "I;16"
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (4, 4, 3)
    assert rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb[..., 0])) == 16


def test_transparency_is_composited_on_black():
    rgba = Image.new("RGBA", (2, 2), (200, 100, 50, 0))
    assert np.asarray(to_rgb(rgba)).max() == 0


def test_array_to_image_accepts_the_medmnist_shapes():
    assert array_to_image(np.zeros((5, 6), np.uint8)).size == (6, 5)
    assert array_to_image(np.zeros((5, 6, 1), np.uint8)).mode == "RGB"
    assert array_to_image(np.zeros((5, 6, 3), np.uint8)).mode == "RGB"
    with pytest.raises(ValueError, match="uint8"):
        array_to_image(np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="shape"):
        array_to_image(np.zeros((5, 6, 4), np.uint8))


def test_load_image_names_a_corrupt_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(CorruptImageError, match="broken.png") as caught:
        load_image(broken)
    assert "skip_corrupt=True" in str(caught.value)


def test_load_image_detects_a_truncated_jpeg(tmp_path):
    _, image = _random_rgb(size=(64, 64))
    whole = tmp_path / "whole.jpg"
    image.save(whole, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert load_image(whole).size == (64, 64)
    with pytest.raises(CorruptImageError, match="truncated.jpg"):
        load_image(truncated)


def test_skip_corrupt_default_reads_the_environment(monkeypatch):
    monkeypatch.delenv("CAMFAITH_SKIP_CORRUPT", raising=False)
    assert skip_corrupt_default() is False
    monkeypatch.setenv("CAMFAITH_SKIP_CORRUPT", "1")
    assert skip_corrupt_default() is True
    assert skip_corrupt_default(False) is False
