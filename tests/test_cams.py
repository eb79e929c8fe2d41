"""Grad-CAM and HiResCAM: equality with pytorch-grad-cam, one pass, frozen backbones, devices."""

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from camfaith import cams, explainer
from camfaith.theory import random_network


def _model(arch, head="flatten", variant="intact", seed=0):
    return random_network(arch, head, 64, seed, num_classes=4, variant=variant)


@pytest.mark.parametrize("arch, head, variant", [
    ("resnet18", "flatten", "intact"),
    ("resnet34", "flatten", "thesis"),
    ("vgg11", "flatten", "intact"),
    ("vgg11", "gap", "thesis"),
])
def test_maps_equal_pytorch_grad_cam(arch, head, variant):
    model, target = _model(arch, head, variant)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ours = cams(model, target, images)
    for method, library_class in (("gradcam", GradCAM), ("hirescam", HiResCAM)):
        with library_class(model=model, target_layers=[target]) as library:
            theirs = library(input_tensor=images, targets=None)
        np.testing.assert_allclose(ours[method].numpy(), theirs, atol=1e-5)
    # explicit targets too
    targets = torch.tensor([0, 1, 3])
    ours = cams(model, target, images, targets=targets)
    with HiResCAM(model=model, target_layers=[target]) as library:
        theirs = library(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    np.testing.assert_allclose(ours["hirescam"].numpy(), theirs, atol=1e-5)


def test_one_forward_and_one_backward_pass():
    model, target = _model("resnet18")
    calls = []
    model.features.conv1.register_forward_hook(lambda *args: calls.append("forward"))
    model.head.register_full_backward_hook(lambda *args: calls.append("backward"))
    cams(model, target, torch.randn(2, 3, 64, 64))
    assert calls == ["forward", "backward"]


def test_raw_maps_are_signed_at_feature_resolution_and_hooks_are_released():
    model, target = _model("resnet18")
    out = cams(model, target, torch.randn(2, 3, 64, 64), raw=True)
    assert out["hirescam"].shape == (2, *model.feature_shape[1:])
    assert (out["hirescam"] < 0).any()
    assert not target._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_frozen_backbone_and_no_grad_context():
    model, target = _model("resnet18")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        frozen = cams(model, target, images)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    assert torch.allclose(frozen["gradcam"], cams(model, target, images)["gradcam"])


def test_explainer_and_bad_targets():
    model, target = _model("vgg11")
    images = torch.randn(2, 3, 64, 64)
    explain = explainer(model, target, "hirescam")
    targets = torch.tensor([1, 2])
    assert torch.equal(explain(images, targets), cams(model, target, images, targets)["hirescam"])
    with pytest.raises(ValueError, match="gradcam"):
        explainer(model, target, "scorecam")
    with pytest.raises(ValueError, match="targets must lie"):
        cams(model, target, images, targets=torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="shape"):
        cams(model, target, images[0])
    with pytest.raises(ValueError, match="cannot process images of shape"):
        cams(model, target, images[:, :2])  # two channels instead of three
