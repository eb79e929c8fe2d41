"""The layer graph of a CNN and the window arithmetic of incremental inference (used by
:mod:`camfaith.incremental.inference`).

Incremental inference (Nakandala, Kumar and Papakonstantinou 2019, "Incremental and Approximate
Inference for Faster Occlusion-based Deep CNN Explanations") keeps every activation of the
previous input and, when one rectangle of the input changes, recomputes only the rectangle of each
layer that depends on it. This module says *which* rectangle, and runs a layer on it:

- :func:`walk_model` turns a :class:`~camfaith.models.CamNet` (or a plain ``nn.Sequential``) into
  a flat graph of :class:`Node` s, each one spatial operation (convolution, max- or average-pooling,
  or none) followed by element-wise modules (BatchNorm in eval mode, ReLU, Identity), an optional
  residual addition and the element-wise modules after it (torchvision's BasicBlock and Bottleneck,
  with their downsampling branch). Anything else raises :class:`Unsupported`, whose message names
  the module, so the caller can fall back to full forward passes instead of giving a wrong answer.
- :func:`changed_range` maps the changed rows (or columns) of a node's input to the outputs that
  read them, for any kernel, stride, padding and dilation (the receptive field of one layer).
- :func:`output_size` is the ordinary output length of a layer along one axis, :func:`value_shapes`
  the shape of every cached activation.
- :func:`place_windows` gives each node one window size for every cell (the largest changed
  rectangle; a window larger than needed is still exact) and, per cell row and column, where it
  starts, shifted inside the map, so that the windows of all images can be gathered into one batch.
- :func:`windowed_op` runs a node's layer on its gathered input, :func:`finish` its element-wise
  modules and residual addition, and :func:`full_values` the ordinary forward of all nodes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.models.resnet import BasicBlock, Bottleneck

from camfaith.models import CamNet

__all__ = ["Axis", "ModelGraph", "Node", "Unit", "Unsupported", "Window", "changed_range", "finish", "full_values",
           "is_pointwise", "output_size", "place_windows", "value_shapes", "walk_model", "windowed_op"]


class Unsupported(ValueError):
    """The walker met something it cannot recompute in windows; the message names it and why."""


class Axis(NamedTuple):
    """Geometry of one layer along one axis (rows or columns); ``Axis(1, 1, 0, 1)`` is the identity."""

    kernel: int
    stride: int
    padding: int
    dilation: int


IDENTITY = Axis(1, 1, 0, 1)


class Node(NamedTuple):
    """One cached activation: ``after(post(op(value[source])) + value[residual])``.

    Values are numbered: 0 is the input image and ``i + 1`` the output of node ``i``. ``op`` is a
    ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` or None (element-wise only); ``rows`` and ``cols`` are
    its geometry. ``residual`` is the value added after ``post`` (None: no addition).
    """

    op: nn.Module | None
    source: int
    post: tuple[nn.Module, ...]
    residual: int | None
    after: tuple[nn.Module, ...]
    rows: Axis
    cols: Axis


class Unit(NamedTuple):
    """A top-level piece of the network: its output is value ``stop`` and ``modules``, applied in
    turn, are its ordinary forward. The incremental path may hand over to the ordinary forward
    only between units."""

    stop: int
    modules: tuple[nn.Module, ...]


class ModelGraph(NamedTuple):
    """A walked model: the nodes, the units they form, and ``head``, the modules after the walked part."""

    nodes: tuple[Node, ...]
    units: tuple[Unit, ...]
    head: tuple[nn.Module, ...]


class Window(NamedTuple):
    """Where a node recomputes: an output window ``height x width`` that starts at
    ``row_starts[cell row], col_starts[cell column]`` for a change in that cell.

    Its input is read at ``crop`` positions per axis, ``step`` apart, from ``stride * start -
    padding`` on (``step`` is the stride for a 1x1 convolution, which reads only those positions,
    else 1); positions outside the map read ``pad`` (0, or ``-inf`` for max-pooling; None: never).
    """

    height: int
    width: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    crop: tuple[int, int]
    step: tuple[int, int]
    pad: float | None


def is_pointwise(op: nn.Module | None) -> bool:
    """A 1x1 convolution without groups: a matrix product of each read position's channels."""
    return type(op) is nn.Conv2d and tuple(op.kernel_size) == (1, 1) and op.groups == 1


def output_size(size: int, axis: Axis) -> int:
    """Output length of a layer along one axis (PyTorch's formula with ``ceil_mode=False``)."""
    return (size + 2 * axis.padding - axis.dilation * (axis.kernel - 1) - 1) // axis.stride + 1


def changed_range(low: int, high: int, axis: Axis, size_out: int) -> tuple[int, int]:
    """Outputs ``[first, stop)`` that read any input in ``[low, high)``; ``(0, 0)`` when none does.

    Output ``o`` reads inputs ``o*s - p .. o*s - p + d*(k-1)``; it is changed when that span meets
    ``[low, high)``. With dilation or ``stride > kernel`` some outputs in between read none of the
    changed inputs; recomputing them anyway is exact, only a little more work.
    """
    if high <= low:
        return 0, 0
    kernel, stride, padding, dilation = axis
    first = max(0, -(-(low + padding - dilation * (kernel - 1)) // stride))
    stop = min(size_out, (high - 1 + padding) // stride + 1)
    return (first, stop) if stop > first else (0, 0)


def value_shapes(nodes, channels: int, height: int, width: int) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` of every value (0: the input), checked as the ordinary forward would need them."""
    shapes = [(channels, height, width)]
    for index, node in enumerate(nodes):
        c, h, w = shapes[node.source]
        if node.op is not None:
            h, w = output_size(h, node.rows), output_size(w, node.cols)
            if type(node.op) is nn.Conv2d:
                if c != node.op.in_channels:
                    raise Unsupported(f"node {index}: Conv2d expects {node.op.in_channels} channels, gets {c}")
                c = node.op.out_channels
        if h < 1 or w < 1:
            raise Unsupported(f"a {height}x{width} input shrinks to nothing at node {index}; use a larger input")
        if node.residual is not None and shapes[node.residual] != (c, h, w):
            raise Unsupported(f"node {index}: residual of shape {shapes[node.residual]} added to {(c, h, w)}")
        shapes.append((c, h, w))
    return shapes


def _ranges(nodes, sizes: list[int], regions: int, axis: str) -> list[list[tuple[int, int]]]:
    """Per value, per cell along one axis: the ``[low, high)`` it changes when that cell changes."""
    size = sizes[0]
    ranges = [[(i * size // regions, (i + 1) * size // regions) for i in range(regions)]]
    for node, size_out in zip(nodes, sizes[1:]):
        changed = [changed_range(low, high, getattr(node, axis), size_out) for low, high in ranges[node.source]]
        if node.residual is not None:  # the hull of both changed ranges
            changed = [b if a[1] <= a[0] else a if b[1] <= b[0] else (min(a[0], b[0]), max(a[1], b[1]))
                       for a, b in zip(changed, ranges[node.residual])]
        ranges.append(changed)
    return ranges


def _starts(ranges: list[tuple[int, int]], size: int) -> tuple[int, tuple[int, ...]]:
    """The window length (largest changed range) and, per cell, its start shifted inside ``[0, size)``."""
    length = max(high - low for low, high in ranges)
    return length, tuple(min(max(low, 0), size - length) for low, _ in ranges)


def place_windows(nodes, shapes, regions: int) -> tuple[Window, ...]:
    """The :class:`Window` of every node for the cells of a ``regions x regions`` grid over the input
    (:func:`~camfaith.metrics.cells.cell_partition`); rows and columns are independent."""
    rows = _ranges(nodes, [s[1] for s in shapes], regions, "rows")
    cols = _ranges(nodes, [s[2] for s in shapes], regions, "cols")
    windows = []
    for index, node in enumerate(nodes):
        _, h, w = shapes[index + 1]
        height, row_starts = _starts(rows[index + 1], h)
        width, col_starts = _starts(cols[index + 1], w)
        pointwise = is_pointwise(node.op)
        crop = tuple(length if pointwise or not length else (length - 1) * a.stride + a.dilation * (a.kernel - 1) + 1
                     for length, a in ((height, node.rows), (width, node.cols)))
        step = (node.rows.stride, node.cols.stride) if pointwise else (1, 1)
        pad = None
        if node.rows.padding or node.cols.padding:
            pad = float("-inf") if type(node.op) is nn.MaxPool2d else 0.0
        windows.append(Window(height, width, row_starts, col_starts, crop, step, pad))
    return tuple(windows)


def windowed_op(node: Node, window: Window, weight, crop: torch.Tensor, n: int) -> torch.Tensor:
    """The node's layer on its gathered input rows ``(n * crop height * crop width, C)``, which already hold
    the padding, as ``(n, C, h, w)``. ``weight``: ``(C_in, C_out)`` for a 1x1 convolution (:func:`is_pointwise`),
    which is then a matrix product of the rows, else the convolution's weight (any memory format)."""
    op = node.op
    if is_pointwise(op):
        out = crop @ weight if op.bias is None else torch.addmm(op.bias, crop, weight)
        return out.view(n, window.height, window.width, -1).permute(0, 3, 1, 2)
    x = crop.view(n, window.crop[0], window.crop[1], -1).permute(0, 3, 1, 2)
    if op is None:
        return x
    if type(op) is nn.Conv2d:
        return F.conv2d(x, weight, op.bias, op.stride, 0, op.dilation, op.groups)
    if type(op) is nn.MaxPool2d:
        return F.max_pool2d(x, op.kernel_size, op.stride, 0, op.dilation)
    return F.avg_pool2d(x, op.kernel_size, op.stride, 0, False, True, op.divisor_override)


