"""Synthetic images whose class is decided by one object, with the object's mask as ground truth.

The metrics of Lamprou (2023) (AOPC, Max-Sensitivity, HAAS; chapters 2 and 4) have no ground truth for *where*
the evidence lies. Here it is known: each image holds one deciding object at a random place and size on a
textured background that carries no class signal, and :func:`make_synthetic` returns its mask.

Three variants:

``"shape"``
    Classes differ by the object's shape (square, disc, cross, triangle, ring, diamond); its colour is
    drawn at random for every image, independently of the class.
``"colour"``
    Every object is a disc; classes differ only by hue (evenly spaced around the colour wheel). This is
    the experiment chapter 6 of the original study proposes for HAAS: "objects of the same shape and only
    different colours".
``"clutter"``
    As ``"shape"``, plus smaller distractors and faint objects (a share of all objects keeps little contrast
    to the background); ``label_noise`` can flip training labels. The variants above are learnt perfectly,
    so HAAS, a ratio of accuracies (eq. 10 of Lamprou 2023), cannot exceed 1 on them; on this one the
    report's default network (``configs/default.yaml``) reaches 80-90% balanced test accuracy, which leaves room.

Distractors take class shapes, sizes (``DISTRACTOR_SCALE`` of the deciding object's) and colours independently
of the label, so they carry no class information and the deciding object's mask still marks all of it. No
two objects' boxes come closer than ``DISTRACTOR_GAP`` pixels: objects never overlap or touch each other.

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

VARIANTS = ("shape", "colour", "clutter")
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
# The "clutter" variant, tuned on the default network (80-90% balanced test accuracy for seeds 0 to 3).
DISTRACTOR_SCALE = (0.25, 0.5)  # distractor half-extent over the deciding object's
DISTRACTOR_GAP = 2.0  # pixels between the boxes of any two objects: at least one background pixel
PLACEMENT_TRIES = 20  # random positions tried per distractor; one that never fits is left out
FAINT_SHARE = 0.3  # share of objects drawn faint: their colour keeps a share FAINT_CONTRAST of its
FAINT_CONTRAST = (0.05, 0.3)  # difference from the mean background under them
VARIANT_DEFAULTS = {variant: {"distractors": 2 if variant == "clutter" else 0, "label_noise": 0.0}
                    for variant in VARIANTS}


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
    if variant != "colour":
        return list(SHAPES[:num_classes])
    return [f"hue{round(360 * k / num_classes):03d}" for k in range(num_classes)]


def _check_variant(variant: str, num_classes: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    limit = MAX_COLOUR_CLASSES if variant == "colour" else len(SHAPES)
    if not isinstance(num_classes, int) or not 2 <= num_classes <= limit:
        raise ValueError(f"num_classes must be an integer from 2 to {limit} for the {variant!r} variant, "
                         f"got {num_classes!r}")


def _boxes(generator: torch.Generator, size: int, radius: torch.Tensor) -> torch.Tensor:
    """Boxes ``(centre_x, centre_y, radius)``, ``(n, 3)``: random centres keeping each box inside the image."""
    low = radius + BORDER_MARGIN
    high = size - radius - BORDER_MARGIN
    centre_x = low + (high - low) * torch.rand(len(radius), generator=generator)
    centre_y = low + (high - low) * torch.rand(len(radius), generator=generator)
    return torch.stack([centre_x, centre_y, radius], 1)


def _draw(shape_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``(n, S, S)`` masks of the shapes ``SHAPES[shape_index]`` drawn in their ``boxes``."""
    pixel_centres = torch.arange(size, dtype=torch.float32) + 0.5
    centre_x, centre_y, radius = boxes.unbind(1)
    u = (pixel_centres[None, None, :] - centre_x[:, None, None]) / radius[:, None, None]
    v = (pixel_centres[None, :, None] - centre_y[:, None, None]) / radius[:, None, None]
    masks = torch.zeros(len(boxes), size, size, dtype=torch.bool)
    for index in shape_index.unique().tolist():
        chosen = shape_index == index
        masks[chosen] = _shape_mask(SHAPES[index], u[chosen], v[chosen])
    return masks


