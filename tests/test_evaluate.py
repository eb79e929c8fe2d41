"""Evaluation: Table 4's scores on cases worked out by hand, prediction order, atomic report files."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from camfaith.evaluate import classification_report, predict, predict_logits


def _one_hot(predicted, num_classes):
    return torch.nn.functional.one_hot(torch.as_tensor(predicted), num_classes).float()


def test_perfect_predictions_score_one_everywhere():
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    report = classification_report(_one_hot(labels, 3), labels, ["a", "b", "c"])
    for key in ("balanced_accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "mean_auc"):
        assert report[key] == pytest.approx(1.0), key
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]]
    assert report["support"] == {"a": 2, "b": 2, "c": 3} and report["n"] == 7


def test_known_confusion_matrix():
    # true 0 0 0 0 1 1, predicted 0 0 0 1 1 0: recall 3/4 and 1/2, precision 3/4 and 1/2
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0])
    report = classification_report(_one_hot(predicted, 2), labels, ["benign", "malignant"])
    assert report["confusion_matrix"] == [[3, 1], [1, 1]]
    assert report["recall"] == {"benign": 0.75, "malignant": 0.5}
    assert report["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert report["precision_weighted"] == pytest.approx((4 * 3 / 4 + 2 * 1 / 2) / 6)
    assert report["recall_weighted"] == pytest.approx(4 / 6)  # weighted recall is accuracy
    assert report["f1_weighted"] == pytest.approx((4 * 3 / 4 + 2 * 1 / 2) / 6)


def test_balanced_accuracy_differs_from_accuracy_under_imbalance():
    labels = torch.tensor([0] * 8 + [1] * 2)
    report = classification_report(_one_hot(torch.zeros(10, dtype=torch.long), 2), labels, ["a", "b"])
    assert report["balanced_accuracy"] == pytest.approx(0.5)
    assert report["recall_weighted"] == pytest.approx(0.8)
    assert report["precision_weighted"] == pytest.approx(0.8 * 0.8)  # class b is never predicted: precision 0


def test_binary_auc_by_hand():
    # positive scores 0.9, 0.4; negative scores 0.6, 0.2, 0.1: 5 of the 6 pairs ranked right
    positive_score = torch.tensor([0.9, 0.4, 0.6, 0.2, 0.1])
    labels = torch.tensor([1, 1, 0, 0, 0])
    probabilities = torch.stack([1 - positive_score, positive_score], dim=1)
    report = classification_report(probabilities, labels, ["negative", "positive"])
    assert report["auc"]["positive"] == pytest.approx(5 / 6)
    assert report["auc"]["negative"] == pytest.approx(5 / 6)  # the complementary column ranks the same
    assert report["mean_auc"] == pytest.approx(5 / 6)


def test_agrees_with_scikit_learn_when_every_class_is_present():
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (200,), generator=generator)
    logits = torch.randn(200, 4, generator=generator) + 1.5 * nn.functional.one_hot(labels, 4)
    probabilities = torch.softmax(logits, 1)
    report = classification_report(probabilities, labels, list("abcd"))
    predicted = probabilities.argmax(1)
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert report["f1_weighted"] == pytest.approx(f1_score(labels, predicted, average="weighted"))
    assert report["mean_auc"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr"))


def test_tied_scores_count_half_a_pair():
    positive_score = torch.tensor([0.5, 0.5, 0.1])
    labels = torch.tensor([1, 0, 0])
    report = classification_report(torch.stack([1 - positive_score, positive_score], 1), labels, ["n", "p"])
    assert report["auc"]["p"] == pytest.approx((0.5 + 1) / 2)


def test_classes_absent_from_the_labels_are_left_out():
    labels = torch.tensor([0, 0, 1, 1])
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    with_absent = classification_report(probabilities, labels, ["a", "b", "c"])
    assert with_absent["auc"]["c"] is None and with_absent["recall"]["c"] is None
    assert with_absent["support"]["c"] == 0
    assert with_absent["mean_auc"] == pytest.approx(np.mean([with_absent["auc"]["a"], with_absent["auc"]["b"]]))
    assert with_absent["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)  # over classes a and b only
    assert with_absent["confusion_matrix"][2] == [0, 0, 0]


def test_a_single_present_class_has_no_auc():
    report = classification_report(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]), ["a", "b"])
    assert math.isnan(report["mean_auc"]) and report["balanced_accuracy"] == 0.5


@pytest.mark.parametrize(
    "probabilities, labels, names, message",
    [
        (torch.rand(4), torch.zeros(4, dtype=torch.long), ["a"], r"shape \(N, C\)"),
        (torch.rand(4, 2), torch.zeros(3, dtype=torch.long), ["a", "b"], "labels must have shape"),
        (torch.rand(4, 2), torch.zeros(4, dtype=torch.long), ["a", "b", "c"], "one name per class"),
        (torch.rand(4, 2), torch.tensor([0, 1, 2, 0]), ["a", "b"], r"labels must be integers in \[0, 1\]"),
        (torch.full((2, 2), math.nan), torch.tensor([0, 1]), ["a", "b"], "NaN"),
        (torch.rand(0, 2), torch.zeros(0, dtype=torch.long), ["a", "b"], "no samples"),
    ],
)
def test_bad_inputs_raise(probabilities, labels, names, message):
    with pytest.raises(ValueError, match=message):
        classification_report(probabilities, labels, names)


class _Items(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index]), f"item-{index:03d}"


def test_predict_keeps_order_and_mode_and_matches_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    images, labels = torch.randn(10, 3, 8, 8), torch.arange(10) % 3
    data = _Items(images, labels)
    model.train()
    probabilities, predicted_labels, ids = predict(model, data, device="cpu", batch_size=4)
    assert model.training  # mode restored
    assert probabilities.shape == (10, 3) and torch.allclose(probabilities.sum(1), torch.ones(10))
    assert torch.equal(predicted_labels, labels) and ids == [f"item-{i:03d}" for i in range(10)]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(probabilities, torch.softmax(model(images), 1), atol=1e-6)
    logits, _, _ = predict_logits(model, DataLoader(data, batch_size=3), device="cpu")
    assert torch.allclose(torch.softmax(logits, 1), probabilities, atol=1e-6)
    with pytest.raises(TypeError, match="Dataset or DataLoader"):
        predict(model, images)
