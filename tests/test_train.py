"""Training: Table 3 layer specs, frozen BatchNorm, class weights, early stopping, resume, determinism."""

import json
import math
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset

import camfaith.train as training
import camfaith.train.loop as loop
from camfaith.data.base import DatasetSplits
from camfaith.data.synthetic import synthetic
from camfaith.train import (
    EarlyStopping,
    TrainConfig,
    apply_trainable_layers,
    class_weights,
    frozen_batchnorm_layers,
    load_weights,
    monitored_classes,
    parse_trainable_layers,
    set_train_mode,
    train,
    weights_fingerprint,
)

# ---------------------------------------------------------------------------------------------------
# Fixtures: real torchvision names, a tiny CamNet-shaped network and a tiny data set


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run faster on one CPU thread than on two, and the numbers do not change."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _module_names(builder) -> list[str]:
    with torch.device("meta"):  # names only: no memory, no initialisation cost
        return [name for name, _ in builder(weights=None).named_modules()]


@pytest.fixture(scope="module")
def resnet18_names():
    return _module_names(torchvision.models.resnet18)


@pytest.fixture(scope="module")
def vgg11_names():
    return _module_names(torchvision.models.vgg11)


@pytest.fixture(scope="module")
def vgg19_names():
    return _module_names(torchvision.models.vgg19)


def tiny_model(num_classes: int = 4, seed: int = 0) -> nn.Module:
    """``features`` (torchvision-style named children) then a flatten ``head``, for 16 px inputs."""
    torch.manual_seed(seed)
    features = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1)), ("bn1", nn.BatchNorm2d(8)), ("relu1", nn.ReLU()),
        ("pool", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 8, 3, padding=1)), ("bn2", nn.BatchNorm2d(8)), ("relu2", nn.ReLU()),
    ]))
    head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, num_classes))
    return nn.Sequential(OrderedDict([("features", features), ("head", head)]))


@pytest.fixture(scope="module")
def tiny_splits():
    return synthetic(input_size=16, n_train=48, n_val=24, n_test=8, num_classes=4, seed=0, augment=True)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    state_b = b.state_dict()
    return all(torch.equal(tensor, state_b[name]) for name, tensor in a.state_dict().items())


def _without_timing(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# Trainable layers as Table 3 writes them


def test_table3_resnet_layers_resolve_on_torchvision_names(resnet18_names):
    assert parse_trainable_layers("layer3,layer4", resnet18_names) == ["layer3", "layer4"]
    assert parse_trainable_layers("layer1- layer4", resnet18_names) == ["layer1", "layer2", "layer3", "layer4"]
    assert parse_trainable_layers("layer4, layer4.1", resnet18_names) == ["layer4", "layer4.1"]
    assert parse_trainable_layers("conv1", resnet18_names) == ["conv1"]  # exact name beats layer1.0.conv1


def test_table3_vgg_ranges_include_both_ends(vgg11_names, vgg19_names):
    assert parse_trainable_layers("features.19-34", vgg19_names) == [f"features.{i}" for i in range(19, 35)]
    assert parse_trainable_layers("features.12-20", vgg11_names) == [f"features.{i}" for i in range(12, 21)]
    assert parse_trainable_layers("19-20", vgg11_names) == ["features.19", "features.20"]
    with pytest.raises(ValueError, match=r"'features\.21' \(from 'features\.19-34'\) matches no module"):
        parse_trainable_layers("features.19-34", vgg11_names)  # VGG11's features stop at index 20


@pytest.mark.parametrize("spec", [None, "", "  ", "None"])
def test_no_layers_means_head_only(spec, resnet18_names):
    assert parse_trainable_layers(spec, resnet18_names) == []


def test_all_means_the_root_module(resnet18_names):
    assert parse_trainable_layers("all", resnet18_names) == [""]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("layer5", r"'layer5' \(from 'layer5'\) matches no module"),
        ("layer3,,layer4", "empty entry"),
        ("layer4-layer2", "runs backwards"),
        ("layer3;layer4", "matches no module"),
    ],
)
def test_bad_layer_specs_raise_clear_errors(spec, message, resnet18_names):
    with pytest.raises(ValueError, match=message):
        parse_trainable_layers(spec, resnet18_names)


