"""Synthetic images whose class is decided by one object, with the object's mask as ground truth.

The metrics of Lamprou (2023) (AOPC, Max-Sensitivity, HAAS; chapters 2 and 4) have no ground truth for *where*
the evidence lies. Here it is known: each image holds one object at a random place and size on a
textured background that carries no class signal, and :func:`make_synthetic` returns its mask.

Two variants:

``"shape"``
    Classes differ by the object's shape (square, disc, cross, triangle, ring, diamond); its colour is
    drawn at random for every image, independently of the class.
``"colour"``
    Every object is a disc; classes differ only by hue (evenly spaced around the colour wheel). This is
    the experiment chapter 6 of the original study proposes for HAAS: "objects of the same shape and only
    different colours".

All randomness comes from one ``torch.Generator``, and the draws are vectorised, so a seed fixes the
data set exactly.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from camfaith.data.base import DatasetSplits

VARIANTS = ("shape", "colour")
SHAPES = ("square", "disc", "cross", "triangle", "ring", "diamond")
MAX_COLOUR_CLASSES = 12  # hues 30 degrees apart, each jittered by at most a quarter of the spacing
DEFAULT_NUM_CLASSES = 4
MIN_IMAGE_SIZE = 16

# Object half-extent as a fraction of the image side, and the margin kept to the border (pixels).
RADIUS_RANGE = (0.18, 0.32)
BORDER_MARGIN = 1.0
# Background: a grey level with a slight tint and a smooth luminance texture; the object is flat.
GREY_RANGE = (-0.6, 0.6)
TINT_AMPLITUDE = 0.1
TEXTURE_AMPLITUDE = 0.2
TEXTURE_CELL = 8  # pixels per cell of the low-resolution noise that is upsampled into the texture
PIXEL_NOISE = 0.03
# Object colour in HSV: saturated and bright enough to stand out against any grey background.
SATURATION_RANGE = (0.6, 1.0)
VALUE_RANGE = (0.6, 1.0)


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _shape_mask(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Membership of the coordinates ``(u, v)`` (object box scaled to ``[-1, 1]``, v pointing down).

    Areas are kept close (1.8 to 2.3 of the box's 4) so that size alone hardly tells shapes apart.
    """
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.75
    if shape == "disc":
        return u**2 + v**2 <= 0.85**2
    if shape == "cross":
        return ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0))
    if shape == "triangle":  # apex up, base down
        return (v <= 0.9) & (u.abs() <= (v + 0.9) / 1.8)
    if shape == "ring":
        radius_squared = u**2 + v**2
        return (radius_squared >= 0.45**2) & (radius_squared <= 0.95**2)
    if shape == "diamond":
        return u.abs() + v.abs() <= 1.0
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """HSV in ``[0, 1]`` to RGB in ``[0, 1]``; inputs of shape ``(n,)``, output ``(n, 3)``."""
    channel_offsets = torch.tensor([5.0, 3.0, 1.0])
    k = (channel_offsets + 6.0 * hue[:, None]) % 6.0
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[:, None] - value[:, None] * saturation[:, None] * ramp


def class_names(variant: str = "shape", num_classes: int = DEFAULT_NUM_CLASSES) -> list[str]:
    """Names of the classes: shape names, or ``"hue000"``-style names giving the hue in degrees."""
    _check_variant(variant, num_classes)
    if variant == "shape":
        return list(SHAPES[:num_classes])
    return [f"hue{round(360 * k / num_classes):03d}" for k in range(num_classes)]