def _object_masks(generator: torch.Generator, labels: torch.Tensor, size: int,
                  variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each deciding object's mask ``(n, S, S)`` and box ``(n, 3)``: a disc for "colour", else the class shape."""
    radius = _uniform(generator, len(labels), RADIUS_RANGE[0] * size, RADIUS_RANGE[1] * size)
    boxes = _boxes(generator, size, radius)
    shape_index = torch.full_like(labels, SHAPES.index("disc")) if variant == "colour" else labels
    return _draw(shape_index, boxes, size), boxes


def _object_colours(generator: torch.Generator, labels: torch.Tensor, variant: str, num_classes: int) -> torch.Tensor:
    """RGB in ``[-1, 1]``, ``(n, 3)``: the class's hue, jittered, for "colour"; else a random hue."""
    n = len(labels)
    hue_jitter = _uniform(generator, n, -0.25, 0.25)
    class_hue = ((labels.float() + hue_jitter) / num_classes) % 1.0
    hue = class_hue if variant == "colour" else torch.rand(n, generator=generator)
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


def _apart(boxes: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
    """Whether each box keeps ``DISTRACTOR_GAP`` pixels from every placed box (rows of NaN never collide)."""
    apart = torch.ones(len(boxes), dtype=torch.bool)
    for other in others:
        distance = torch.maximum((boxes[:, 0] - other[:, 0]).abs(), (boxes[:, 1] - other[:, 1]).abs())
        apart &= ~(distance < boxes[:, 2] + other[:, 2] + DISTRACTOR_GAP)
    return apart


def _distractors(generator: torch.Generator, object_boxes: torch.Tensor, size: int, count: int,
                 shapes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` distractors per image: masks ``(n, count, S, S)`` and RGB colours ``(n, count, 3)``.

    Each takes a shape of ``SHAPES[shapes]``, a size and a colour at random, and the first of
    ``PLACEMENT_TRIES`` random positions whose box keeps ``DISTRACTOR_GAP`` pixels from the boxes already
    placed; one that never fits stays empty.
    """
    n = len(object_boxes)
    placed, masks, colours = [object_boxes], [], []
    for _ in range(count):
        shape_index = shapes[torch.randint(len(shapes), (n,), generator=generator)]
        radius = object_boxes[:, 2] * _uniform(generator, n, *DISTRACTOR_SCALE)
        boxes = torch.full((n, 3), math.nan)
        for _ in range(PLACEMENT_TRIES):
            candidates = _boxes(generator, size, radius)
            fits = boxes[:, 2].isnan() & _apart(candidates, placed)
            boxes[fits] = candidates[fits]
        fitted = ~boxes[:, 2].isnan()
        masks.append(_draw(shape_index, boxes, size) & fitted[:, None, None])  # NaN boxes draw nothing
        colours.append(_object_colours(generator, shape_index, "shape", len(SHAPES)))
        placed.append(boxes)
    return torch.stack(masks, 1), torch.stack(colours, 1)


def _paint(generator: torch.Generator, images: torch.Tensor, masks: torch.Tensor, colours: torch.Tensor,
           faint: bool) -> torch.Tensor:
    """Paint flat objects, masks ``(n, k, S, S)`` and RGB colours ``(n, k, 3)``, over ``images``.

    With ``faint``, a share ``FAINT_SHARE`` of the objects, chosen at random, have their colour pulled toward
    the mean of the pixels they cover, keeping a share ``FAINT_CONTRAST`` of the difference.
    """
    if faint:
        weights = masks.float() / masks.sum((2, 3)).clamp(min=1)[..., None, None]
        covered = torch.einsum("nkhw,nchw->nkc", weights, images)
        is_faint = torch.rand(masks.shape[:2], generator=generator) < FAINT_SHARE
        kept = torch.where(is_faint, _uniform(generator, masks.shape[:2], *FAINT_CONTRAST), 1.0)[..., None]
        colours = covered + kept * (colours - covered)
    for index in range(masks.shape[1]):
        images = torch.where(masks[:, index, None], colours[:, index, :, None, None], images)
    return images


def _flip_labels(generator: torch.Generator, labels: torch.Tensor, num_classes: int, share: float) -> torch.Tensor:
    """A copy of ``labels`` with ``round(share * n)`` of them, chosen at random, moved to another random class."""
    count = round(share * len(labels))
    chosen = torch.randperm(len(labels), generator=generator)[:count]
    offset = torch.randint(1, num_classes, (count,), generator=generator)
    return labels.index_put((chosen,), (labels[chosen] + offset) % num_classes)


def _resolve_options(n, image_size, variant, num_classes, distractors, label_noise) -> tuple[int, float]:
    """Check the arguments of :func:`make_synthetic`; fill ``None`` options from :data:`VARIANT_DEFAULTS`."""
    _check_variant(variant, num_classes)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}")
    defaults = VARIANT_DEFAULTS[variant]
    distractors = defaults["distractors"] if distractors is None else distractors
    label_noise = defaults["label_noise"] if label_noise is None else label_noise
    if not isinstance(distractors, int) or distractors < 0:
        raise ValueError(f"distractors must be a non-negative integer, got {distractors!r}")
    if not isinstance(label_noise, (int, float)) or not 0 <= label_noise <= 1:
        raise ValueError(f"label_noise must be a share from 0 to 1, got {label_noise!r}")
    return distractors, label_noise


def _compose(generator: torch.Generator, labels: torch.Tensor, size: int, variant: str, num_classes: int,
             distractors: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, deciding-object masks and distractor masks; draws geometry, colour, background, distractors."""
    masks, boxes = _object_masks(generator, labels, size, variant)
    object_colour = _object_colours(generator, labels, variant, num_classes)
    images = _background(generator, len(labels), size)
    all_masks, all_colours = masks[:, None], object_colour[:, None]
    if distractors:  # the variant's shapes: the class shapes, or discs for "colour"
        shapes = torch.tensor([SHAPES.index("disc")]) if variant == "colour" else torch.arange(num_classes)
        extra_masks, extra_colours = _distractors(generator, boxes, size, distractors, shapes)
        all_masks, all_colours = torch.cat([extra_masks, all_masks], 1), torch.cat([extra_colours, all_colours], 1)
    images = _paint(generator, images, all_masks, all_colours, faint=variant == "clutter")
    images = images + PIXEL_NOISE * torch.randn(images.shape, generator=generator)
    return images.clamp_(-1.0, 1.0), masks, all_masks[:, :-1].any(1)


def make_synthetic(
    n: int,
    image_size: int = 64,
    variant: str = "shape",
    num_classes: int = DEFAULT_NUM_CLASSES,
    seed: int = 0,
    distractors: int | None = None,
    label_noise: float | None = None,
    return_distractors: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Draw ``n`` labelled images, each with one class-deciding object, and the objects' masks.

    Parameters
    ----------
    n : number of images.
    image_size : side ``S`` of the square images, in pixels (at least 16).
    variant : ``"shape"`` (class = shape, colour random), ``"colour"`` (class = hue, every object a disc;
        the experiment proposed in chapter 6 of Lamprou 2023) or ``"clutter"`` (``"shape"`` made harder).
    num_classes : number of classes, 2 to 6 for ``"shape"`` and ``"clutter"``, 2 to 12 for ``"colour"``.
    seed : seed of the ``torch.Generator`` that makes every draw; the same seed gives the same images.
    distractors : smaller objects per image (``None``: :data:`VARIANT_DEFAULTS`, 0 except for ``"clutter"``).
    label_noise : share of the labels moved to another class at random (``None``: the variant's default),
        drawn last, so images and masks do not depend on it.
    return_distractors : also return the distractors' pixels.

    Returns
    -------
    images : float tensor ``(n, 3, S, S)`` in ``[-1, 1]``, like the inputs of Lamprou 2023 (section 4.2).
    labels : long tensor ``(n,)``; before label noise balanced (counts differ by at most one) and shuffled.
    masks : bool tensor ``(n, S, S)``, true on the deciding object's pixels only.
    distractor_masks : bool tensor ``(n, S, S)``, true on the distractors' pixels (if ``return_distractors``).

    Notes
    -----
    Object position, size, background, distractors and (except for ``"colour"``) colour are drawn
    independently of the label, so only the deciding object carries class information; in ``"colour"``
    the masks' statistics are the same for every class.
    """
    distractors, label_noise = _resolve_options(n, image_size, variant, num_classes, distractors, label_noise)
    generator = torch.Generator().manual_seed(int(seed))
    # Balanced labels in a random order; then the images; the label flips come last.
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
    images, masks, distractor_masks = _compose(generator, labels, image_size, variant, num_classes, distractors)
    if label_noise:
        labels = _flip_labels(generator, labels, num_classes, label_noise)
    return (images, labels, masks, distractor_masks) if return_distractors else (images, labels, masks)


class SyntheticDataset(Dataset):
    """Images, labels, ids and ground-truth masks of one split.

    Items are ``(image, label, id)`` like every dataset of the report. ``masks`` (bool ``(N, S, S)``)
    gives the deciding object of each item, for ground-truth localisation checks, and ``distractors``
    (same shape, or ``None``) the distractors' pixels. With ``augment`` the items are flipped horizontally
    and vertically at random (torch's global generator, so seeding torch makes the flips reproducible);
    the masks stay unflipped, so augment only training sets.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, ids: list[str],
                 augment: bool = False, distractors: torch.Tensor | None = None):
        if not len(images) == len(labels) == len(masks) == len(ids):
            raise ValueError("images, labels, masks and ids must have the same length")
        self.images, self.labels, self.masks, self.ids = images, labels, masks, list(ids)
        self.augment, self.distractors = augment, distractors

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
    distractors: int | None = None,
    label_noise: float | None = None,
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
    variant, num_classes, distractors : see :func:`make_synthetic`.
    label_noise : share of flipped labels in the training and validation splits (``None``: the variant's
        default); the test labels stay true, so test accuracy measures what was learnt about the objects.

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
        images, labels, masks, extra = make_synthetic(
            count, input_size, variant, num_classes, seed=_split_seed(seed, split_index), distractors=distractors,
            label_noise=0.0 if split == "test" else label_noise, return_distractors=True)
        ids = [f"synthetic-{split}-{i:0{width}d}" for i in range(count)]
        datasets[split] = SyntheticDataset(images, labels, masks, ids, augment=augment and split == "train",
                                           distractors=extra)
        rows.append(pd.DataFrame({"id": ids, "split": split, "label": labels.numpy()}))
    manifest = pd.concat(rows, ignore_index=True)
    return DatasetSplits(datasets["train"], datasets["val"], datasets["test"],
                         class_names(variant, num_classes), manifest)