def test_wrapped_names_match_by_suffix_and_ambiguity_raises():
    wrapped = ["", "features", "features.conv1", "features.layer3", "features.layer3.0",
               "features.layer3.0.conv1", "head", "head.1"]
    assert parse_trainable_layers("layer3", wrapped) == ["features.layer3"]
    assert parse_trainable_layers("conv1", wrapped) == ["features.conv1"]  # the shallowest match
    with pytest.raises(ValueError, match="ambiguous"):
        parse_trainable_layers("x", ["a", "a.x", "b", "b.x"])


def test_apply_trainable_layers_on_build_model_resnet():
    from camfaith.models import build_model

    model, _ = build_model("resnet18", 3, input_size=32, small_input=True)
    assert apply_trainable_layers(model, "layer4") == ["features.layer4", "head"]
    for name, parameter in model.named_parameters():
        assert parameter.requires_grad == name.startswith(("features.layer4.", "head.")), name
    assert apply_trainable_layers(model, None) == ["head"]
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.1.weight", "head.1.bias"}
    assert apply_trainable_layers(model, "all") == [""]
    assert all(parameter.requires_grad for parameter in model.parameters())


def test_apply_trainable_layers_needs_a_head():
    with pytest.raises(ValueError, match="no 'head' module"):
        apply_trainable_layers(nn.Sequential(nn.Conv2d(3, 4, 3)), "0")


def test_frozen_batchnorm_stays_in_eval_mode_on_a_real_resnet():
    from camfaith.models import build_model

    model, _ = build_model("resnet18", 3, input_size=32, small_input=True)
    trainable = apply_trainable_layers(model, "layer3,layer4")
    frozen = set(frozen_batchnorm_layers(model, trainable))
    set_train_mode(model, frozen)
    batchnorms = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, module in batchnorms.items():
        in_trainable_block = name.startswith(("features.layer3.", "features.layer4."))
        assert (name in frozen) == (not in_trainable_block), name
        assert module.training == in_trainable_block, name
    assert model.features.layer1[0].conv1.training  # other layers do go into training mode


def test_frozen_batchnorm_keeps_its_statistics_during_training(tmp_path, tiny_splits):
    model = tiny_model()
    modes = {"bn1": [], "bn2": []}
    for name in modes:
        getattr(model.features, name).register_forward_hook(
            lambda module, inputs, output, name=name: modes[name].append(module.training))
    frozen_mean = model.features.bn1.running_mean.clone()
    trained_mean = model.features.bn2.running_mean.clone()
    config = TrainConfig(lr=1e-2, batch_size=16, epochs=1, trainable_layers="conv2,bn2")
    train(model, tiny_splits, config, tmp_path, device="cpu", progress=False)
    assert not any(modes["bn1"])  # eval mode for every training and validation batch
    assert any(modes["bn2"])
    assert torch.equal(model.features.bn1.running_mean, frozen_mean)
    assert not torch.equal(model.features.bn2.running_mean, trained_mean)
    assert model.features.conv1.weight.requires_grad is False


# ---------------------------------------------------------------------------------------------------
# Class weights, monitored classes, configuration


def test_class_weights_are_normalised_inverse_frequencies():
    weights = class_weights([0, 0, 0, 1], 2)
    assert torch.allclose(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1)]))
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    weights = class_weights(labels, 3)
    assert weights[labels].mean().item() == pytest.approx(1.0)  # average sample weight is one
    per_class_total = torch.bincount(labels).float() * weights
    assert torch.allclose(per_class_total, per_class_total[0].expand(3))  # each class weighs the same
    assert torch.equal(class_weights([0, 1, 2, 0, 1, 2], 3), torch.ones(3))


def test_class_weights_reject_absent_classes_and_bad_labels():
    with pytest.raises(ValueError, match=r"classes \[2\] have no training sample"):
        class_weights([0, 1, 1], 3)
    with pytest.raises(ValueError, match="labels must lie"):
        class_weights([0, 3], 3)


