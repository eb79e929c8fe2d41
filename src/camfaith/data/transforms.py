"""Image decoding and the preprocessing of section 4.2 of Lamprou (2023).

Every image is resized to the model's square input size (224 px in the original study) and scaled to
``[-1, 1]`` (``ToTensor`` then ``Normalize(0.5, 0.5)``, the same as ``x / 127.5 - 1`` on 8-bit pixels).
Grayscale X-rays become three identical channels. Training images are augmented with horizontal and
vertical flips and random rotations (Lamprou 2023, section 4.2, "Data preprocessing"); the original
study does not state the rotation range, so it is a parameter here.

Augmentation draws from ``torch``'s global random state (per worker in a ``DataLoader``), so
``torch.manual_seed`` fixes it.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision import transforms as T

SKIP_CORRUPT_VARIABLE = "CAMFAITH_SKIP_CORRUPT"
DEFAULT_ROTATION_DEGREES = 45.0
# Errors PIL raises on truncated, corrupt or non-image files.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class CorruptImageError(RuntimeError):
    """An image file that cannot be opened or decoded."""


def skip_corrupt_default(skip_corrupt: bool | None = None) -> bool:
    """Resolve the opt-in to skip unreadable images: the argument, else ``$CAMFAITH_SKIP_CORRUPT``."""
    if skip_corrupt is not None:
        return bool(skip_corrupt)
    return os.environ.get(SKIP_CORRUPT_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB; 16-bit and 32-bit grayscale are rescaled, not clipped."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
        image = Image.fromarray(scaled.round().astype(np.uint8))
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file as RGB.

    Raises
    ------
    CorruptImageError
        If the file is missing, truncated or not an image; the message names the file.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except DECODE_ERRORS as error:
        raise CorruptImageError(
            f"cannot read image file {os.fspath(path)!r} ({type(error).__name__}: {error}). "
            f"Replace or delete the file, or skip unreadable images with skip_corrupt=True "
            f"(or the environment variable {SKIP_CORRUPT_VARIABLE}=1)."
        ) from error


def array_to_image(array: np.ndarray) -> Image.Image:
    """An 8-bit image array ``(H, W)`` or ``(H, W, C)`` with ``C`` in {1, 3} as an RGB PIL image."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array))
    raise ValueError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")


def image_transform(
    input_size: int,
    augment: bool = False,
    rotation_degrees: float = DEFAULT_ROTATION_DEGREES,
) -> T.Compose:
    """The preprocessing of section 4.2 of Lamprou (2023) for one split.

    Parameters
    ----------
    input_size
        Side of the square model input in pixels (224 in the original study).
    augment
        Add random horizontal and vertical flips and a random rotation in
        ``[-rotation_degrees, rotation_degrees]`` (corners filled with black, i.e. -1); use it for
        the training split only.
    rotation_degrees
        Largest rotation angle; ``0`` disables rotations (flips stay).

    Returns
    -------
    torchvision.transforms.Compose
        Maps an RGB PIL image to a float tensor ``(3, input_size, input_size)`` in ``[-1, 1]``.
    """
    if isinstance(input_size, bool) or not isinstance(input_size, int | np.integer) or input_size < 1:
        raise ValueError(f"input_size must be a positive int (pixels per side), got {input_size!r}")
    if rotation_degrees < 0:
        raise ValueError(f"rotation_degrees must be >= 0, got {rotation_degrees}")
    steps: list = [T.Resize((int(input_size), int(input_size)), antialias=True)]
    if augment:
        steps += [T.RandomHorizontalFlip(), T.RandomVerticalFlip()]
        if rotation_degrees > 0:
            steps.append(T.RandomRotation(rotation_degrees, interpolation=T.InterpolationMode.BILINEAR))
    steps += [T.ToTensor(), T.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))]
    return T.Compose(steps)
