"""Where a model runs and how: devices, modes, and the optional bfloat16 / channels_last forward passes."""

import pytest
import torch

from camfaith.data.synthetic import synthetic
from camfaith.device import (
    check_precision,
    evaluating,
    forward_precision,
    model_device,
    resolve_device,
    set_memory_format,
)
from camfaith.metrics import aopc, haas
from camfaith.metrics.checks import model_logits
from camfaith.models import build_model
from camfaith.train import TrainConfig, train

CUDA = torch.cuda.is_available()


@pytest.fixture
def network():
    """A real ResNet (convolutions, BatchNorm, a Flatten head) at 32 px, seeded, and a batch of images."""
    torch.manual_seed(0)
    model, _ = build_model("resnet18", 3, input_size=32, small_input=True, stages=2)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model.eval(), images


def is_channels_last(model) -> bool:
    weights = [p for p in model.parameters() if p.ndim == 4]
    return all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


def test_resolve_device_and_model_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    with pytest.raises(ValueError, match="is not a device"):
        resolve_device("gpu0")
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU(), fallback="cpu") == torch.device("cpu")


def test_evaluating_restores_every_module_mode(network):
    model, _ = network
    model.train()
    model.features[1].eval()
    with evaluating(model):
        assert not any(module.training for module in model.modules())
    assert model.training and not model.features[1].training


def test_defaults_change_nothing(network):
    model, images = network
    with torch.no_grad():
        before = model(images)
        assert set_memory_format(model) is model
        after = model_logits(model, images, "float32")
    assert torch.equal(before, after) and after.dtype == torch.float32
    assert all(p.is_contiguous() for p in model.parameters())
    with forward_precision("float32", "cpu"):
        assert not torch.is_autocast_enabled()


def test_channels_last_gives_the_same_logits_on_the_cpu(network):
    model, images = network
    with torch.no_grad():
        contiguous = model_logits(model, images)
        set_memory_format(model, channels_last=True)
        assert is_channels_last(model)
        converted = model_logits(model, images)
    torch.testing.assert_close(converted, contiguous, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="channels_last must be true or false, got 1"):
        set_memory_format(model, 1)


@pytest.mark.parametrize("precision, channels_last, device, message", [
    ("float16", False, "cpu", r"precision='float16' is not known; choose one of: float32, bfloat16"),
    ("float32", "yes", "cpu", "channels_last must be true or false, got 'yes'"),
    ("bfloat16", False, "cpu", r"CUDA autocast, but the model is on cpu; use precision=.float32. on the CPU"),
])
def test_bad_options_are_refused_with_the_fix(precision, channels_last, device, message):
    with pytest.raises(ValueError, match=message):
        check_precision(precision, channels_last, device)


def test_bfloat16_on_the_cpu_is_refused_by_every_forward_pass_that_takes_it(network):
    model, images = network
    images = images.clamp(-1, 1)
    maps = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(2))
    calls = [lambda: model_logits(model, images, "bfloat16"),
             lambda: aopc(model, images, maps, regions=2, precision="bfloat16"),
             lambda: haas(model, images, torch.zeros(4, dtype=torch.long), maps, precision="bfloat16")]
    for call in calls:
        with pytest.raises(ValueError, match="use precision='float32' on the CPU"):
            call()
    with pytest.raises(ValueError, match="precision='half' is not known; choose one of: float32, bfloat16"):
        aopc(model, images, maps, regions=2, precision="half")


def test_train_config_records_the_options_only_when_they_are_not_the_defaults():
    assert "precision" not in TrainConfig().to_dict() and "channels_last" not in TrainConfig().to_dict()
    chosen = TrainConfig(channels_last=True, precision="bfloat16").to_dict()
    assert chosen["channels_last"] is True and chosen["precision"] == "bfloat16"
    assert TrainConfig.from_dict(chosen) == TrainConfig(channels_last=True, precision="bfloat16")
    with pytest.raises(ValueError, match=r"train_config.precision: 'half' is not one of \['float32', 'bfloat16'\]"):
        TrainConfig(precision="half")
    with pytest.raises(ValueError, match=r"train_config.channels_last: 1 is not of type 'boolean' \(expected true"):
        TrainConfig(channels_last=1)


@pytest.mark.slow
def test_training_in_channels_last_follows_the_same_path_on_the_cpu(tmp_path):
    splits = synthetic(input_size=32, n_train=16, n_val=8, n_test=8, num_classes=2)
    histories = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        model, _ = build_model("vgg11", 2, input_size=32, small_input=True, stages=2)
        config = TrainConfig(lr=1e-3, batch_size=8, epochs=2, channels_last=channels_last, trainable_layers="all")
        result = train(model, splits, config, tmp_path / str(channels_last), device="cpu", progress=False)
        histories[channels_last] = result.history
        assert is_channels_last(model) == channels_last
    for column in ("train_loss", "val_loss"):
        torch.testing.assert_close(torch.tensor(histories[True][column].to_numpy()),
                                   torch.tensor(histories[False][column].to_numpy()), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="different setup"):  # the precision is part of the run's setup
        torch.manual_seed(0)
        model, _ = build_model("vgg11", 2, input_size=32, small_input=True, stages=2)
        train(model, splits, TrainConfig(lr=1e-3, batch_size=8, epochs=2, trainable_layers="all"),
              tmp_path / "True", device="cpu", progress=False)


@pytest.mark.skipif(not CUDA or not torch.cuda.is_bf16_supported(), reason="needs a GPU with bfloat16")
def test_bfloat16_autocast_on_the_gpu_scores_in_float32(network):
    model, images = network
    model, images = model.cuda(), images.cuda()
    with torch.no_grad():
        reference = model_logits(model, images)
        set_memory_format(model, channels_last=True)
        with forward_precision("bfloat16", model_device(model)):
            assert torch.is_autocast_enabled("cuda")
        logits = model_logits(model, images, "bfloat16")
    assert logits.dtype == torch.float32 and not torch.is_autocast_enabled("cuda")
    torch.testing.assert_close(logits, reference, rtol=0.05, atol=0.05)
