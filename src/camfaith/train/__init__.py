"""Training as in section 4.2 and Table 3 of Lamprou (2023), resumable and deterministic.

Lamprou (2023) fine-tunes pretrained networks with a class-weighted cross-entropy and Adam, unfreezing
the layers Table 3 names, with optional L2 weight decay and a step learning-rate schedule, and stops
early when for ``patience`` epochs neither the validation loss decreases nor the mean validation
recall of the monitored (non-normal) classes increases. :func:`train` does the same and adds what a
reproducible report needs: a checkpoint after every epoch (atomic), resumption of an interrupted run,
and seeding of everything random, so two CPU runs with one seed produce the same history.

One concept per module:

- :mod:`~camfaith.train.config`: :class:`TrainConfig`, one column of Table 3;
- :mod:`~camfaith.train.layers`: which layers train (:func:`parse_trainable_layers`, frozen BatchNorm);
- :mod:`~camfaith.train.criteria`: the loss weights and the stopping rule (:class:`EarlyStopping`);
- :mod:`~camfaith.train.checkpoints`: the training folder's files, resume checks, :func:`load_weights`;
- :mod:`~camfaith.train.loop`: :func:`train` itself.
"""

from camfaith.train.checkpoints import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    LAST_CHECKPOINT,
    load_weights,
    training_files,
    weights_fingerprint,
)
from camfaith.train.config import TrainConfig
from camfaith.train.criteria import EarlyStopping, class_weights, monitored_classes
from camfaith.train.layers import (
    apply_trainable_layers,
    frozen_batchnorm_layers,
    parse_trainable_layers,
    set_train_mode,
)
from camfaith.train.loop import TrainingResult, train

__all__ = [
    "BEST_CHECKPOINT",
    "CONFIG_FILE",
    "HISTORY_COLUMNS",
    "HISTORY_FILE",
    "LAST_CHECKPOINT",
    "EarlyStopping",
    "TrainConfig",
    "TrainingResult",
    "apply_trainable_layers",
    "class_weights",
    "frozen_batchnorm_layers",
    "load_weights",
    "monitored_classes",
    "parse_trainable_layers",
    "set_train_mode",
    "train",
    "training_files",
    "weights_fingerprint",
]