def test_monitored_classes_skip_the_normal_ones():
    classes = ["COVID", "Normal", "Viral Pneumonia"]
    assert monitored_classes(classes, ["Normal"]) == [0, 2]
    assert monitored_classes(classes, []) == [0, 1, 2]
    with pytest.raises(ValueError, match="not classes of this data set"):
        monitored_classes(classes, ["normal"])
    with pytest.raises(ValueError, match="no recall is left"):
        monitored_classes(["a", "b"], ["a", "b"])


def test_config_from_table3_rows():
    table = pd.DataFrame({
        "dataset": ["ham10000", "breakhis", "crc"], "arch": ["vgg19", "resnet50", "resnet34"],
        "trainable_layers": ["features.12-34", np.nan, "layer3,layer4"], "lr": [1e-4, 1e-4, 1e-4],
        "weight_decay": [0.1, np.nan, np.nan], "scheduler_step": [1.0, 1.0, np.nan],
        "scheduler_gamma": [0.9, 0.5, np.nan], "batch_size": [128, 16, 256], "epochs": [22, 12, 22],
        "patience": [20.0, np.nan, 7.0],
    })
    ham, breakhis, crc = (TrainConfig.from_dict(row, ignore=("dataset", "arch")) for row in table.to_dict("records"))
    assert ham == TrainConfig(lr=1e-4, weight_decay=0.1, scheduler_step=1, scheduler_gamma=0.9, batch_size=128,
                              epochs=22, patience=20, trainable_layers="features.12-34")
    assert breakhis.trainable_layers is None and breakhis.patience is None and breakhis.weight_decay is None
    assert crc.patience == 7 and isinstance(crc.patience, int) and crc.scheduler_step is None
    assert TrainConfig.from_dict(ham.to_dict()) == ham
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"lr": 1e-3, "momentum": 0.9})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, r"train_config\.lr: 0 is less than or equal to the minimum of 0 \(expected a positive number\)"),
        ({"scheduler_step": 1}, "both scheduler_step and scheduler_gamma"),
        ({"scheduler_step": 1, "scheduler_gamma": 1.5}, "scheduler_gamma"),
        ({"patience": 0}, "patience"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_config_normalises_class_and_layer_lists():
    config = TrainConfig(normal_classes="Normal, Healthy", trainable_layers=["layer3", "layer4"])
    assert config.normal_classes == ("Normal", "Healthy") and config.trainable_layers == "layer3,layer4"


# ---------------------------------------------------------------------------------------------------
# Early stopping, as a pure rule


def _stop_epoch(patience, losses, recalls):
    stopper = EarlyStopping(patience)
    for epoch, (loss, recall) in enumerate(zip(losses, recalls), start=1):
        stopper.update(epoch, loss, recall)
        if stopper.should_stop:
            return epoch, stopper.best_epoch
    return None, stopper.best_epoch


def test_stops_after_patience_epochs_without_improvement():
    # improvements: epoch 1, 2 (loss), 3 (recall); none at 4 and 5 -> stop after epoch 5
    assert _stop_epoch(2, [1.0, 0.8, 0.9, 0.85, 0.95, 0.1], [0.5, 0.5, 0.6, 0.55, 0.6, 0.9]) == (5, 2)


def test_a_recall_increase_alone_resets_the_count():
    losses = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert _stop_epoch(2, losses, [0.5, 0.4, 0.6, 0.5, 0.7, 0.7]) == (None, 1)
    assert _stop_epoch(2, losses, [0.5, 0.4, 0.4, 0.7, 0.7, 0.7]) == (3, 1)


def test_best_epoch_is_lowest_loss_then_higher_recall_then_earlier():
    assert _stop_epoch(None, [1.0, 1.0, 1.0], [0.5, 0.7, 0.7]) == (None, 2)
    assert _stop_epoch(None, [1.0, 0.9, 0.9], [0.9, 0.1, 0.1]) == (None, 2)


def test_no_patience_never_stops_and_nan_recall_is_no_improvement():
    assert _stop_epoch(None, [1.0] * 30, [0.5] * 30) == (None, 1)
    assert _stop_epoch(1, [1.0, 1.0], [math.nan, math.nan]) == (2, 1)


def test_early_stopping_state_round_trips():
    stopper = EarlyStopping(3)
    stopper.update(1, 0.5, 0.2)
    stopper.update(2, 0.7, 0.1)
    restored = EarlyStopping(3)
    restored.load_state_dict(stopper.state_dict())
    assert restored == stopper


# ---------------------------------------------------------------------------------------------------
# The training loop


def test_two_runs_with_one_seed_are_identical(tmp_path, tiny_splits):
    config = TrainConfig(lr=3e-3, batch_size=16, epochs=3, trainable_layers="all", seed=1)
    first, second = tiny_model(), tiny_model()
    history_first = train(first, tiny_splits, config, tmp_path / "a", device="cpu", progress=False).history
    history_second = train(second, tiny_splits, config, tmp_path / "b", device="cpu", progress=False).history
    pd.testing.assert_frame_equal(_without_timing(history_first), _without_timing(history_second))
    assert _same_weights(first, second)
    other_seed = TrainConfig(lr=3e-3, batch_size=16, epochs=3, trainable_layers="all", seed=2)
    history_other = train(tiny_model(), tiny_splits, other_seed, tmp_path / "c", device="cpu", progress=False).history
    assert not np.allclose(history_first["train_loss"], history_other["train_loss"])


def test_files_are_written_and_describe_the_run(tmp_path, tiny_splits):
    config = TrainConfig(lr=3e-3, batch_size=16, epochs=2, trainable_layers="conv2", seed=0)
    model = tiny_model()
    result = train(model, tiny_splits, config, tmp_path, device="cpu", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "config.json", "history.csv", "last.pt"]
    saved_config = json.loads((tmp_path / "config.json").read_text())
    assert saved_config["train_config"] == config.to_dict()
    assert saved_config["classes"] == tiny_splits.classes
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == list(training.HISTORY_COLUMNS)
    assert history["epoch"].tolist() == [1, 2] and len(result.history) == 2
    assert (history["lr"] == 3e-3).all()
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert best["val_loss"] == result.history["val_loss"].min()
    assert _same_weights(load_weights(tiny_model(seed=5), tmp_path), model)
    assert result.trainable_modules == ["features.conv2", "head"]
    assert not model.training  # handed back in eval mode


def test_scheduler_steps_the_learning_rate(tmp_path, tiny_splits):
    config = TrainConfig(lr=1e-2, batch_size=24, epochs=3, scheduler_step=1, scheduler_gamma=0.5,
                         weight_decay=0.1, trainable_layers="all")
    history = train(tiny_model(), tiny_splits, config, tmp_path, device="cpu", progress=False).history
    assert history["lr"].tolist() == pytest.approx([1e-2, 5e-3, 2.5e-3])


def _scripted_validation(monkeypatch, losses, recalls):
    script = iter(zip(losses, recalls))

    def validate(model, loader, criterion, device, monitored):
        loss, recall = next(script)
        return {"val_loss": loss, "val_balanced_accuracy": recall, "val_monitored_recall": recall}

    monkeypatch.setattr(loop, "_validate", validate)


def test_training_stops_early_and_restores_the_best_epoch(tmp_path, tiny_splits, monkeypatch):
    config = TrainConfig(lr=3e-3, batch_size=16, epochs=10, patience=2, trainable_layers="all")
    _scripted_validation(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.95], [0.5, 0.5, 0.6, 0.55, 0.6])
    model = tiny_model()
    result = train(model, tiny_splits, config, tmp_path / "stopped", device="cpu", progress=False)
    assert result.stopped_early and result.best_epoch == 2
    assert result.history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert result.history["improved"].tolist() == [True, True, True, False, False]
    assert result.history["best"].tolist() == [True, True, False, False, False]

    # The returned weights are those after epoch 2: the same as a run that ends at epoch 2.
    _scripted_validation(monkeypatch, [1.0, 0.8], [0.5, 0.5])
    two_epochs = tiny_model()
    short = TrainConfig(lr=3e-3, batch_size=16, epochs=2, patience=2, trainable_layers="all")
    train(two_epochs, tiny_splits, short, tmp_path / "short", device="cpu", progress=False)
    assert _same_weights(model, two_epochs)
    assert not _same_weights(model, load_weights(tiny_model(), tmp_path / "stopped", which="last"))


