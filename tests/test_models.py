"""Model surgery: shapes, heads, variants, small inputs and clear errors."""

import pytest
import torch
from torch import nn

from camfaith import build_model
from camfaith.models import ARCHITECTURES


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "vgg11", "vgg11_bn"])
def test_flatten_head_feeds_one_linear_sized_for_the_input(arch):
    model, target = build_model(arch, num_classes=3, input_size=64)
    channels, height, width = model.feature_shape
    assert isinstance(model.head[0], nn.Flatten)
    assert model.head[1].in_features == channels * height * width
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert target in list(model.modules())


@pytest.mark.parametrize("arch", ["resnet18", "vgg11"])
def test_small_input_keeps_a_seven_by_seven_target_map_at_64_px(arch):
    model, _ = build_model(arch, num_classes=2, input_size=64, small_input=True)
    assert model.feature_shape[1] >= 7 and model.feature_shape[2] >= 7
    assert model.removed_downsampling
    plain, _ = build_model(arch, num_classes=2, input_size=64)
    assert plain.feature_shape[1] < 7
    # weight shapes are untouched, so pretrained weights still load
    assert [p.shape for p in model.features.parameters()] == [p.shape for p in plain.features.parameters()]


def test_torchvision_parameter_names_are_kept():
    import torchvision

    model, _ = build_model("resnet18", num_classes=2, input_size=64)
    reference = torchvision.models.resnet18(weights=None)
    names = {name.removeprefix("features.") for name, _ in model.features.named_parameters()}
    assert names == {name for name, _ in reference.named_parameters() if not name.startswith("fc.")}
    vgg, _ = build_model("vgg19", num_classes=2, input_size=64)
    assert "features.34.weight" in dict(vgg.named_parameters())


def test_thesis_variant_ends_in_the_last_convolution():
    model, target = build_model("vgg19", 2, input_size=64, variant="thesis")
    assert isinstance(target, nn.Conv2d) and model.features[-1] is target and len(model.features) == 35
    model, target = build_model("resnet34", 2, input_size=64, variant="thesis")
    assert isinstance(target, nn.Conv2d) and model.features.layer4[-1][-1] is target
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.features.layer4[-1][-1:])
    model, target = build_model("resnet50", 2, input_size=64, variant="thesis")
    assert list(dict(model.features.layer4[-1].named_children())) == [
        "conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "alexnet"}, "resnet18"),
        ({"head": "attention"}, "flatten"),
        ({"variant": "pruned"}, "intact"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": True}, "num_classes"),
        ({"arch": "vgg11", "stages": 6}, "stages 1 to 5"),
        ({"input_size": 16, "arch": "vgg19"}, "input_size"),
    ],
)
def test_bad_arguments_name_the_valid_choices(kwargs, message):
    arguments = {"arch": "resnet18", "num_classes": 2, "input_size": 64} | kwargs
    with pytest.raises(ValueError, match=message):
        build_model(**arguments)


def test_every_listed_architecture_builds():
    for arch in ARCHITECTURES:
        model, _ = build_model(arch, 2, head="gap", input_size=32)
        assert model.arch == arch


def test_stages_cut_the_network_and_target_the_last_kept_stage():
    model, target = build_model("resnet18", 3, input_size=32, small_input=True, stages=3)
    assert target is model.features.layer3 and not hasattr(model.features, "layer4")
    assert model.feature_shape == (256, 8, 8)
    model, target = build_model("vgg11", 3, input_size=32, small_input=True, stages=3, variant="thesis")
    assert isinstance(target, nn.Conv2d) and model.feature_shape[0] == 256
    with pytest.raises(ValueError, match="stages 1 to 4"):
        build_model("resnet18", 3, stages=5)


@pytest.mark.parametrize("head, linears", [("flatten", 1), ("gap", 1), ("dense", 2), ("gap_dense", 2)])
def test_each_head_pools_and_sizes_its_linear_layers(head, linears):
    model, _ = build_model("resnet18", 3, head=head, input_size=32, small_input=True, stages=2, hidden_features=5)
    channels, height, width = model.feature_shape
    pooled = isinstance(model.head[0], nn.AdaptiveAvgPool2d)
    assert pooled == head.startswith("gap")
    layers = [m for m in model.head if isinstance(m, nn.Linear)]
    assert len(layers) == linears and layers[-1].out_features == 3
    assert layers[0].in_features == (channels if pooled else channels * height * width)
    assert linears == 1 or layers[0].out_features == 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
