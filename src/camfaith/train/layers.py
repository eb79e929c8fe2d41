"""Which layers train: Table 3 of Lamprou (2023) names them, this module finds and unfreezes them.

:func:`parse_trainable_layers` turns a Table 3 entry (``"layer3,layer4"``, ``"features.19-34"``) into
module names; :func:`apply_trainable_layers` freezes everything else except the head; and
:func:`frozen_batchnorm_layers` with :func:`set_train_mode` keep the BatchNorm layers of frozen blocks
in eval mode, so that their pretrained running statistics stay as they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from torch import nn

HEAD_MODULE = "head"
ALL_LAYERS = "all"

# A range of numbered modules: "features.19-34", "19-34" or "layer1-layer4" (prefix repeated or not).
_RANGE = re.compile(r"(?P<prefix>.*?)(?P<start>\d+)-(?:(?P=prefix))?(?P<stop>\d+)")


def _resolve_module_name(name: str, module_names: Sequence[str], token: str) -> str:
    """The module called ``name``: an exact qualified name, else the shallowest whose name ends in it.

    Suffix matching lets Table 3's torchvision names (``layer3``) find the same modules when the network
    wraps them (``features.layer3``). Ties at the shallowest depth are ambiguous and raise.
    """
    if name in module_names:
        return name
    candidates = [candidate for candidate in module_names if candidate.endswith("." + name)]
    if not candidates:
        top = [n for n in module_names if n.count(".") <= 1][:24]
        raise ValueError(
            f"trainable layer {name!r} (from {token!r}) matches no module of the model. "
            f"Use module names as model.named_modules() gives them, e.g. {', '.join(top)}"
        )
    depth = min(candidate.count(".") for candidate in candidates)
    shallowest = [candidate for candidate in candidates if candidate.count(".") == depth]
    if len(shallowest) > 1:
        raise ValueError(f"trainable layer {name!r} is ambiguous: it matches {', '.join(shallowest)}; "
                         "write the full name")
    return shallowest[0]


def parse_trainable_layers(spec: str | None, module_names: Iterable[str]) -> list[str]:
    """Resolve a Table 3 ``trainable_layers`` entry into qualified module names.

    Parameters
    ----------
    spec : comma-separated entries, each a module name (``"layer3"``, ``"features.layer3.1"``) or a
        numbered range with both ends included (``"features.19-34"``, ``"19-34"``,
        ``"layer1-layer4"``). Spaces are ignored. ``None``, ``""`` or ``"none"``: no layer (only the
        head will train). ``"all"``: the whole network (returns ``[""]``, the root module).
    module_names : the names ``model.named_modules()`` yields.

    Returns
    -------
    The resolved qualified names, without duplicates, in the order given. A name resolves to the
    module of exactly that name if there is one, else to the shallowest module whose name ends with
    ``"." + name`` (so ``layer3`` finds ``features.layer3`` in a :class:`camfaith.models.CamNet`).

    Raises
    ------
    ValueError
        If an entry matches no module, matches several at the same depth, or a range runs backwards.
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return []
    if spec.strip().lower() == ALL_LAYERS:
        return [""]
    names = [name for name in module_names if name]
    resolved: list[str] = []
    for token in spec.replace(" ", "").split(","):
        if not token:
            raise ValueError(f"empty entry in trainable_layers {spec!r}; separate module names with single commas")
        match = _RANGE.fullmatch(token)
        if match:
            start, stop = int(match["start"]), int(match["stop"])
            if start > stop:
                raise ValueError(f"range {token!r} runs backwards; write it as {match['prefix']}{stop}-{start}")
            wanted = [f"{match['prefix']}{index}" for index in range(start, stop + 1)]
        else:
            wanted = [token]
        for name in wanted:
            module_name = _resolve_module_name(name, names, token)
            if module_name not in resolved:
                resolved.append(module_name)
    return resolved


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(prefix == "" or name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def apply_trainable_layers(model: nn.Module, spec: str | None) -> list[str]:
    """Freeze every parameter except those of the layers in ``spec`` and of ``model.head``.

    Returns the unfrozen module names (``[""]`` for ``"all"``; ``"head"`` included otherwise).
    """
    module_names = [name for name, _ in model.named_modules()]
    trainable = parse_trainable_layers(spec, module_names)
    if trainable != [""]:
        if HEAD_MODULE not in module_names:
            raise ValueError("the model has no 'head' module, so the always-trainable classifier is unknown; "
                             "build it with camfaith.models.build_model or use trainable_layers='all'")
        trainable.append(HEAD_MODULE)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(_within(name, trainable))
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(f"trainable_layers={spec!r} leaves no parameter to train")
    return trainable


def frozen_batchnorm_layers(model: nn.Module, trainable: Iterable[str]) -> list[str]:
    """Names of the BatchNorm layers that must stay in eval mode while training.

    A BatchNorm layer is frozen when none of its parameters is trainable (or, for one without affine
    parameters, when it lies outside every trainable module). Frozen layers keep their running
    statistics, as a frozen pretrained layer should.
    """
    trainable = list(trainable)
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))
            if parameters:
                is_frozen = not any(parameter.requires_grad for parameter in parameters)
            else:
                is_frozen = not _within(name, trainable)
            if is_frozen:
                frozen.append(name)
    return frozen


def set_train_mode(model: nn.Module, frozen_batchnorm: Iterable[str]) -> nn.Module:
    """``model.train()``, then the frozen BatchNorm layers back to eval mode."""
    model.train()
    for name in frozen_batchnorm:
        model.get_submodule(name).eval()
    return model
