"""Model surgery: torchvision ResNet and VGG networks in the form the theory needs.

The seed's experiments (section 4.2) use networks of the form *Conv -> Flatten -> class scores*
(its Figure 7), the setting of Proposition 4, where the raw HiResCAM map at the last convolutional
block sums to the class score minus the bias (seed eq. 20). :func:`build_model` produces that form,
and the two settings the theory compares it with: the CAM architecture (*Conv -> GAP -> scores*,
Propositions 1-3) and networks with a hidden dense layer (Table 1, last row).

Every model is a :class:`CamNet`: ``features`` (the convolutional part, a ``nn.Sequential`` whose
parameter names are torchvision's, e.g. ``features.layer4.2.conv2.weight`` or ``features.34.weight``)
followed by ``head``. Pretrained weights therefore load into ``features`` unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision import models as tv

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

    Attributes describe the surgery: ``arch``, ``head_type``, ``variant``, ``input_size``,
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


def _strip_last_resnet_block(features: nn.Sequential) -> nn.Module:
    """Seed section 4.2 surgery on ResNets: the last block ends in its last convolution.

    ResNet34 (basic blocks): drop the block's final BatchNorm. ResNet50 and deeper (bottlenecks):
    drop the final BatchNorm and ReLU. The block is unrolled into a plain ``nn.Sequential`` of its
    layers, so **its residual connection is dropped too**: the block's output is no longer
    ``relu(bn(conv(...)) + identity)`` but ``conv(...)`` alone. The earlier blocks keep theirs.
    Returns the new target layer (the last convolution).
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
    return blocks[-1][-1]


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
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as error:
        raise ValueError(
            f"input_size={input_size} is too small for this network ({error}). "
            "Use a larger input_size or small_input=True."
        ) from None
    finally:
        features.train(was_training)
    return tuple(out.shape[1:])


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
    head : ``"flatten"`` (Flatten then one Linear: the seed's Figure 7, Proposition 4), ``"gap"``
        (global average pooling then one Linear: the CAM architecture, Propositions 1-3),
        ``"dense"`` / ``"gap_dense"`` (Flatten / GAP, a hidden Linear + ReLU, then the class scores:
        Table 1, last row).
    weights : torchvision weights name (e.g. ``"IMAGENET1K_V1"`` or ``"DEFAULT"``) or ``None`` for
        random initialisation. Loading pretrained weights needs them in torch's cache or the network.
    input_size : side of the square input; the Linear layer of the flatten head is sized for it.
    variant : ``"intact"`` keeps every block, skip connections included, and targets the output of
        the last block (which feeds the head through Flatten alone). ``"thesis"`` reproduces the
        stripping of seed section 4.2: VGG drops its final ReLU and MaxPool; ResNet34 drops the last
        block's final BatchNorm, ResNet50 its final BatchNorm and ReLU (see
        :func:`_strip_last_resnet_block`: the last residual connection is dropped as well). The
        target is then the last convolution.
    small_input : remove downsampling steps (ResNet stem max-pool, then block strides; VGG max-pools
        from the last) until the target map is at least 7x7 for ``input_size``, the way the seed cut
        VGG19 for CIFAR-10 and STL-10 (section 4.5). Weight shapes are unchanged.
    stages : keep only the first ``stages`` convolutional stages (ResNet ``layer1`` .. ``layerN``, 1-4;
        VGG blocks up to the N-th max-pool, 1-5); ``None`` keeps all. The seed cut VGG19 this way so
        that small CIFAR-10 and STL-10 images do not collapse (section 4.5); on a CPU it also makes
        small, fast networks. The target is the output of the last kept stage.
    hidden_features : width of the hidden layer of the dense heads.

    Returns
    -------
    (model, target_layer) : the :class:`CamNet` in eval mode and the module whose output is the map
        Grad-CAM and HiResCAM explain.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(input_size, int) or input_size < 8:
        raise ValueError(f"input_size must be an integer of at least 8 pixels, got {input_size!r}")

    if arch in RESNETS:
        if stages is not None and stages not in (1, 2, 3, 4):
            raise ValueError(f"a ResNet has stages 1 to 4; got stages={stages!r}")
        features = _resnet_features(getattr(tv, arch)(weights=weights), stages or 4)
        target = _last_stage(features)
        if variant == "thesis":
            target = _strip_last_resnet_block(features)
        steps = _resnet_downsampling_steps(features)
    else:
        if stages is not None and stages not in (1, 2, 3, 4, 5):
            raise ValueError(f"a VGG has stages 1 to 5; got stages={stages!r}")
        features = _vgg_features(arch, weights)
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        del features[pools[(stages or 5) - 1] + 1:]
        if variant == "thesis":
            del features[-2:]  # final ReLU and MaxPool
        steps = _vgg_downsampling_steps(features)

    removed = []
    if small_input:
        while _feature_shape(features, input_size)[1] < MIN_TARGET_SIZE and steps:
            name, apply = steps.pop(0)
            apply()
            removed.append(name)
    if arch in VGGS:
        target = features[-1]  # after small_input, which may have replaced the final max-pool
    channels, height, width = _feature_shape(features, input_size)

    if head == "flatten":
        layers = [nn.Flatten(), nn.Linear(channels * height * width, num_classes)]
    elif head == "gap":
        layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    else:
        pool = [nn.Flatten()] if head == "dense" else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        inputs = channels * height * width if head == "dense" else channels
        layers = pool + [nn.Linear(inputs, hidden_features), nn.ReLU(), nn.Linear(hidden_features, num_classes)]

    model = CamNet(features, nn.Sequential(*layers))
    model.arch, model.head_type, model.variant, model.input_size = arch, head, variant, input_size
    model.stages = stages
    model.feature_shape = (channels, height, width)
    model.removed_downsampling = removed
    model.theory = THEORY[head]
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
