"""The CAM family: equality with pytorch-grad-cam, the hierarchy of faithfulness on real networks, and
feature-space deletion, whose best order on a one-Linear Flatten head the theory knows."""

import numpy as np
import pytest
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from camfaith.cams import activations_and_gradients
from camfaith.family import FAMILY, GRADIENT_METHODS, LIBRARY_NAMES, faithfulness_level, family_maps
from camfaith.metrics import deletion_ranks, feature_deletion, feature_occlusion
from camfaith.theory import random_network


def _model(arch, head="flatten", variant="intact", seed=0):
    return random_network(arch, head, 64, seed, num_classes=4, variant=variant, stages=3)


IMAGES = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("arch, head, variant", [
    ("resnet18", "flatten", "intact"),
    ("vgg11", "flatten", "thesis"),
    ("vgg11", "gap", "intact"),
])
def test_every_map_equals_the_library(arch, head, variant):
    model, target = _model(arch, head, variant)
    ours = family_maps(model, target, IMAGES)
    targets = [ClassifierOutputTarget(int(t)) for t in ours["targets"]]
    # the library ablates a channel with min - 1e7 where the activations are signed (the thesis variant ends
    # in a convolution); the paper, and this package, zero it: compared on ReLU'd activations only
    methods = [m for m in FAMILY if not (m == "ablationcam" and variant == "thesis")]
    for method in methods:
        with getattr(pytorch_grad_cam, LIBRARY_NAMES[method])(model=model, target_layers=[target]) as library:
            theirs = library(input_tensor=IMAGES, targets=targets)
        np.testing.assert_allclose(ours[method].numpy(), theirs, atol=1e-5, err_msg=method)


def test_ablation_zeroes_a_channel_as_the_paper_does_on_signed_activations():
    """Each channel's weight is the relative drop of the score with that channel zeroed in the full network."""
    model, target = _model("vgg11", variant="thesis")
    maps = family_maps(model, target, IMAGES[:1], methods=("ablationcam",), raw=True)
    activations, _, logits, targets = activations_and_gradients(model, target, IMAGES[:1])
    score = logits[0, targets[0]]
    weights = []
    for channel in range(activations.shape[1]):
        def zero(module, inputs, output, channel=channel):
            output = output.clone()
            output[:, channel] = 0
            return output

        handle = target.register_forward_hook(zero)
        with torch.no_grad():
            weights.append((score - model(IMAGES[:1])[0, targets[0]]) / score)
        handle.remove()
    expected = (torch.stack(weights)[None, :, None, None] * activations).sum(dim=1)
    torch.testing.assert_close(maps["raw_ablationcam"], expected, rtol=1e-4, atol=1e-5)