def _check_variant(variant: str, num_classes: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    limit = len(SHAPES) if variant == "shape" else MAX_COLOUR_CLASSES
    if not isinstance(num_classes, int) or not 2 <= num_classes <= limit:
        raise ValueError(
            f"num_classes must be an integer from 2 to {limit} for the {variant!r} variant, got {num_classes!r}"
        )


def _object_masks(
    generator: torch.Generator, labels: torch.Tensor, size: int, variant: str, num_classes: int
) -> torch.Tensor:
    """Each object's pixels: a half-extent, then a centre that keeps the whole object inside the image."""
    n = len(labels)
    radius = _uniform(generator, n, RADIUS_RANGE[0] * size, RADIUS_RANGE[1] * size)
    low = radius + BORDER_MARGIN
    high = size - radius - BORDER_MARGIN
    centre_x = low + (high - low) * torch.rand(n, generator=generator)
    centre_y = low + (high - low) * torch.rand(n, generator=generator)

    pixel_centres = torch.arange(size, dtype=torch.float32) + 0.5
    u = (pixel_centres[None, None, :] - centre_x[:, None, None]) / radius[:, None, None]
    v = (pixel_centres[None, :, None] - centre_y[:, None, None]) / radius[:, None, None]
    if variant != "shape":
        return _shape_mask("disc", u, v)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for index, shape in enumerate(SHAPES[:num_classes]):
        chosen = labels == index
        masks[chosen] = _shape_mask(shape, u[chosen], v[chosen])
    return masks


def _object_colours(generator: torch.Generator, labels: torch.Tensor, variant: str, num_classes: int) -> torch.Tensor:
    """RGB in ``[-1, 1]``, ``(n, 3)``: a random hue for "shape"; the class's hue, jittered, for "colour"."""
    n = len(labels)
    hue_jitter = _uniform(generator, n, -0.25, 0.25)
    if variant == "shape":
        hue = torch.rand(n, generator=generator)
    else:
        hue = ((labels.float() + hue_jitter) / num_classes) % 1.0
    saturation = _uniform(generator, n, *SATURATION_RANGE)
    value = _uniform(generator, n, *VALUE_RANGE)
    return 2.0 * _hsv_to_rgb(hue, saturation, value) - 1.0


def _background(generator: torch.Generator, n: int, size: int) -> torch.Tensor:
    """``(n, 3, size, size)``: tinted grey plus a smooth luminance texture."""
    grey = _uniform(generator, (n, 1, 1, 1), *GREY_RANGE)
    tint = _uniform(generator, (n, 3, 1, 1), -TINT_AMPLITUDE, TINT_AMPLITUDE)
    cells = math.ceil(size / TEXTURE_CELL) + 1
    coarse = _uniform(generator, (n, 1, cells, cells), -TEXTURE_AMPLITUDE, TEXTURE_AMPLITUDE)
    texture = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return grey + tint + texture


def make_synthetic(
    n: int,
    image_size: int = 64,
    variant: str = "shape",
    num_classes: int = DEFAULT_NUM_CLASSES,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``n`` labelled images, each with one class-deciding object, and the objects' masks.

    Parameters
    ----------
    n : number of images.
    image_size : side ``S`` of the square images, in pixels (at least 16).
    variant : ``"shape"`` (class = shape, colour random) or ``"colour"`` (class = hue, every object
        a disc; the experiment proposed in chapter 6 of Lamprou 2023).
    num_classes : number of classes, 2 to 6 for ``"shape"``, 2 to 12 for ``"colour"``.
    seed : seed of the ``torch.Generator`` that makes every draw; the same seed gives the same images.

    Returns
    -------
    images : float tensor ``(n, 3, S, S)`` in ``[-1, 1]``, like the preprocessed inputs of Lamprou 2023
        (section 4.2).
    labels : long tensor ``(n,)``; classes are balanced (counts differ by at most one) and shuffled.
    masks : bool tensor ``(n, S, S)``, true on the object's pixels.

    Notes
    -----
    Object position, size, background and (for ``"shape"``) colour are drawn independently of the
    label, so only the object carries class information. In the ``"colour"`` variant every object
    has the same shape and the geometry is independent of the class, so the masks' statistics are
    the same for every class.
    """
    _check_variant(variant, num_classes)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}")
    generator = torch.Generator().manual_seed(int(seed))
    # Balanced labels in a random order; then, in this order, geometry, colour and background draws.
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
    masks = _object_masks(generator, labels, image_size, variant, num_classes)
    object_colour = _object_colours(generator, labels, variant, num_classes)
    background = _background(generator, n, image_size)
    images = torch.where(masks[:, None], object_colour[:, :, None, None], background)
    images = images + PIXEL_NOISE * torch.randn(images.shape, generator=generator)
    return images.clamp_(-1.0, 1.0), labels, masks


class SyntheticDataset(Dataset):
    """Images, labels, ids and ground-truth masks of one split.

    Items are ``(image, label, id)`` like every dataset of the report. ``masks`` (bool ``(N, S, S)``)
    gives the object of each item, for ground-truth localisation checks. With ``augment`` the items
    are flipped horizontally and vertically at random (torch's global generator, so seeding torch
    makes the flips reproducible); ``masks`` stays unflipped, so augment only training sets.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, ids: list[str],
                 augment: bool = False):
        if not len(images) == len(labels) == len(masks) == len(ids):
            raise ValueError("images, labels, masks and ids must have the same length")
        self.images, self.labels, self.masks, self.ids = images, labels, masks, list(ids)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment:
            flip_horizontal, flip_vertical = torch.rand(2) < 0.5
            if flip_horizontal:
                image = image.flip(-1)
            if flip_vertical:
                image = image.flip(-2)
        return image, int(self.labels[index]), self.ids[index]


def _split_seed(seed: int, split_index: int) -> int:
    """An independent seed for each split, so changing one split's size leaves the others unchanged."""
    return int(np.random.SeedSequence([int(seed), split_index]).generate_state(1)[0])


def synthetic(
    root: str | os.PathLike | None = None,
    input_size: int = 64,
    seed: int = 0,
    augment: bool = False,
    n_train: int = 2000,
    n_val: int = 400,
    n_test: int = 400,
    variant: str = "shape",
    num_classes: int = DEFAULT_NUM_CLASSES,
) -> DatasetSplits:
    """The synthetic data set as train, validation and test splits (see :func:`make_synthetic`).

    Parameters
    ----------
    root : ignored (nothing is read from disk); accepted so every loader has the same signature.
    input_size : image side in pixels.
    seed : the data seed; each split is drawn with its own seed derived from it.
    augment : random flips of the training images (section 4.2 of Lamprou 2023 also flips; rotations are
        left out so that the masks stay axis-aligned).
    n_train, n_val, n_test : split sizes.
    variant, num_classes : see :func:`make_synthetic`.

    Returns
    -------
    DatasetSplits whose datasets are :class:`SyntheticDataset` (with ``.masks``); ids look like
    ``synthetic-train-00012``.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for split, count in sizes.items():
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"n_{split} must be a positive integer, got {count!r}")
    width = max(5, len(str(max(sizes.values()) - 1)))
    datasets, rows = {}, []
    for split_index, (split, count) in enumerate(sizes.items()):
        images, labels, masks = make_synthetic(count, input_size, variant, num_classes,
                                               seed=_split_seed(seed, split_index))
        ids = [f"synthetic-{split}-{i:0{width}d}" for i in range(count)]
        datasets[split] = SyntheticDataset(images, labels, masks, ids, augment=augment and split == "train")
        rows.append(pd.DataFrame({"id": ids, "split": split, "label": labels.numpy()}))
    manifest = pd.concat(rows, ignore_index=True)
    return DatasetSplits(datasets["train"], datasets["val"], datasets["test"],
                         class_names(variant, num_classes), manifest)
