"""The settings of one training run: one column of Table 3 of Lamprou (2023)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from camfaith.configuration import check_settings
from camfaith.parameters import parse_list

_INT_FIELDS = {"scheduler_step", "batch_size", "epochs", "patience", "num_workers", "seed"}
_NON_OPTIONAL = {"lr", "batch_size", "epochs", "normal_classes", "num_workers", "seed", "precision", "channels_last"}
_SPEED_DEFAULTS = {"precision": "float32", "channels_last": False}  # recorded only when they differ


@dataclass
class TrainConfig:
    """One training configuration, one column of Table 3 of Lamprou (2023).

    Attributes
    ----------
    lr : Adam's learning rate.
    weight_decay : L2 penalty passed to Adam (``None`` or 0: none).
    scheduler_step, scheduler_gamma : ``StepLR`` period (epochs) and factor; both ``None`` for a
        constant learning rate.
    batch_size, epochs : mini-batch size and the maximum number of epochs.
    patience : epochs without improvement before stopping (``None``: never stop early); see
        :class:`camfaith.train.EarlyStopping`.
    trainable_layers : the layers to unfreeze, written as in Table 3: comma-separated module names
        (``"layer3,layer4"``), numbered ranges (``"features.19-34"``: VGG ``features`` indices 19 to 34
        inclusive; a list of such entries also works), ``None`` or ``""`` for the head alone, or
        ``"all"`` for the whole network (training from scratch). The head is always trainable. See
        :func:`camfaith.train.parse_trainable_layers`.
    normal_classes : class names whose recall is not monitored for early stopping (section 4.2 of
        Lamprou 2023: Covid-19's ``Normal``); a comma-separated string also works.
    num_workers : DataLoader worker processes.
    seed : seeds the shuffling, augmentation and dropout of every epoch.
    precision, channels_last : how the forward passes run on a GPU: ``"bfloat16"`` autocast and the
        channels_last memory format, or the defaults ``"float32"`` and contiguous; see
        :func:`camfaith.device.forward_precision` (bfloat16 needs CUDA). The losses are computed in float32.
    """

    lr: float = 1e-4
    weight_decay: float | None = None
    scheduler_step: int | None = None
    scheduler_gamma: float | None = None
    batch_size: int = 32
    epochs: int = 10
    patience: int | None = None
    trainable_layers: str | None = None
    normal_classes: tuple[str, ...] = ()
    num_workers: int = 0
    seed: int = 0
    precision: str = "float32"
    channels_last: bool = False

    def __post_init__(self):
        if isinstance(self.normal_classes, str):
            self.normal_classes = parse_list(self.normal_classes, str, allow_empty=True)
        self.normal_classes = tuple(self.normal_classes)
        if isinstance(self.trainable_layers, (list, tuple)):
            self.trainable_layers = ",".join(self.trainable_layers)
        check_settings("train_config", dataclasses.asdict(self) | {"normal_classes": list(self.normal_classes)})
        if (self.scheduler_step is None) != (self.scheduler_gamma is None):
            raise ValueError("give both scheduler_step and scheduler_gamma (StepLR), or neither")

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (``normal_classes`` as a list).

        ``precision`` and ``channels_last`` appear only when they differ from the defaults, so the
        setup of a float32, contiguous run (``config.json``, the resume check) does not name them.
        """
        values = dataclasses.asdict(self)
        values["normal_classes"] = list(self.normal_classes)
        return {key: value for key, value in values.items()
                if key not in _SPEED_DEFAULTS or value != _SPEED_DEFAULTS[key]}

    @classmethod
    def from_dict(cls, values: Mapping, ignore: Iterable[str] = ()) -> TrainConfig:
        """Build from a mapping such as a row of ``table3_training.csv`` or a YAML block.

        Missing entries (``None``, NaN, empty strings) become ``None``; integral floats (pandas reads
        an integer column with gaps as floats) become integers. Keys in ``ignore`` (e.g. ``dataset``,
        ``arch``) are skipped; any other unknown key is an error.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - set(ignore))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        cleaned = {}
        for key in known & set(values):
            value = _plain_value(key, values[key])
            if value is None and key in _NON_OPTIONAL:
                continue  # keep the default
            cleaned[key] = value
        return cls(**cleaned)


def _plain_value(key: str, value):
    """A table or YAML value as a plain Python one: gaps to ``None``, NumPy scalars to ``int``/``float``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and key in _INT_FIELDS:
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
