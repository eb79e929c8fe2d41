"""Ground-truth object masks for some of the images of a file dataset (HAM10000 lesion segmentations).

The synthetic set knows the object of every image (``splits.test.masks``). A real data set may have
masks for only some images: the lesion segmentations of the HAM10000 release on the Harvard Dataverse
(folder ``HAM10000_segmentations_lesion_tschandl``) cover all 10,015 images, the staged copy only 1,257.
:class:`MaskedImageFileDataset` therefore answers per image: :meth:`~MaskedImageFileDataset.mask` gives a
boolean ``(H, W)`` tensor or ``None``, :attr:`~MaskedImageFileDataset.has_mask` and
:attr:`~MaskedImageFileDataset.mask_indices` say which images have one, and
:meth:`~MaskedImageFileDataset.masks_at` stacks a batch for :func:`camfaith.metrics.relevance_mass`.

A mask must go where its image's pixels go. It is first brought to its image's size (a mask may be a
uniform rescale of its image, e.g. the 600x450 original masks of the staged 200x150 images), then every
``Resize`` of the image transform is repeated with nearest-neighbour interpolation, so the mask stays
binary; ``ToTensor`` and ``Normalize`` move no pixel. Random augmentation cannot be followed, so only
splits with a deterministic transform (validation and test, and the training split when not augmented)
get masks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from camfaith.data.base import DatasetSplits
from camfaith.data.samples import ImageFileDataset
from camfaith.data.transforms import DECODE_ERRORS

PIXEL_PRESERVING = (T.ToTensor, T.Normalize)  # steps that change values, never positions


class MaskError(ValueError):
    """A mask file that cannot be read, or whose size does not fit its image."""


def find_masks(folders: Iterable[Path], suffix: str) -> dict[str, Path]:
    """Map sample id to mask file over ``folders`` that exist: ``<id><suffix>``; the first folder wins."""
    found: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.glob(f"*{suffix}")):
                found.setdefault(path.name[: -len(suffix)], path)
    return found


def mask_resizes(transform: Callable) -> list[T.Resize]:
    """The ``Resize`` steps of an image transform, after checking that it moves pixels deterministically.

    Raises
    ------
    ValueError
        If the transform has a step other than ``Resize``, ``ToTensor`` and ``Normalize`` (e.g. the
        random flips and rotations of an augmented training split), which a mask could not follow.
    """
    steps = transform.transforms if isinstance(transform, T.Compose) else [transform]
    unknown = [type(step).__name__ for step in steps if not isinstance(step, (T.Resize, *PIXEL_PRESERVING))]
    if unknown:
        raise ValueError(
            f"masks can follow only Resize, ToTensor and Normalize, but the transform also has {unknown}; "
            f"augmented splits carry no masks (load with augment=False to get masks on the training split)"
        )
    return [step for step in steps if isinstance(step, T.Resize)]


def _read(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("L")
    except DECODE_ERRORS as error:
        raise MaskError(f"cannot read {what} {os.fspath(path)!r} ({type(error).__name__}: {error})") from error


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except DECODE_ERRORS as error:
        raise MaskError(f"cannot read the size of image {os.fspath(path)!r} to fit its mask ({error})") from error


def load_mask(mask_path: str | os.PathLike, image_path: str | os.PathLike, transform: Callable) -> torch.Tensor:
    """The mask of one image as a boolean tensor ``(H, W)`` aligned with ``transform(image)``.

    Nonzero pixels are the object. The mask must have the image's size or be a uniform rescale of it (its
    height within one image pixel of ``image height * mask width / image width``).

    Raises
    ------
    MaskError
        Naming the mask file, if it cannot be decoded or its shape does not fit the image.
    """
    mask_path, image_path = Path(mask_path), Path(image_path)
    mask = _read(mask_path, "mask file")
    (width, height), (mask_width, mask_height) = _image_size(image_path), mask.size
    scale = mask_width / width
    if abs(mask_height - height * scale) > max(1.0, scale):
        raise MaskError(
            f"mask file {os.fspath(mask_path)!r} is {mask_width}x{mask_height} px but its image "
            f"{os.fspath(image_path)!r} is {width}x{height} px; a mask must have its image's size or aspect ratio"
        )
    if mask.size != (width, height):
        mask = TF.resize(mask, [height, width], interpolation=T.InterpolationMode.NEAREST)
    for step in mask_resizes(transform):
        mask = TF.resize(mask, step.size, interpolation=T.InterpolationMode.NEAREST, max_size=step.max_size)
    return torch.from_numpy(np.asarray(mask) > 0)


class MaskedImageFileDataset(ImageFileDataset):
    """An :class:`~camfaith.data.samples.ImageFileDataset` whose images may have a ground-truth mask.

    Parameters
    ----------
    mask_files
        Mask file of each sample id that has one; ids without an entry have no mask.
    Other parameters as for :class:`~camfaith.data.samples.ImageFileDataset`; the transform must be
    deterministic (:func:`mask_resizes`).
    """

    def __init__(self, paths: Sequence, labels: Sequence[int], ids: Sequence[str], transform: Callable,
                 mask_files: Mapping[str, os.PathLike | str], skip_corrupt: bool = False,
                 groups: Sequence[str] | None = None):
        mask_resizes(transform)
        super().__init__(paths, labels, ids, transform, skip_corrupt=skip_corrupt, groups=groups)
        self.mask_files = {str(key): Path(value) for key, value in mask_files.items()}

    @classmethod
    def from_dataset(cls, dataset: ImageFileDataset, mask_files: Mapping[str, os.PathLike | str]):
        """The same samples (and skipped ids) as ``dataset``, with masks; no image is decoded again."""
        masked = cls(dataset.paths, dataset.labels, dataset.ids, dataset.transform, mask_files,
                     groups=dataset.groups)
        masked.skipped_ids = dataset.skipped_ids
        return masked

    @property
    def has_mask(self) -> np.ndarray:
        """Boolean array: whether each sample has a mask file."""
        return np.fromiter((sample_id in self.mask_files for sample_id in self.ids), dtype=bool, count=len(self))

    @property
    def mask_indices(self) -> np.ndarray:
        """Indices of the samples that have a mask, ascending."""
        return np.flatnonzero(self.has_mask)

    def mask(self, index: int) -> torch.Tensor | None:
        """Boolean mask ``(H, W)`` of sample ``index``, aligned with its image, or ``None`` if it has none."""
        path = self.mask_files.get(self.ids[index])
        return None if path is None else load_mask(path, self.paths[index], self.transform)

    def masks_at(self, indices: Sequence[int]) -> torch.Tensor:
        """Stacked masks ``(n, H, W)`` of samples that all have one (e.g. from :attr:`mask_indices`)."""
        indices = [int(index) for index in indices]
        missing = [self.ids[index] for index in indices if self.ids[index] not in self.mask_files]
        if missing:
            raise ValueError(f"{len(missing)} of the requested samples have no mask (e.g. {missing[0]}); "
                             f"choose indices from mask_indices")
        if not indices:
            raise ValueError("no indices given; choose some from mask_indices")
        return torch.stack([self.mask(index) for index in indices])


def attach_masks(splits: DatasetSplits, mask_files: Mapping[str, os.PathLike | str]) -> DatasetSplits:
    """``splits`` with masks on every file split whose transform is deterministic (module docstring)."""
    changed = {}
    for name in ("train", "val", "test"):
        dataset = getattr(splits, name)
        if not isinstance(dataset, ImageFileDataset):
            continue
        try:
            mask_resizes(dataset.transform)
        except ValueError:  # augmented: a mask could not follow the random flips and rotations
            continue
        changed[name] = MaskedImageFileDataset.from_dataset(dataset, mask_files)
    return dataclasses.replace(splits, **changed)