def test_hierarchy_on_a_flatten_head():
    """Location-exact (HiResCAM), complete (XGrad-CAM), neither (Grad-CAM and the rest), on a ResNet."""
    model, target = _model("resnet18")
    maps = family_maps(model, target, IMAGES, methods=GRADIENT_METHODS, raw=True)
    activations, _, logits, targets = activations_and_gradients(model, target, IMAGES)
    linear = model.head[-1]
    weights = linear.weight[targets].reshape(activations.shape)
    shares = (weights * activations).sum(dim=1)  # each location's share of the logit
    totals = logits.gather(1, targets[:, None])[:, 0] - linear.bias[targets]
    torch.testing.assert_close(maps["raw_hirescam"], shares, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(maps["raw_xgradcam"].sum(dim=(1, 2)), totals, rtol=1e-3, atol=1e-4)
    assert not torch.allclose(maps["raw_xgradcam"], shares, rtol=1e-2, atol=1e-3)
    assert not torch.allclose(maps["raw_gradcam"].sum(dim=(1, 2)), totals, rtol=1e-2, atol=1e-3)
    assert [faithfulness_level(m) for m in ("hirescam", "xgradcam", "gradcam")] == \
        ["location-exact", "complete", "neither"]


def test_gap_head_makes_gradcam_xgradcam_and_hirescam_one_map():
    model, target = _model("vgg11", head="gap")
    maps = family_maps(model, target, IMAGES, methods=("gradcam", "xgradcam", "hirescam"), raw=True)
    torch.testing.assert_close(maps["raw_gradcam"], maps["raw_hirescam"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(maps["raw_xgradcam"], maps["raw_hirescam"], rtol=1e-3, atol=1e-5)
    assert {faithfulness_level(m, "gap") for m in ("gradcam", "xgradcam", "hirescam")} == {"location-exact"}


def test_relu_before_the_channel_sum_equals_layercam_on_relu_activations():
    model, target = _model("resnet18")  # the intact ResNet's target is a ReLU output
    maps = family_maps(model, target, IMAGES, methods=("gradcam_elementwise", "layercam"), raw=True)
    torch.testing.assert_close(maps["raw_gradcam_elementwise"], maps["raw_layercam"])


def test_eigencam_is_the_same_map_for_every_class():
    model, target = _model("resnet18")
    first = family_maps(model, target, IMAGES, targets=torch.tensor([0, 0]), methods=("eigencam", "hirescam"))
    second = family_maps(model, target, IMAGES, targets=torch.tensor([3, 3]), methods=("eigencam", "hirescam"))
    assert torch.equal(first["eigencam"], second["eigencam"])
    assert not torch.allclose(first["hirescam"], second["hirescam"])


def test_ablation_needs_a_target_that_feeds_the_head():
    model, _ = _model("resnet18")
    with pytest.raises(ValueError, match="feed model.head"):
        family_maps(model, model.features.layer1, IMAGES, methods=("ablationcam",))
    with pytest.raises(ValueError, match="CAM method"):
        family_maps(model, model.features.layer1, IMAGES, methods=("fullgrad",))


def test_feature_deletion_curve_is_the_sum_of_removed_hirescam_entries():
    """On a one-Linear Flatten head the logit after zeroing locations is the clean logit minus their
    HiResCAM entries, so HiResCAM's order beats every other order, and the control equals HiResCAM."""
    model, target = _model("resnet18")
    maps = family_maps(model, target, IMAGES, methods=GRADIENT_METHODS, raw=True)
    activations, _, logits, targets = activations_and_gradients(model, target, IMAGES)
    hires = maps["raw_hirescam"]
    result = feature_deletion(model.head, activations, hires, targets)
    ranks = deletion_ranks(hires)
    removed_first = hires.flatten(1).gather(1, ranks.argsort(dim=1))
    expected = logits.gather(1, targets[:, None]) - torch.cat([torch.zeros(2, 1), removed_first.cumsum(1)], dim=1)
    torch.testing.assert_close(result.curves, expected, rtol=1e-4, atol=1e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        other = feature_deletion(model.head, activations, torch.randn(hires.shape, generator=generator), targets)
        assert (other.scores <= result.scores + 1e-5).all()
    for method in GRADIENT_METHODS:
        assert (feature_deletion(model.head, activations, maps[f"raw_{method}"], targets).scores
                <= result.scores + 1e-5).all(), method
    torch.testing.assert_close(feature_occlusion(model.head, activations, targets), hires, rtol=1e-4, atol=1e-4)


def test_feature_deletion_ties_and_bad_shapes():
    flat = torch.zeros(1, 3, 3)
    generator = torch.Generator().manual_seed(0)
    assert sorted(deletion_ranks(flat, generator)[0].tolist()) == list(range(9))
    assert deletion_ranks(flat)[0].tolist() == list(range(9))  # stable without a generator
    activations = torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match="target layer's grid"):
        feature_deletion(torch.nn.Flatten(), activations, torch.zeros(1, 6, 6), torch.tensor([0]))


def test_deletion_stages_start_from_the_theorem_and_reach_pixel_space():
    """Stage 1 is feature deletion, where no map beats HiResCAM on any image; every stage scores every map."""
    from camfaith.stages import STAGES, deletion_stages

    model, target = _model("resnet18")
    maps = family_maps(model, target, IMAGES, methods=GRADIENT_METHODS, raw=True)
    activations = activations_and_gradients(model, target, IMAGES)[0]
    raw = {m: maps[f"raw_{m}"] for m in ("gradcam", "hirescam", "xgradcam", "layercam")}
    frame = deletion_stages(model, activations, IMAGES, ["a", "b"], raw, maps["targets"], seed=0, chunk_size=32)
    assert frame.groupby(["stage", "method"]).size().to_dict() == {(s, m): 2 for s in STAGES for m in raw}
    first = frame[frame["stage"] == "raw"].pivot_table(index="id", columns="method", values="score")
    assert (first.drop(columns="hirescam").le(first["hirescam"] + 1e-5, axis=0)).all().all()
    with pytest.raises(ValueError, match="square feature grid"):
        deletion_stages(model, activations[..., :-1], IMAGES, ["a", "b"], raw, maps["targets"], seed=0)
