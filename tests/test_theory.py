"""The propositions of seed chapter 3, checked on real torchvision architectures (random, seeded weights)."""

import pytest
import torch

from camfaith import build_model, identity_residuals, table1
from camfaith.models import earlier_target_layer
from camfaith.theory import random_network, randomise_offsets

TOLERANCE = 1e-4


def _setting(arch, head, seed=0):
    model, target = random_network(arch, head, 64, seed)
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed + 1))
    return model, target, images


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "vgg16_bn"])
def test_gap_head_cam_gradcam_hirescam_agree_and_sum_to_the_score(arch):
    model, target, images = _setting(arch, "gap")
    result = identity_residuals(model, target, images)
    for column in ("cam_residual", "gradcam_residual", "hirescam_residual",  # Propositions 1-3
                   "gradcam_vs_cam", "hirescam_vs_cam", "gradcam_vs_hirescam"):
        assert result[column].max() < TOLERANCE, column


@pytest.mark.parametrize("arch, variant", [
    ("resnet34", "thesis"), ("resnet50", "intact"), ("vgg19", "thesis"), ("vgg19", "intact")])
def test_flatten_head_only_hirescam_sums_to_the_score(arch, variant):
    torch.manual_seed(0)
    model, target = build_model(arch, 5, input_size=64, small_input=True, variant=variant)
    randomise_offsets(model, torch.Generator().manual_seed(0))
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = identity_residuals(model, target, images)
    assert result["hirescam_residual"].max() < TOLERANCE  # Proposition 4, seed eq. 20
    assert result["gradcam_residual"].min() > 10 * TOLERANCE
    assert result["gradcam_vs_hirescam"].min() > 0.01
    assert result["cam_sum"].isna().all()
    score = result["hirescam_sum"] + result["bias"]
    assert ((score - result["score"]).abs() <= 1e-4 * result["score"].abs().clip(lower=1)).all()


@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_earlier_target_layer_breaks_the_identities(head):
    model, _, images = _setting("resnet18", head)
    result = identity_residuals(model, earlier_target_layer(model), images)
    assert result["hirescam_residual"].min() > 100 * TOLERANCE
    assert result["gradcam_residual"].min() > 100 * TOLERANCE


def test_dense_heads_break_the_sum_but_gap_keeps_the_two_maps_equal():
    model, target, images = _setting("vgg11", "dense")
    result = identity_residuals(model, target, images)
    assert result["hirescam_residual"].min() > 100 * TOLERANCE
    model, target, images = _setting("vgg11", "gap_dense")
    result = identity_residuals(model, target, images)
    assert result["hirescam_residual"].min() > 100 * TOLERANCE
    # after GAP the gradient is spatially constant, so Grad-CAM and HiResCAM coincide
    assert result["gradcam_vs_hirescam"].max() < TOLERANCE


def test_without_offsets_a_relu_network_is_homogeneous_and_the_identity_holds_everywhere():
    torch.manual_seed(0)
    model, _ = build_model("vgg11", 5, head="flatten", input_size=64, small_input=True)
    for module in model.modules():  # no offsets anywhere: positively homogeneous (Euler's theorem)
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.bias)
    result = identity_residuals(model, earlier_target_layer(model), torch.randn(3, 3, 64, 64))
    assert result["hirescam_residual"].max() < TOLERANCE


def test_table1_matches_the_seed():
    table = table1("resnet18", input_size=64, n_images=2)
    expected = [  # (Grad-CAM sums, HiResCAM sums, equivalent) per row of TABLE1_SETTINGS
        (True, True, True), (False, False, False), (False, True, False),
        (False, False, False), (False, False, False), (False, False, True),
    ]
    observed = list(table[["Grad-CAM sums to score", "HiResCAM sums to score", "equivalent"]].itertuples(index=False))
    assert [tuple(row) for row in observed] == expected