class _Interrupted(Exception):
    pass


class _InterruptAfter(Dataset):
    """A training set that raises after serving ``items`` items, as if the run were killed."""

    def __init__(self, base, items):
        self.base, self.items_left = base, items

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        if self.items_left == 0:
            raise _Interrupted
        self.items_left -= 1
        return self.base[index]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_splits):
    config = TrainConfig(lr=3e-3, batch_size=16, epochs=4, scheduler_step=1, scheduler_gamma=0.7,
                         trainable_layers="all", seed=3)
    uninterrupted = tiny_model()
    reference = train(uninterrupted, tiny_splits, config, tmp_path / "whole", device="cpu", progress=False)

    interrupted_splits = DatasetSplits(_InterruptAfter(tiny_splits.train, 2 * 48 + 20), tiny_splits.val,
                                       tiny_splits.test, tiny_splits.classes, tiny_splits.manifest)
    killed = tiny_model()
    with pytest.raises(_Interrupted):
        train(killed, interrupted_splits, config, tmp_path / "resumed", device="cpu", progress=False)
    assert pd.read_csv(tmp_path / "resumed" / "history.csv")["epoch"].tolist() == [1, 2]

    # Resuming needs the model as it was built, not the half-trained object.
    with pytest.raises(ValueError, match="initial weights differ"):
        train(killed, tiny_splits, config, tmp_path / "resumed", device="cpu", progress=False)
    resumed = tiny_model()
    result = train(resumed, tiny_splits, config, tmp_path / "resumed", device="cpu", progress=False)
    assert result.resumed_from_epoch == 2
    assert _same_weights(resumed, uninterrupted)
    pd.testing.assert_frame_equal(_without_timing(result.history), _without_timing(reference.history))

    # A finished run is not trained again: the call just restores its best weights, whether it gets a
    # freshly built model or the very object the run trained (a notebook cell run twice).
    again = tiny_model()
    repeat = train(again, tiny_splits, config, tmp_path / "resumed", device="cpu", progress=False)
    assert repeat.resumed_from_epoch == 4 and _same_weights(again, uninterrupted)
    repeat = train(resumed, tiny_splits, config, tmp_path / "resumed", device="cpu", progress=False)
    assert repeat.resumed_from_epoch == 4 and _same_weights(resumed, uninterrupted)
    saved_setup = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert saved_setup["model"]["initial_weights_sha256"] == weights_fingerprint(tiny_model())


def test_another_config_in_the_same_folder_is_refused(tmp_path, tiny_splits):
    config = TrainConfig(lr=3e-3, batch_size=16, epochs=1, trainable_layers="all")
    train(tiny_model(), tiny_splits, config, tmp_path, device="cpu", progress=False)
    changed = TrainConfig(lr=1e-3, batch_size=16, epochs=1, trainable_layers="all")
    with pytest.raises(ValueError, match=r"different setup \(differs in: .*train_config\.lr"):
        train(tiny_model(), tiny_splits, changed, tmp_path, device="cpu", progress=False)


def test_mismatched_model_and_classes_raise(tmp_path, tiny_splits):
    config = TrainConfig(batch_size=16, epochs=1, trainable_layers="all")
    with pytest.raises(ValueError, match="outputs 3 scores but the data has 4 classes"):
        train(tiny_model(num_classes=3), tiny_splits, config, tmp_path / "a", device="cpu", progress=False)
    with pytest.raises(ValueError, match="not classes of this data set"):
        train(tiny_model(), tiny_splits, TrainConfig(normal_classes=("Normal",)), tmp_path / "b",
              device="cpu", progress=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(tiny_model(), tiny_splits, {"lr": 1e-3}, tmp_path / "c", device="cpu", progress=False)
