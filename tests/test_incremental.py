"""Incremental AOPC: windows recomputed layer by layer give the full forward's answer on every step."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from torch import nn

from camfaith.incremental import (
    AUTO_MIN_SPEEDUP,
    IncrementalFallbackWarning,
    incremental_logits,
    incremental_plan,
)
from camfaith.incremental.windows import Axis, changed_range, walk_model
from camfaith.metrics import aopc, aopc_methods, cell_partition
from camfaith.models import build_model

aopc_module = importlib.import_module("camfaith.metrics.aopc")  # the module, not the function it exports
incremental_module = importlib.import_module("camfaith.incremental.inference")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def calibrated(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Scale the last Linear so clean logits have spread ~3: probabilities are neither 0 nor 1, so a wrong
    step shows in them (random deep networks otherwise give logits in the hundreds)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        scale = 3.0 / float(model(images).std().clamp_min(1e-6))
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    return model


def setting(arch: str, size: int, n: int = 2, seed: int = 0, **options):
    torch.manual_seed(seed)
    model, _ = build_model(arch, 10, input_size=size, **options)
    images = 2 * torch.rand(n, 3, size, size, generator=seeded(seed + 1)) - 1
    maps = torch.rand(n, size, size, generator=seeded(seed + 2))
    return calibrated(model, images), images, maps


def stepwise_logits(model: nn.Module, images, fill, order, regions: int) -> torch.Tensor:
    """The definition: one full forward pass of every ``x_k`` (eq. 6 of Lamprou 2023)."""
    cells = cell_partition(images.shape[2], images.shape[3], regions)
    x, logits = images, []
    with torch.no_grad():
        for step in range(order.shape[1]):
            x = torch.where((cells == order[:, step].view(-1, 1, 1)).unsqueeze(1), fill, x)
            logits.append(model(x))
    return torch.stack(logits, dim=1)


def assert_same_aopc(model, images, maps, regions, **options):
    """Both paths with the same draws: the same generator seed (and tie seed, for random ties)."""
    def run(incremental):
        ties = {"tie_generator": seeded(9)} if options.get("tie_break") == "random" else {}
        return aopc(model, images, maps, regions, generator=seeded(5), incremental=incremental, **options, **ties)

    full, fast = run(False), run(True)
    assert torch.equal(fast.order, full.order) and torch.equal(fast.targets, full.targets)
    probabilities = full.curves[:, 1:]
    assert float(probabilities.std()) > 0.01, "saturated probabilities would hide a wrong step"
    torch.testing.assert_close(fast.curves, full.curves, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.scores, full.scores, atol=1e-6, rtol=0)


ARCHITECTURES = [
    ("resnet18", 64, 8, {}),
    ("resnet34", 48, 6, {"variant": "thesis"}),
    ("resnet50", 64, 4, {}),
    ("resnet50", 64, 5, {"variant": "thesis"}),
    ("vgg11", 56, 14, {"stages": 2}),
    ("vgg11_bn", 64, 8, {}),
    ("vgg16", 48, 6, {"variant": "thesis"}),
    ("vgg19", 32, 5, {"small_input": True, "stages": 3}),
    ("resnet18", 32, 4, {"small_input": True, "stages": 3}),
    ("resnet50", 40, 5, {"small_input": True, "stages": 2, "variant": "thesis"}),
    ("resnet18", 64, 11, {"head": "gap", "stages": 3}),
]


@pytest.mark.parametrize(("arch", "size", "regions", "options"), ARCHITECTURES)
def test_every_step_equals_the_full_forward(arch, size, regions, options):
    model, images, maps = setting(arch, size, **options)
    fill = 2 * torch.rand(images.shape, generator=seeded(3)) - 1
    order = torch.stack([torch.randperm(regions * regions, generator=seeded(4 + i)) for i in range(2)])
    fast = incremental_logits(model, images, fill, order, regions)
    full = stepwise_logits(model, images, fill, order, regions)
    torch.testing.assert_close(fast, full, atol=1e-5 * float(full.abs().max()), rtol=0)
    torch.testing.assert_close(fast.softmax(-1), full.softmax(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize(("arch", "size", "regions", "options"),
                         [("resnet50", 64, 6, {"variant": "thesis"}), ("vgg11_bn", 48, 8, {})])
def test_aopc_equals_the_full_forward_path(order, arch, size, regions, options):
    model, images, maps = setting(arch, size, **options)
    assert_same_aopc(model, images, maps, regions, order=order)


@pytest.mark.parametrize("perturbation, score", [("image_range", "probability"), (0.0, "probability"),
                                                 ("blur", "logit")])
def test_aopc_equals_the_full_path_for_every_fill_and_random_ties(perturbation, score):
    model, images, maps = setting("resnet18", 48, stages=3)
    maps = (maps > 0.7).float()  # many tied cells
    assert_same_aopc(model, images, maps, 6, perturbation=perturbation, tie_break="random", chunk_size=5, score=score)


def test_aopc_methods_give_the_same_pairs_on_both_paths():
    model, images, maps = setting("vgg11", 32, n=3)
    both = {"a": maps, "b": maps.flip(-1)}
    full = aopc_methods(model, images, both, regions=4, seed=3, orders=("morf", "lerf"), incremental=False)
    fast = aopc_methods(model, images, both, regions=4, seed=3, orders=("morf", "lerf"), incremental=True)
    assert full.keys() == fast.keys()
    for key in full:
        torch.testing.assert_close(fast[key].curves, full[key].curves, atol=1e-5, rtol=0)
        torch.testing.assert_close(fast[key].scores, full[key].scores, atol=1e-6, rtol=0)


def test_groups_and_chunks_do_not_change_the_answer(monkeypatch):
    model, images, maps = setting("resnet18", 32, n=3, small_input=True, stages=2)
    fill = 2 * torch.rand(images.shape, generator=seeded(3)) - 1
    order = torch.stack([torch.randperm(16, generator=seeded(4 + i)) for i in range(3)])
    together = incremental_logits(model, images, fill, order, 4, chunk_size=64)
    monkeypatch.setattr(incremental_module, "CACHE_BYTES", 1)  # one image per group
    alone = incremental_logits(model, images, fill, order, 4, chunk_size=2)
    torch.testing.assert_close(alone, together, atol=1e-5 * float(together.abs().max()), rtol=0)


def test_unusual_geometry_equals_the_full_forward():
    """Stride above the kernel, dilation, groups, padded average- and max-pooling, a padded 1x1 convolution."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AvgPool2d(3, stride=2, padding=1), nn.Conv2d(8, 8, 1, stride=3, padding=1),
        nn.Conv2d(8, 16, 3, padding=1, groups=2), nn.MaxPool2d(3, stride=1, padding=1, dilation=1), nn.ReLU(),
        nn.Conv2d(16, 16, (3, 1), padding=(1, 0)), nn.Identity(), nn.Flatten(), nn.LazyLinear(10),
    ).eval()
    images = 2 * torch.rand(2, 3, 40, 36, generator=seeded(1)) - 1
    model(images)  # materialise the lazy layer
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    fill = 2 * torch.rand(images.shape, generator=seeded(3)) - 1
    order = torch.stack([torch.randperm(36, generator=seeded(4 + i)) for i in range(2)])
    full = stepwise_logits(model, images, fill, order, 6)
    torch.testing.assert_close(incremental_logits(model, images, fill, order, 6), full,
                               atol=1e-5 * float(full.abs().max()), rtol=0)


