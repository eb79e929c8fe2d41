"""Model surgery: torchvision ResNet and VGG networks in the form the theory needs.

The experiments of the original study (section 4.2 of Lamprou 2023) use networks of the form
*Conv -> Flatten -> class scores* (its Figure 7), the setting of Proposition 4, where the raw
HiResCAM map at the last convolutional block sums to the class score minus the bias (its eq. 20).
:func:`build_model` produces that form, and the two settings the theory compares it with: the CAM
architecture (*Conv -> GAP -> scores*, Propositions 1-3) and networks with a hidden dense layer
(Table 1, last row).

Every model is a :class:`CamNet`: ``features`` (the convolutional part, a ``nn.Sequential`` whose
parameter names are torchvision's, e.g. ``features.layer4.2.conv2.weight`` or ``features.34.weight``)
followed by ``head``. Pretrained weights therefore load into ``features`` unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models as tv

from camfaith.device import evaluating
from camfaith.parameters import check_choice, check_positive_integers

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
VGGS = ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")
ARCHITECTURES = RESNETS + VGGS
HEADS = ("flatten", "gap", "dense", "gap_dense")
VARIANTS = ("intact", "thesis")
MIN_TARGET_SIZE = 7  # smallest target map side that small_input aims for (7x7 is ImageNet's at 224 px)

THEORY = {
    "gap": "Propositions 1-3: CAM, Grad-CAM and HiResCAM agree up to 1/(D1 D2); each sums to score - bias.",
    "flatten": "Proposition 4: the raw HiResCAM map sums to score - bias; Grad-CAM's does not in general.",
    "dense": "Table 1, last row: neither Grad-CAM nor HiResCAM sums to the class score.",
    "gap_dense": "Table 1, last row: neither Grad-CAM nor HiResCAM sums to the class score.",
}


class CamNet(nn.Module):
    """A convolutional part followed by a classification head.

    Attributes describe the surgery: ``arch``, ``head_type``, ``variant``, ``input_size``, ``stages``,
    ``feature_shape`` (C, h, w of the target map), ``removed_downsampling`` (what ``small_input``
    removed) and ``theory`` (which proposition holds at the default target layer).
    """

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _resnet_features(net: tv.ResNet, stages: int) -> nn.Sequential:
    names = ("conv1", "bn1", "relu", "maxpool") + tuple(f"layer{i}" for i in range(1, stages + 1))
    return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))


def _last_stage(features: nn.Sequential) -> nn.Sequential:
    return [module for name, module in features.named_children() if name.startswith("layer")][-1]


def _vgg_features(arch: str, weights: str | None) -> nn.Sequential:
    """VGG's convolutional part. Without weights, skip building the large classifier we discard."""
    if weights is not None:
        return getattr(tv, arch)(weights=weights).features
    config = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[arch.removesuffix("_bn")]
    features = tv.vgg.make_layers(tv.vgg.cfgs[config], batch_norm=arch.endswith("_bn"))
    for module in features.modules():  # torchvision's VGG initialisation of the same layers
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return features


def _strip_last_resnet_block(features: nn.Sequential) -> None:
    """Section 4.2 surgery of Lamprou (2023) on ResNets: the last block ends in its last convolution.

    ResNet34 (basic blocks): drop the block's final BatchNorm. ResNet50 and deeper (bottlenecks):
    drop the final BatchNorm and ReLU. The block is unrolled into a plain ``nn.Sequential`` of its
    layers, so **its residual connection is dropped too**: the block's output is no longer
    ``relu(bn(conv(...)) + identity)`` but ``conv(...)`` alone. The earlier blocks keep theirs.
    """
    blocks = _last_stage(features)
    last = blocks[-1]
    if isinstance(last, tv.resnet.BasicBlock):
        layers = [("conv1", last.conv1), ("bn1", last.bn1), ("relu", nn.ReLU(inplace=False)),
                  ("conv2", last.conv2)]
    else:
        layers = [("conv1", last.conv1), ("bn1", last.bn1), ("relu1", nn.ReLU(inplace=False)),
                  ("conv2", last.conv2), ("bn2", last.bn2), ("relu2", nn.ReLU(inplace=False)),
                  ("conv3", last.conv3)]
    blocks[-1] = nn.Sequential(OrderedDict(layers))


