"""Seeded, stratified (and optionally grouped) train/validation/test assignments.

Table 2 of Lamprou (2023) uses stratified splits for CRC, COVID-19 Radiography and HAM10000, and splits HAM10000
by skin lesion and BreakHis by tissue image so that no rescaled copy of a training image is ever
evaluated (section 4.2 of the original study, "Data preprocessing"); here BreakHis is grouped by patient
case number (:mod:`camfaith.data.breakhis`). Both kinds are pure functions of the labels, the
groups and a seed: the same inputs in the same order always give the same assignment.

Callers sort their samples by a stable id first, so the assignment does not depend on the order in
which the file system lists files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test")

Fractions = Sequence[float]


def _check_fractions(fractions: Fractions) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"fractions must list at least two split shares, got {fractions!r}")
    if (values < 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions!r}")
    return values


def split_sizes(count: int, fractions: Fractions) -> np.ndarray:
    """Split ``count`` items by ``fractions`` with whole numbers that add up to ``count``.

    Largest-remainder rounding; ties go to the earlier split (train before val before test).
    """
    shares = _check_fractions(fractions) * count
    sizes = np.floor(shares + 1e-9).astype(int)
    leftover = count - int(sizes.sum())
    remainders = shares - sizes
    order = sorted(range(len(shares)), key=lambda index: (-round(remainders[index], 9), index))
    for index in order[:leftover]:
        sizes[index] += 1
    return sizes


def stratified_assignment(labels: Sequence[int], fractions: Fractions, seed: int) -> np.ndarray:
    """Assign every sample to a split, class by class, in the given proportions.

    Parameters
    ----------
    labels
        Class index of each sample, in a canonical order (e.g. sorted by id).
    fractions
        Share of each split, e.g. ``(0.8, 0.1, 0.1)`` for COVID-19 Radiography (Table 2 of Lamprou 2023).
    seed
        Random seed of the shuffle inside each class.

    Returns
    -------
    numpy.ndarray
        Split index (position in ``fractions``) of each sample. Each class is divided with
        :func:`split_sizes`, so the class proportions of all splits agree up to rounding.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        sizes = split_sizes(len(members), fractions)
        assignment[members] = np.repeat(np.arange(len(sizes)), sizes)
    return assignment


def _deal_groups(sizes: np.ndarray, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split index of each group of one class, each group given to the split furthest below its target."""
    # Larger groups first (sizes rounded down to a power of two), random order within a size class:
    # the small groups placed last then even out the proportions.
    size_class = np.floor(np.log2(sizes)).astype(np.int64)
    order = np.lexsort((rng.permutation(len(sizes)), -size_class))
    targets = shares * sizes.sum()
    filled = np.zeros_like(targets)
    splits = np.empty(len(sizes), dtype=np.int64)
    for position in order:
        split = int(np.argmax(targets - filled))
        splits[position] = split
        filled[split] += sizes[position]
    return splits


def grouped_stratified_assignment(
    labels: Sequence[int],
    groups: Sequence,
    fractions: Fractions | Mapping[int, Fractions],
    seed: int,
) -> np.ndarray:
    """Assign whole groups to splits so that each class gets close to its target proportions.

    All samples of a group (a HAM10000 lesion, a BreakHis case) land in the same split. A group
    belongs to the class most of its samples have (the smallest label on a tie). Within each class
    the groups are handed out one by one to the split that is furthest below its target number of
    samples: largest first (by size rounded down to a power of two), in an order shuffled with
    ``seed`` within each size class. The last, smallest groups even out the proportions, so the
    splits end close to their targets whenever a class has enough small groups.

    Parameters
    ----------
    labels
        Class index of each sample, in a canonical order.
    groups
        Group key of each sample (any sortable values).
    fractions
        One share per split for every class, or a mapping ``{label: shares}`` for per-class targets
        (BreakHis, Table 2 of Lamprou 2023: benign 58/20/22, malignant 63/18/19).
    seed
        Random seed of the group shuffle.

    Returns
    -------
    numpy.ndarray
        Split index of each sample.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape != groups.shape:
        raise ValueError(f"labels and groups differ in length: {labels.shape} vs {groups.shape}")
    if len(labels) == 0:
        return np.empty(0, dtype=np.int64)
    group_keys, group_of_sample = np.unique(groups, return_inverse=True)
    class_values = np.unique(labels)
    label_position = np.searchsorted(class_values, labels)
    counts = np.zeros((len(group_keys), len(class_values)), dtype=np.int64)
    np.add.at(counts, (group_of_sample, label_position), 1)
    group_class = class_values[counts.argmax(axis=1)]
    group_size = counts.sum(axis=1)

    rng = np.random.default_rng(seed)
    group_split = np.empty(len(group_keys), dtype=np.int64)
    for label in class_values:
        shares = _check_fractions(fractions[int(label)] if isinstance(fractions, Mapping) else fractions)
        members = np.flatnonzero(group_class == label)
        group_split[members] = _deal_groups(group_size[members], shares, rng)
    return group_split[group_of_sample]