def test_changed_range_is_the_receptive_field():
    conv = Axis(kernel=3, stride=2, padding=1, dilation=1)  # output o reads inputs 2o-1 .. 2o+1
    assert changed_range(4, 6, conv, 8) == (2, 4)
    assert changed_range(5, 5, conv, 8) == (0, 0)
    assert changed_range(1, 2, Axis(1, 2, 0, 1), 4) == (0, 0)  # a 1x1 stride-2 layer never reads odd inputs
    for kernel, stride, padding, dilation in [(3, 1, 1, 1), (7, 2, 3, 1), (3, 2, 2, 2), (2, 3, 0, 1), (5, 1, 0, 2)]:
        axis, size = Axis(kernel, stride, padding, dilation), 23
        size_out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        for low in range(size):
            for high in range(low + 1, min(size, low + 6) + 1):
                reads = [o for o in range(size_out) if any(low <= o * stride - padding + dilation * i < high
                                                           for i in range(kernel))]
                first, stop = changed_range(low, high, axis, size_out)
                assert set(reads) <= set(range(first, stop))  # every output that reads a change is recomputed
                if dilation == 1 and stride <= kernel:  # without gaps in the receptive field it is tight
                    assert (first, stop) == (reads[0], reads[-1] + 1)


class Scale(nn.Module):
    def forward(self, x):
        return 2 * x


def unsupported_model():
    model, images, maps = setting("vgg11", 32, stages=2)
    model.features[1] = Scale()  # a module the walker does not know, inside the features
    return model, images, maps