def _resnet_downsampling_steps(features: nn.Sequential):
    """Downsampling steps that ``small_input`` may remove, in the order it removes them."""

    def drop_maxpool():
        features.maxpool = nn.Identity()

    def unstride(layer_name):
        def apply():
            block = getattr(features, layer_name)[0]
            conv = block.conv2 if isinstance(block, tv.resnet.Bottleneck) else block.conv1
            conv.stride = (1, 1)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
        return apply

    kept = [name for name, _ in features.named_children() if name.startswith("layer") and name != "layer1"]
    return [("maxpool", drop_maxpool)] + [(f"{name} stride", unstride(name)) for name in reversed(kept)]


def _vgg_downsampling_steps(features: nn.Sequential):
    """VGG max-pools from the last to the first, replaced by ``Identity`` so indices stay put."""
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]

    def replace(index):
        def apply():
            features[index] = nn.Identity()
        return apply

    return [(f"features.{i} max-pool", replace(i)) for i in reversed(pools)]


def _feature_shape(features: nn.Module, input_size: int) -> tuple[int, int, int]:
    """(C, h, w) of the target map for one ``input_size`` image, from a forward pass in eval mode."""
    try:
        with evaluating(features), torch.no_grad():
            out = features(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as error:
        raise ValueError(
            f"input_size={input_size} is too small for this network ({error}). "
            "Use a larger input_size or small_input=True."
        ) from None
    return tuple(out.shape[1:])


def _check_arguments(arch, num_classes, head, variant, input_size, stages) -> None:
    """Reject bad arguments of :func:`build_model` before any weight is drawn, naming what is accepted."""
    check_choice("arch", arch, ARCHITECTURES)
    check_choice("head", head, HEADS)
    check_choice("variant", variant, VARIANTS)
    check_positive_integers(num_classes=num_classes)
    if not isinstance(input_size, int) or input_size < 8:
        raise ValueError(f"input_size must be an integer of at least 8 pixels, got {input_size!r}")
    family, most = ("ResNet", 4) if arch in RESNETS else ("VGG", 5)
    if stages is not None and stages not in range(1, most + 1):
        raise ValueError(f"a {family} has stages 1 to {most}; got stages={stages!r}")


def _build_features(arch: str, weights: str | None, stages: int | None) -> nn.Sequential:
    """The convolutional part up to the last kept stage (ResNet ``layerN``; VGG through the N-th max-pool)."""
    if arch in RESNETS:
        return _resnet_features(getattr(tv, arch)(weights=weights), stages or 4)
    features = _vgg_features(arch, weights)
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    del features[pools[(stages or 5) - 1] + 1:]
    return features


def _strip_for_thesis(features: nn.Sequential, arch: str) -> None:
    """The ``"thesis"`` variant (section 4.2 of Lamprou 2023): the features end in their last convolution."""
    if arch in RESNETS:
        _strip_last_resnet_block(features)
    else:
        del features[-2:]  # final ReLU and MaxPool


def _remove_downsampling(features: nn.Sequential, arch: str, input_size: int) -> list[str]:
    """``small_input``: remove downsampling steps until the target map is at least
    :data:`MIN_TARGET_SIZE` pixels high (or none is left); returns the names of the removed steps."""
    steps = _resnet_downsampling_steps(features) if arch in RESNETS else _vgg_downsampling_steps(features)
    removed = []
    while _feature_shape(features, input_size)[1] < MIN_TARGET_SIZE and steps:
        name, apply = steps.pop(0)
        apply()
        removed.append(name)
    return removed


def _target_layer(features: nn.Sequential, arch: str, variant: str) -> nn.Module:
    """The module whose output Grad-CAM and HiResCAM explain: the last module of a VGG (after
    ``small_input``, which may have replaced the final max-pool), the last kept ResNet stage, or with
    ``"thesis"`` the last convolution of its last block."""
    if arch in VGGS:
        return features[-1]
    blocks = _last_stage(features)
    return blocks[-1][-1] if variant == "thesis" else blocks


def _head(head: str, feature_shape: tuple[int, int, int], num_classes: int, hidden_features: int) -> nn.Sequential:
    """Flatten or GAP (global average pooling), then one Linear or a hidden Linear + ReLU + Linear."""
    channels, height, width = feature_shape
    flat = head in ("flatten", "dense")
    pool = [nn.Flatten()] if flat else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    inputs = channels * height * width if flat else channels
    if head in ("flatten", "gap"):
        return nn.Sequential(*pool, nn.Linear(inputs, num_classes))
    return nn.Sequential(*pool, nn.Linear(inputs, hidden_features), nn.ReLU(), nn.Linear(hidden_features, num_classes))


def build_model(
    arch: str,
    num_classes: int,
    head: str = "flatten",
    weights: str | None = None,
    input_size: int = 224,
    variant: str = "intact",
    small_input: bool = False,
    stages: int | None = None,
    hidden_features: int = 256,
) -> tuple[CamNet, nn.Module]:
    """Build a ResNet or VGG in *Conv -> head -> class scores* form, with its CAM target layer.

    Parameters
    ----------
    arch : one of :data:`ARCHITECTURES`.
    num_classes : number of class scores.
    head : ``"flatten"`` (Flatten then one Linear: Figure 7 of Lamprou 2023, Proposition 4), ``"gap"``
        (global average pooling then one Linear: the CAM architecture, Propositions 1-3),
        ``"dense"`` / ``"gap_dense"`` (Flatten / GAP, a hidden Linear + ReLU, then the class scores:
        Table 1, last row).
    weights : torchvision weights name (e.g. ``"IMAGENET1K_V1"`` or ``"DEFAULT"``) or ``None`` for
        random initialisation. Loading pretrained weights needs them in torch's cache or the network.
    input_size : side of the square input; the Linear layer of the flatten head is sized for it.
    variant : ``"intact"`` keeps every block, skip connections included, and targets the output of
        the last block, which feeds the head directly. ``"thesis"`` reproduces the stripping of
        section 4.2 of Lamprou (2023): VGG drops its final ReLU and MaxPool; ResNet34 drops the last
        block's final BatchNorm, ResNet50 its final BatchNorm and ReLU (see
        :func:`_strip_last_resnet_block`: the last residual connection is dropped as well). The
        target is then the last convolution.
    small_input : remove downsampling steps (ResNet stem max-pool, then block strides; VGG max-pools
        from the last) until the target map is at least 7x7 for ``input_size``. Weight shapes are unchanged.
    stages : keep only the first ``stages`` convolutional stages (ResNet ``layer1`` .. ``layerN``, 1-4;
        VGG blocks up to the N-th max-pool, 1-5); ``None`` keeps all. The target is the output of the
        last kept stage. With ``small_input``, this is how the original study cut VGG19 so that small
        CIFAR-10 and STL-10 images do not collapse (its section 4.5); on a CPU it makes small, fast networks.
    hidden_features : width of the hidden layer of the dense heads.

    Returns
    -------
    (model, target_layer) : the :class:`CamNet` in eval mode and the module whose output is the map
        Grad-CAM and HiResCAM explain.
    """
    _check_arguments(arch, num_classes, head, variant, input_size, stages)
    features = _build_features(arch, weights, stages)  # random initialisation draws here, then in _head
    if variant == "thesis":
        _strip_for_thesis(features, arch)
    removed = _remove_downsampling(features, arch, input_size) if small_input else []
    target = _target_layer(features, arch, variant)
    feature_shape = _feature_shape(features, input_size)
    model = CamNet(features, _head(head, feature_shape, num_classes, hidden_features))
    described = {"arch": arch, "head_type": head, "variant": variant, "input_size": input_size, "stages": stages,
                 "feature_shape": feature_shape, "removed_downsampling": removed, "theory": THEORY[head]}
    for name, value in described.items():  # the attributes documented in CamNet
        setattr(model, name, value)
    return model.eval(), target


def earlier_target_layer(model: CamNet) -> nn.Module:
    """A convolutional block before the last one (ResNet: the stage before the last, or the last
    stage's first block; VGG: the second-to-last convolution).

    Used to check that the identities of the theory need the *last* block (Table 1).
    """
    if hasattr(model.features, "layer1"):
        stages = [m for name, m in model.features.named_children() if name.startswith("layer")]
        return stages[-2] if len(stages) > 1 else stages[-1][0]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    return convs[-2]
