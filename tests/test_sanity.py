"""The model-parameter randomisation test (Adebayo et al. 2018) on tiny seeded networks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from quantus.functions import similarity_func as similarity

from camfaith.cams import cams
from camfaith.sanity import (
    cascade_maps,
    cascading_randomisation,
    map_similarity,
    randomisable_layers,
    randomisation_test,
    trained_identity,
)
from camfaith.theory import random_network


def _model(arch="vgg11", head="flatten", seed=0):
    return random_network(arch, head, 32, seed, num_classes=3, stages=2)  # offsets as a trained network has


def _images(n=8, seed=1):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _min_max(maps):
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / maps.amax(dim=(1, 2), keepdim=True)


def sobel_edges(model, target_layer, images, targets):
    """An 'explanation' that ignores the model and the class: the Sobel edges of the input."""
    grey = images.mean(dim=1, keepdim=True)
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
    gx, gy = F.conv2d(grey, kernel, padding=1), F.conv2d(grey, kernel.transpose(-1, -2), padding=1)
    return {"sobel": _min_max((gx**2 + gy**2).sqrt()[:, 0])}


def _state(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_cascade_goes_from_the_head_to_the_input_and_keeps_earlier_randomisations():
    model, _ = _model("vgg11_bn")
    before = _state(model)
    layers = randomisable_layers(model)
    assert layers[-1] == "head.1" and layers[0] == "features.0"
    steps = list(cascading_randomisation(model, torch.Generator().manual_seed(0)))
    assert [name for name, _ in steps] == layers[::-1]
    for k, (_, randomised) in enumerate(steps, start=1):
        modules = dict(randomised.named_modules())
        for index, name in enumerate(layers[::-1]):  # the first k layers from the head are new, the rest trained
            module, trained = modules[name], dict(model.named_modules())[name]
            if isinstance(module, torch.nn.BatchNorm2d):
                changed = bool((module.running_var == 1).all() and (module.weight == 1).all())
            else:
                changed = not torch.equal(module.weight, trained.weight)
            assert changed == (index < k), (k, name)
    last = dict(steps[-1][1].named_modules())
    for name in layers:  # every layer re-initialised at the last step
        if isinstance(last[name], torch.nn.BatchNorm2d):
            assert (last[name].weight == 1).all() and (last[name].bias == 0).all()
            assert (last[name].running_mean == 0).all() and (last[name].running_var == 1).all()
        else:
            assert not torch.equal(last[name].weight, before[f"{name}.weight"])
            bound = 1 / last[name].weight[0].numel() ** 0.5
            assert last[name].weight.abs().max() <= bound
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())  # untouched


def test_cascade_is_seeded_by_its_generator():
    model, _ = _model()
    first = [_state(m) for _, m in cascading_randomisation(model, torch.Generator().manual_seed(3))]
    again = [_state(m) for _, m in cascading_randomisation(model, torch.Generator().manual_seed(3))]
    other = [_state(m) for _, m in cascading_randomisation(model, torch.Generator().manual_seed(4))]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, again) for k in a)
    assert not torch.equal(first[-1]["features.0.weight"], other[-1]["features.0.weight"])


def test_map_similarity_on_analytic_cases():
    maps = _min_max(torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0)))
    spearman, ssim = map_similarity(maps, maps)
    np.testing.assert_allclose(spearman, 1.0)
    np.testing.assert_allclose(ssim, 1.0)
    spearman, ssim = map_similarity(maps, maps**3)  # a monotone transform keeps every rank
    np.testing.assert_allclose(spearman, 1.0)
    assert (ssim < 0.99).all()
    spearman, _ = map_similarity(maps, 1 - maps)  # reversed ranking
    np.testing.assert_allclose(spearman, -1.0)
    spearman, _ = map_similarity(maps, torch.zeros_like(maps))  # a constant map has no ranking
    assert np.isnan(spearman).all()


def test_map_similarity_matches_quantus():
    generator = torch.Generator().manual_seed(5)
    a = _min_max(torch.rand(3, 20, 20, generator=generator))  # min 0, max 1: Quantus's data range is 1 too
    b = _min_max(a + 0.5 * torch.rand(3, 20, 20, generator=generator))
    b[:, :4, :4] = 0.25  # ties: average ranks on both sides
    spearman, ssim = map_similarity(a, b)
    for i in range(3):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        assert spearman[i] == pytest.approx(similarity.correlation_spearman(x.ravel(), y.ravel()), abs=1e-12)
        assert ssim[i] == pytest.approx(similarity.ssim(x, y), abs=1e-12)


def test_map_similarity_rejects_bad_maps():
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="shape"):
        map_similarity(maps, maps[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        map_similarity(maps, maps * 3)
    with pytest.raises(ValueError, match="7x7"):
        map_similarity(maps[:, :5, :5], maps[:, :5, :5])


def test_a_map_independent_of_the_parameters_fails_the_test():
    model, target = _model()
    frame = randomisation_test(model, target, _images(), torch.Generator().manual_seed(0), explain=sobel_edges)
    last = frame[frame["step"] == frame["step"].max()]
    np.testing.assert_allclose(last[["spearman", "ssim"]].to_numpy(), 1.0, atol=1e-9)


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_cams_depend_on_the_parameters(method):
    model, target = _model()
    frame = randomisation_test(model, target, _images(), torch.Generator().manual_seed(0))
    assert set(frame.columns) == {"step", "layer", "method", "id", "spearman", "ssim"}
    assert list(frame["step"].unique()) == [1, 2, 3] and frame["layer"].iloc[0] == "head.1"
    last = frame[(frame["method"] == method) & (frame["step"] == 3)]
    assert len(last) == 8
    assert last["spearman"].mean() < 0.5 and last["ssim"].mean() < 0.5


def test_randomised_maps_explain_the_trained_models_classes():
    model, target = _model()
    images = _images()
    calls = []

    def recording(model, target_layer, images, targets):
        calls.append(targets.clone())
        return cams(model, target_layer, images, targets)

    steps = list(cascade_maps(model, target, images, torch.Generator().manual_seed(0), batch_size=5,
                              explain=recording))
    predicted = model(images).argmax(dim=1)
    assert [step for step, _, _ in steps] == [0, 1, 2, 3]
    assert all(torch.equal(torch.cat(calls[i:i + 2]), predicted) for i in range(0, len(calls), 2))
    torch.testing.assert_close(steps[0][2]["hirescam"], cams(model, target, images)["hirescam"])


def test_a_foreign_target_layer_and_a_bad_batch_size_are_named():
    model, _ = _model()
    _, other_target = _model()
    with pytest.raises(ValueError, match="not a module of the model"):
        randomisation_test(model, other_target, _images(), torch.Generator().manual_seed(0))
    model, target = _model()
    for bad in (True, 0):  # True is not a batch size
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            list(cascade_maps(model, target, _images(), torch.Generator().manual_seed(0), batch_size=bad))


def test_proposition_4_holds_for_hirescam_on_the_trained_flatten_model_only():
    model, target = _model()
    frame = trained_identity(model, target, _images(), batch_size=3)
    assert len(frame) == 8 and frame["id"].tolist() == list(range(8))
    assert frame["hirescam_residual"].max() < 1e-4  # eq. 20 of Lamprou 2023
    assert frame["gradcam_residual"].median() > 0.05
