"""What training minimises and when it stops: the two criteria of section 4.2 of Lamprou (2023).

The loss is a cross-entropy weighted by :func:`class_weights` against class imbalance; training stops
by :class:`EarlyStopping` when neither the validation loss nor the mean validation recall of the
:func:`monitored_classes` (all but the normal ones) has improved for ``patience`` epochs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch


def class_weights(labels: Sequence[int] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cross-entropy class weights from the training labels: inverse frequency, normalised.

    ``w_c = N / (C * n_c)`` for ``N`` samples, ``C`` classes and ``n_c`` samples of class ``c``: each
    class then contributes the same total weight, and the average weight over the samples is 1 (the
    weighted cross-entropy against class imbalance of section 4.2 of Lamprou 2023). Balanced data gives
    all ones.

    Raises
    ------
    ValueError
        If a class has no training sample (its weight would be infinite) or a label is out of range.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    if len(labels) == 0:
        raise ValueError("no training labels to weigh classes by")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    counts = torch.bincount(labels, minlength=num_classes).double()
    absent = torch.nonzero(counts == 0).flatten().tolist()
    if absent:
        raise ValueError(f"classes {absent} have no training sample; the model cannot learn them. "
                         "Check the split, or drop those classes")
    return (len(labels) / (num_classes * counts)).float()


@dataclass
class EarlyStopping:
    """The stopping rule of section 4.2 of Lamprou (2023), and the choice of the epoch to keep.

    An epoch is an *improvement* when its validation loss is below every earlier one **or** its
    monitored mean recall is above every earlier one. Training stops once ``patience`` consecutive
    epochs bring no improvement (``patience=None``: never).

    The *best* epoch, whose weights :func:`camfaith.train.train` restores, is the one with the lowest
    validation loss; among equal losses the one with the higher monitored recall, then the earlier one.
    """

    patience: int | None
    best_loss: float = math.inf
    best_recall: float = -math.inf
    best_epoch: int | None = None
    best_epoch_recall: float = -math.inf
    epochs_without_improvement: int = 0

    def update(self, epoch: int, val_loss: float, monitored_recall: float) -> tuple[bool, bool]:
        """Record one epoch. Returns ``(improved, is_best)``.

        NaN values never count as improvements.
        """
        is_best = val_loss < self.best_loss or (
            val_loss == self.best_loss and monitored_recall > self.best_epoch_recall
        )
        improved = val_loss < self.best_loss or monitored_recall > self.best_recall
        if is_best:
            self.best_epoch, self.best_epoch_recall = epoch, monitored_recall
        self.best_loss = min(self.best_loss, val_loss) if not math.isnan(val_loss) else self.best_loss
        if not math.isnan(monitored_recall):
            self.best_recall = max(self.best_recall, monitored_recall)
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        return improved, is_best

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.epochs_without_improvement >= self.patience

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: Mapping) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def monitored_classes(classes: Sequence[str], normal_classes: Iterable[str]) -> list[int]:
    """Indices of the classes whose recall early stopping watches: all but the normal ones."""
    normal = list(normal_classes)
    unknown = [name for name in normal if name not in classes]
    if unknown:
        raise ValueError(f"normal_classes {unknown} are not classes of this data set; classes: {list(classes)}")
    monitored = [index for index, name in enumerate(classes) if name not in normal]
    if not monitored:
        raise ValueError("every class is listed in normal_classes, so no recall is left to monitor")
    return monitored
