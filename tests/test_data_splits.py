import numpy as np
import pytest

from camfaith.data.splits import grouped_stratified_assignment, split_sizes, stratified_assignment


@pytest.mark.parametrize(
    ("count", "fractions", "expected"),
    [(300, (0.8, 0.1, 0.1), [240, 30, 30]), (1, (0.8, 0.2), [1, 0]), (7, (0.6, 0.2, 0.2), [4, 2, 1]),
     (10, (0.7, 0.1, 0.2), [7, 1, 2]), (0, (0.5, 0.5), [0, 0])],
)
def test_split_sizes_add_up_and_follow_the_fractions(count, fractions, expected):
    assert split_sizes(count, fractions).tolist() == expected


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.0,), (-0.1, 1.1), ((0.5, 0.5),)])
def test_invalid_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_sizes(10, fractions)


def test_stratified_assignment_keeps_each_class_in_proportion():
    labels = np.repeat([0, 1, 2], [300, 100, 50])
    assignment = stratified_assignment(labels, (0.8, 0.1, 0.1), seed=0)
    for label, size in [(0, 300), (1, 100), (2, 50)]:
        counts = np.bincount(assignment[labels == label], minlength=3)
        assert counts.tolist() == split_sizes(size, (0.8, 0.1, 0.1)).tolist()


def test_stratified_assignment_is_seeded():
    labels = np.repeat([0, 1], 40)
    first = stratified_assignment(labels, (0.5, 0.25, 0.25), seed=3)
    assert np.array_equal(first, stratified_assignment(labels, (0.5, 0.25, 0.25), seed=3))
    assert not np.array_equal(first, stratified_assignment(labels, (0.5, 0.25, 0.25), seed=4))


def _grouped_problem(seed=0):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for group in range(600):
        label = int(rng.integers(0, 3))
        size = int(rng.integers(1, 5))
        labels += [label] * size
        groups += [f"lesion-{group:04d}"] * size
    return np.asarray(labels), np.asarray(groups)


def test_grouped_assignment_never_splits_a_group_and_keeps_class_proportions():
    labels, groups = _grouped_problem()
    assignment = grouped_stratified_assignment(labels, groups, (0.6, 0.2, 0.2), seed=0)
    for group in np.unique(groups):
        assert len(np.unique(assignment[groups == group])) == 1
    for label in range(3):
        shares = np.bincount(assignment[labels == label], minlength=3) / (labels == label).sum()
        assert np.allclose(shares, [0.6, 0.2, 0.2], atol=0.02)


def test_grouped_assignment_accepts_per_class_fractions():
    labels, groups = _grouped_problem(1)
    fractions = {0: (0.5, 0.25, 0.25), 1: (0.7, 0.1, 0.2), 2: (0.6, 0.2, 0.2)}
    assignment = grouped_stratified_assignment(labels, groups, fractions, seed=2)
    for label, target in fractions.items():
        shares = np.bincount(assignment[labels == label], minlength=3) / (labels == label).sum()
        assert np.allclose(shares, target, atol=0.02)


def test_grouped_assignment_is_seeded():
    labels, groups = _grouped_problem()
    first = grouped_stratified_assignment(labels, groups, (0.6, 0.2, 0.2), seed=5)
    assert np.array_equal(first, grouped_stratified_assignment(labels, groups, (0.6, 0.2, 0.2), seed=5))
    assert not np.array_equal(first, grouped_stratified_assignment(labels, groups, (0.6, 0.2, 0.2), seed=6))


def test_a_mixed_group_follows_its_majority_class():
    labels = np.asarray([0, 0, 1, 1, 1, 1])
    groups = np.asarray(["a", "a", "a", "b", "c", "d"])
    assignment = grouped_stratified_assignment(labels, groups, (0.5, 0.5), seed=0)
    assert len(set(assignment[:3])) == 1
    # "a" counts as class 0 with three images; the three single-image groups of class 1 share the rest.
    assert sorted(np.bincount(assignment[3:], minlength=2).tolist()) == [1, 2]


def test_grouped_assignment_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        grouped_stratified_assignment([0, 1], ["a"], (0.5, 0.5), seed=0)
