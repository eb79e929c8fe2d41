"""Test-set evaluation: the classification scores of Table 4 of Lamprou (2023).

:func:`predict` runs a model over a data set; :func:`classification_report` turns its probabilities
into balanced accuracy, weighted precision / recall / F1, mean one-vs-rest AUC and the confusion
matrix; :meth:`camfaith.runs.Run.save_report` writes them into the run folder atomically.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from camfaith.device import evaluating, resolve_device
from camfaith.parameters import check_positive_integers

SUMMARY_KEYS = ("balanced_accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "mean_auc")


def _as_loader(data: Dataset | DataLoader, batch_size: int, num_workers: int) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset):
        raise TypeError(f"expected a torch Dataset or DataLoader, got {type(data).__name__}")
    check_positive_integers(batch_size=batch_size)
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def predict_logits(
    model: nn.Module,
    data: Dataset | DataLoader,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Class scores of ``model`` on every item of ``data``, in the data's order.

    ``data`` yields ``(image, label, id)`` items (or batches of them, for a ``DataLoader``). The model
    runs in eval mode and every module is put back into its previous mode afterwards.

    Returns
    -------
    logits : float tensor ``(N, C)`` on the CPU.
    labels : long tensor ``(N,)``.
    ids : list of ``N`` strings.
    """
    device = resolve_device(device)
    loader = _as_loader(data, batch_size, num_workers)
    logits, labels, ids = [], [], []
    with evaluating(model), torch.inference_mode():
        for images, batch_labels, batch_ids in tqdm(loader, desc="predict", leave=False, disable=not progress):
            logits.append(model(images.to(device)).float().cpu())
            labels.append(torch.as_tensor(batch_labels, dtype=torch.long))
            ids.extend(batch_ids)
    if not logits:
        raise ValueError("the data set is empty: nothing to predict")
    return torch.cat(logits), torch.cat(labels), ids


def predict(
    model: nn.Module,
    data: Dataset | DataLoader,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Softmax probabilities of ``model`` on every item of ``data`` (see :func:`predict_logits`).

    Returns
    -------
    probabilities : float tensor ``(N, C)`` on the CPU, rows summing to one.
    labels : long tensor ``(N,)``.
    ids : list of ``N`` strings.
    """
    logits, labels, ids = predict_logits(model, data, device, batch_size, num_workers, progress)
    return torch.softmax(logits, dim=1), labels, ids


def _check_inputs(probabilities, labels, class_names) -> tuple[np.ndarray, np.ndarray]:
    scores = torch.as_tensor(probabilities).detach().cpu().double().numpy()
    truth = torch.as_tensor(labels).detach().cpu().numpy()
    if scores.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, C), got {tuple(scores.shape)}")
    if truth.ndim != 1 or len(truth) != len(scores):
        raise ValueError(f"labels must have shape ({len(scores)},) to match probabilities, got {truth.shape}")
    if len(truth) == 0:
        raise ValueError("no samples to evaluate")
    if scores.shape[1] != len(class_names):
        raise ValueError(f"probabilities have {scores.shape[1]} columns but {len(class_names)} class names "
                         "were given; pass one name per class")
    if not np.all(np.isfinite(scores)):
        raise ValueError("probabilities contain NaN or infinite values")
    if not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= scores.shape[1]:
        raise ValueError(f"labels must be integers in [0, {scores.shape[1] - 1}]")
    return scores, truth.astype(np.int64)


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix (rows = true class); NaN for absent classes."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)


def _by_name(class_names: list[str], values: np.ndarray) -> dict:
    """Per-class values keyed by class name, ``None`` where undefined (NaN)."""
    return {name: (None if np.isnan(value) else float(value)) for name, value in zip(class_names, values)}


def classification_report(
    probabilities: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    class_names: list[str],
) -> dict:
    """Test-set scores as in Table 4 of Lamprou (2023).

    Parameters
    ----------
    probabilities : ``(N, C)`` class probabilities (any scores work: only the arg-max and the ranking
        of each column are used).
    labels : ``(N,)`` true classes in ``0..C-1``.
    class_names : the ``C`` class names.

    Returns
    -------
    dict with
        ``balanced_accuracy`` : mean recall over the classes present in ``labels``;
        ``precision_weighted``, ``recall_weighted``, ``f1_weighted`` : per-class scores averaged with
        weights proportional to each class's support (absent classes weigh nothing; a class never
        predicted has precision 0). Weighted recall equals accuracy;
        ``mean_auc`` : mean over classes of the one-vs-rest ROC AUC of that class's column. A class
        absent from ``labels`` has no AUC and is left out of the mean (its entry in ``auc`` is
        ``None``); with a single class present no AUC is defined and ``mean_auc`` is NaN;
        ``recall``, ``auc`` : per-class values keyed by class name (``None`` where undefined);
        ``support`` : per-class counts; ``confusion_matrix`` : ``C x C`` list of lists, rows = true,
        columns = predicted (scikit-learn's convention); ``class_names``, ``n``.
    """
    scores, truth = _check_inputs(probabilities, labels, class_names)
    num_classes = len(class_names)
    predicted = scores.argmax(axis=1)
    every_class = list(range(num_classes))

    confusion = confusion_matrix(truth, predicted, labels=every_class)
    recall = per_class_recall(confusion)
    present = confusion.sum(axis=1) > 0
    precision_w, recall_w, f1_w, _ = precision_recall_fscore_support(
        truth, predicted, labels=every_class, average="weighted", zero_division=0
    )

    auc = np.full(num_classes, np.nan)
    if present.sum() >= 2:
        for c in np.flatnonzero(present):
            auc[c] = roc_auc_score(truth == c, scores[:, c])
    mean_auc = float(np.nanmean(auc)) if np.isfinite(auc).any() else math.nan
    return {
        "balanced_accuracy": float(np.nanmean(recall)),
        "precision_weighted": float(precision_w),
        "recall_weighted": float(recall_w),
        "f1_weighted": float(f1_w),
        "mean_auc": mean_auc,
        "recall": _by_name(class_names, recall),
        "auc": _by_name(class_names, auc),
        "support": {name: int(count) for name, count in zip(class_names, confusion.sum(axis=1))},
        "confusion_matrix": confusion.tolist(),
        "class_names": list(class_names),
        "n": int(len(truth)),
    }


def confusion_frame(report: dict) -> pd.DataFrame:
    """The report's confusion matrix as a table: a ``true`` column, then one column per predicted class."""
    names = report["class_names"]
    frame = pd.DataFrame(report["confusion_matrix"], columns=names)
    frame.insert(0, "true", names)
    return frame