def finish(node: Node, out: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    """``after(post(out) + residual)`` on ``(n, C, h, w)`` tensors."""
    for module in node.post:
        out = module(out)
    if node.residual is not None:
        out = out + residual
        for module in node.after:
            out = module(out)
    return out


def full_values(nodes, images: torch.Tensor) -> list[torch.Tensor]:
    """Every value of ``nodes`` for ``images``, by the layers' ordinary forward (with their own padding),
    each as an ``(N, H, W, C)`` tensor (the layout the windows gather from and scatter into)."""
    values = [images.permute(0, 2, 3, 1).contiguous()]
    for node in nodes:
        source = values[node.source].permute(0, 3, 1, 2)
        out = node.op(source) if node.op is not None else source.clone()
        residual = values[node.residual].permute(0, 3, 1, 2) if node.residual is not None else None
        values.append(finish(node, out, residual).permute(0, 2, 3, 1).contiguous())
    return values


def _spatial_axes(module: nn.Module, name: str) -> tuple[Axis, Axis] | None:
    """Rows and columns geometry of a layer the walker can window, None if it is not spatial."""
    kind = type(module)
    if kind is nn.Conv2d:
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise Unsupported(f"{name}: Conv2d with padding={module.padding!r}, padding_mode={module.padding_mode!r}")
        parts = (module.kernel_size, module.stride, module.padding, module.dilation)
    elif kind is nn.MaxPool2d:
        if module.ceil_mode or module.return_indices:
            raise Unsupported(f"{name}: MaxPool2d with ceil_mode or return_indices")
        parts = (module.kernel_size, module.stride, module.padding, module.dilation)
    elif kind is nn.AvgPool2d:
        if module.ceil_mode or (any(_pair(module.padding)) and not module.count_include_pad):
            raise Unsupported(f"{name}: AvgPool2d with ceil_mode or padding without count_include_pad")
        parts = (module.kernel_size, module.stride, module.padding, 1)
    else:
        return None
    kernel, stride, padding, dilation = (_pair(part) for part in parts)
    return Axis(kernel[0], stride[0], padding[0], dilation[0]), Axis(kernel[1], stride[1], padding[1], dilation[1])


def _is_elementwise(module: nn.Module, name: str) -> bool:
    """ReLU, Identity and BatchNorm2d with running statistics in eval mode act on each value alone."""
    kind = type(module)
    if kind is nn.BatchNorm2d:
        if module.training or module.running_mean is None or module.running_var is None:
            raise Unsupported(f"{name}: BatchNorm2d in training mode or without running statistics "
                              "(its output depends on the whole batch)")
        return True
    return kind in (nn.ReLU, nn.Identity)


def _check_hooks(module: nn.Module, name: str) -> None:
    if module._forward_hooks or module._forward_pre_hooks:
        raise Unsupported(f"{name}: {type(module).__name__} has forward hooks")


class _Builder:
    """Appends nodes while walking; fuses element-wise modules into the node that made their input."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.units: list[list] = []
        self.consumed: set[int] = set()

    def spatial(self, module: nn.Module, axes: tuple[Axis, Axis], source: int) -> int:
        self.consumed.add(source)
        self.nodes.append(Node(module, source, (), None, (), *axes))
        return len(self.nodes)

    def elementwise(self, module: nn.Module, source: int) -> int:
        if source == len(self.nodes) and source > 0 and source not in self.consumed:
            node = self.nodes[-1]
            if node.residual is None:
                self.nodes[-1] = node._replace(post=node.post + (module,))
            else:
                self.nodes[-1] = node._replace(after=node.after + (module,))
            return source
        self.consumed.add(source)
        self.nodes.append(Node(None, source, (module,), None, (), IDENTITY, IDENTITY))
        return len(self.nodes)

    def layer(self, module: nn.Module, name: str, source: int) -> int | None:
        """Add one spatial or element-wise layer reading ``source``; None if it is neither."""
        _check_hooks(module, name)
        axes = _spatial_axes(module, name)
        if axes is not None:
            return self.spatial(module, axes, source)
        if _is_elementwise(module, name):
            return self.elementwise(module, source)
        return None

    def chain(self, modules, name: str, source: int) -> int:
        """A branch of a residual block: layers only, nested Sequentials flattened."""
        value = source
        for index, module in enumerate(modules):
            label = f"{name}.{index}"
            if type(module) is nn.Sequential:
                _check_hooks(module, label)
                value = self.chain(module, label, value)
                continue
            found = self.layer(module, label, value)
            if found is None:
                raise Unsupported(f"{label}: {type(module).__name__} inside a residual block")
            value = found
        return value

    def block(self, module: nn.Module, name: str, source: int) -> int:
        """torchvision's BasicBlock / Bottleneck: ``relu(main(x) + shortcut(x))``."""
        main = [module.conv1, module.bn1, module.relu, module.conv2, module.bn2]
        if type(module) is Bottleneck:
            main += [module.relu, module.conv3, module.bn3]
        self.consumed.add(source)
        shortcut = source if module.downsample is None else self.chain(module.downsample, f"{name}.downsample", source)
        start = len(self.nodes)
        out = self.chain(main, name, source)
        if out <= start or out in self.consumed or type(module.relu) is not nn.ReLU:
            raise Unsupported(f"{name}: a residual block whose main branch the walker cannot follow")
        self.consumed.add(shortcut)
        self.nodes[out - 1] = self.nodes[out - 1]._replace(residual=shortcut, after=(module.relu,))
        return out

    def sequence(self, modules, prefix: str, source: int, strict: bool) -> tuple[int, int]:
        """Walk the children of a Sequential into units; returns (output value, children walked)."""
        value = source
        for index, (name, module) in enumerate(modules.named_children()):
            label = f"{prefix}{name}"
            _check_hooks(module, label)
            if type(module) is nn.Sequential:
                value, _ = self.sequence(module, f"{label}.", value, strict=True)
                continue
            if type(module) in (BasicBlock, Bottleneck):
                value = self.block(module, label, value)
                self.units.append([value, [module]])
                continue
            is_spatial = _spatial_axes(module, label) is not None
            found = self.layer(module, label, value)
            if found is None:
                if strict:
                    raise Unsupported(f"{label}: {type(module).__name__} is not a layer the walker knows")
                return value, index
            if is_spatial or not self.units:
                self.units.append([found, [module]])
            else:
                self.units[-1][0] = found
                self.units[-1][1].append(module)
            value = found
        return value, len(modules)


def walk_model(model: nn.Module) -> ModelGraph:
    """The node graph of a :class:`~camfaith.models.CamNet` (``features`` walked in full, ``head`` run
    as it is) or of a plain ``nn.Sequential`` (its leading layers walked, the rest run as the head).

    Raises :class:`Unsupported` naming the first module it cannot follow.
    """
    builder = _Builder()
    if isinstance(model, CamNet) and type(model).forward is CamNet.forward:
        _check_hooks(model, "model")
        _check_hooks(model.features, "features")
        if type(model.features) is not nn.Sequential:
            raise Unsupported(f"features is a {type(model.features).__name__}, not an nn.Sequential")
        builder.sequence(model.features, "features.", 0, strict=True)
        head = (model.head,)
    elif type(model) is nn.Sequential:
        _check_hooks(model, "model")
        _, walked = builder.sequence(model, "", 0, strict=False)
        head = tuple(model)[walked:]
    else:
        raise Unsupported(f"the model is a {type(model).__name__}, not a CamNet or an nn.Sequential")
    if not builder.nodes:
        raise Unsupported("the model starts with no layer the walker knows")
    units = tuple(Unit(stop, tuple(modules)) for stop, modules in builder.units)
    return ModelGraph(tuple(builder.nodes), units, head)