def test_an_unknown_module_falls_back_with_one_warning():
    model, images, maps = unsupported_model()
    with pytest.warns(IncrementalFallbackWarning, match="Scale") as caught:
        auto = aopc_methods(model, images, {"a": maps, "b": 1 - maps}, regions=4, orders=("morf", "lerf"))
    assert len(caught) == 1
    full = aopc_methods(model, images, {"a": maps, "b": 1 - maps}, regions=4, orders=("morf", "lerf"),
                        incremental=False)
    for key in full:
        assert torch.equal(auto[key].scores, full[key].scores)
    with pytest.raises(ValueError, match="incremental=True is impossible.*features.1: Scale"):
        aopc(model, images, maps, regions=4, incremental=True)


def test_road_and_training_batchnorm_and_hooks_are_unsupported():
    model, images, maps = setting("vgg11_bn", 32, stages=2)
    with warnings.catch_warnings():  # "auto" takes the full path for ROAD without a note: it is documented
        warnings.simplefilter("error")
        aopc(model, images, maps, regions=4, perturbation="road", generator=seeded(0))
    with pytest.raises(ValueError, match="road"):
        aopc(model, images, maps, regions=4, perturbation="road", incremental=True)
    assert "training mode" in incremental_plan(model.train(), 32, 4).reason
    model.eval()
    handle = model.features[0].register_forward_hook(lambda module, inputs, output: output)
    assert "forward hooks" in incremental_plan(model, 32, 4).reason
    handle.remove()
    assert incremental_plan(model, 32, 4).full_cost > 0
    assert "not a CamNet" in incremental_plan(Scale(), 32, 4).reason


def test_the_windows_refuse_a_precision_other_than_float32():
    model, images, maps = setting("vgg11", 32, stages=2)
    assert incremental_module.schedule_for(model, images, 4, "uniform", True, 2) is not None
    with pytest.raises(ValueError, match="impossible here: the forward passes run in bfloat16"):
        incremental_module.schedule_for(model, images, 4, "uniform", True, 2, precision="bfloat16")


def test_a_plain_sequential_is_walked_up_to_its_head():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), Scale(), nn.Flatten(),
                          nn.Linear(4 * 14 * 14, 3)).eval()
    graph = walk_model(model)
    assert len(graph.nodes) == 2 and isinstance(graph.head[0], Scale)
    images, maps = torch.rand(2, 3, 16, 16, generator=seeded(1)), torch.rand(2, 16, 16, generator=seeded(2))
    assert_same_aopc(calibrated(model, images), images, maps, 4)


def test_auto_takes_the_path_the_plan_names(monkeypatch):
    big, _ = build_model("vgg19", 10, input_size=224, variant="thesis")
    plan = incremental_plan(big, 224, 14, batch=2)
    assert plan.incremental and plan.speedup >= AUTO_MIN_SPEEDUP
    assert plan.speedup > incremental_plan(big, 224, 4, batch=2).speedup  # more steps share one seeding pass
    assert 0 < plan.windowed_units < plan.units
    one_cell = incremental_plan(big, 224, 1, batch=2)  # one step: seeding the caches costs a full pass already
    assert not one_cell.incremental and one_cell.speedup < AUTO_MIN_SPEEDUP
    on_gpu = incremental_plan(big, 224, 14, batch=2, device="cuda")  # the same estimate, but not on AUTO_DEVICES
    assert not on_gpu.incremental and on_gpu.speedup == plan.speedup and "cuda" in on_gpu.reason

    calls = []
    monkeypatch.setattr(aopc_module, "incremental_logits",
                        lambda *args: calls.append(args) or incremental_logits(*args))
    model, images, maps = setting("vgg11", 64, stages=2)
    choices = []
    for regions in (1, 4):
        choices.append(incremental_plan(model, 64, regions, batch=2).incremental)
        before = len(calls)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a supported model takes the full path silently
            aopc(model, images, maps, regions=regions)
        assert (len(calls) > before) == choices[-1]
    assert choices == [False, True]


def test_bad_incremental_arguments_are_rejected():
    model, images, maps = setting("vgg11", 32, stages=1)
    with pytest.raises(ValueError, match="incremental must be True, False or 'auto'"):
        aopc(model, images, maps, regions=4, incremental="yes")
    with pytest.raises(ValueError, match="incremental must be"):
        aopc(model, images, maps, regions=4, incremental=1)
    with pytest.raises(ValueError, match="input_size"):
        incremental_plan(model, (32,), 4)
    with pytest.raises(ValueError, match="regions"):
        incremental_plan(model, 32, 40)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "regions", "options"),
                         [("resnet18", 14, {"stages": 2}), ("vgg11_bn", 11, {"stages": 2, "variant": "thesis"})])
def test_224_pixel_aopc_equals_the_full_forward_path(arch, regions, options):
    model, images, maps = setting(arch, 224, n=1, **options)
    assert_same_aopc(model, images, maps, regions)
