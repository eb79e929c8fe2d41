"""Incremental, exact AOPC: one cell changes per step, so only windows of each layer are recomputed.

Step ``k`` of AOPC (eq. 6 of Lamprou 2023) changes ``x_{k-1}`` in exactly one cell of the
``regions x regions`` grid. Instead of ``N * L`` full forward passes, this module keeps every
activation of ``x_{k-1}`` and recomputes, layer by layer, only the window that depends on the
changed cell (incremental view maintenance for CNN inference, after Nakandala, Kumar and
Papakonstantinou 2019). The window of a layer is the changed rectangle of its input grown by the
layer's receptive field (:func:`~camfaith.incremental.windows.changed_range`); its input is read with
the layer's halo (zero, or ``-inf`` for max-pooling, where it falls outside the map), the layer runs
without padding, and the result is written into the cached activation. The answer is the full
forward's up to float rounding: every recomputed value reads the same inputs as in the full pass.
(On a GPU, PyTorch's default TF32 convolutions round both paths more coarsely, and differently.)

Windows grow with depth; once they cover most of a map, recomputing them saves little. The
network is cut between two of its units (:class:`~camfaith.incremental.windows.Unit`: a layer with its
BatchNorm and ReLU, or a residual block) where the estimated cost is least: the units before the
cut run in windows, those after it and the head run as an ordinary forward on the cached
activation, for ``chunk_size // N`` steps at once so that its batches are as large as the full
path's. All images take their step together: every image has its own cell, but the windows of one
layer have the same size for every cell (the largest, shifted inside the map; a larger window is
still exact), so they are gathered into one tensor, run once, and scattered back, on the model's
device. The caches are ``(N, H, W, C)``, so a gathered pixel is one contiguous row, and a 1x1
convolution is a matrix product of those rows.

:func:`incremental_plan` estimates both costs (multiply-adds plus overheads per image) and says which
path ``aopc(..., incremental="auto")`` takes and why: the incremental one when its estimated
speed-up is at least :data:`AUTO_MIN_SPEEDUP` and the model runs on one of :data:`AUTO_DEVICES`.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import nn

from camfaith.device import evaluating, model_device
from camfaith.incremental.windows import (
    Node,
    Unsupported,
    Window,
    finish,
    full_values,
    is_pointwise,
    place_windows,
    value_shapes,
    walk_model,
    windowed_op,
)
from camfaith.metrics.cells import cell_partition
from camfaith.metrics.checks import chunk_bounds, model_logits
from camfaith.metrics.road import is_road

__all__ = ["AUTO_DEVICES", "AUTO_MIN_SPEEDUP", "CACHE_BYTES", "IncrementalFallbackWarning", "IncrementalPlan",
           "Unsupported", "incremental_logits", "incremental_plan", "schedule_for"]

AUTO_MIN_SPEEDUP = 1.3
"""``incremental="auto"`` takes the incremental path when its estimated speed-up is at least this (a margin for
the cost model, whose estimates were within about 20% of measured speed-ups)."""
AUTO_DEVICES = ("cpu",)
"""Devices on which "auto" may take the incremental path. On a GPU the full batched passes were 5 to 20 times
faster in every case measured: the windows are many small kernels, each bound by its launch."""
WINDOW_FACTOR = 1.0
"""Cost of a multiply-add in a window relative to one in a full forward pass."""
SMALL_WINDOW = 8.0
"""Small windows run less efficiently: a window's multiply-adds cost ``WINDOW_FACTOR + SMALL_WINDOW / P`` each,
with ``P`` its output positions over the batch (``batch * height * width``)."""
MOVE_COST = 16.0
"""Cost, in multiply-adds, of gathering or scattering one cached value."""
FULL_MOVE_COST = 32.0
"""Cost, in multiply-adds, of reading or writing one value in a full forward pass (a batch of large activations
leaves the caches: the element-wise layers are bound by memory)."""
NODE_OVERHEAD = 4e6
"""Fixed cost, in multiply-adds, of recomputing one node's window for a batch of images (dispatch, indexing)."""
ELEMENTWISE_OVERHEAD = 2.0
"""Each element-wise module (BatchNorm, ReLU) and residual addition of a node runs as its own small kernels on
the window and adds this many times :data:`NODE_OVERHEAD`. Without it, the estimates for ResNets, whose nodes
carry three such steps against VGG's one, reached twice the measured speed-ups. The cost constants were fitted to the
single-thread CPU timings of both paths in ``benchmarks/results`` (VGG11/19, ResNet18/34/50; 64 to 224 px; 4 to
14 cells per side) by ``benchmarks/fit_costs.py``: the root mean square of log(estimated / measured speed-up)
is 0.16 (0.33 with the earlier constants, which had no element-wise term)."""
CACHE_BYTES = 2**30
"""Memory for cached activations: images are processed in groups that fit (at least one image at a time)."""


class IncrementalFallbackWarning(UserWarning):
    """``incremental="auto"`` met a model or perturbation it cannot window and used full forward passes."""


class IncrementalPlan(NamedTuple):
    """What ``incremental="auto"`` does for a model, input size and heatmap size, and why.

    Attributes
    ----------
    incremental : bool
        True when "auto" takes the incremental path (supported and ``speedup >= AUTO_MIN_SPEEDUP``).
    reason : str
        One line: why not, or the estimate.
    full_cost, incremental_cost : float
        Estimated cost per image of the ``L`` perturbed steps, in multiply-add equivalents: ``L`` full
        forward passes of the convolutional part, and the incremental path (one seeding pass, then
        windows and the ordinary forward after the cut). The head is the same on both and left out.
        NaN and inf when unsupported.
    speedup : float
        ``full_cost / incremental_cost`` (0 when unsupported).
    windowed_units, units : int
        Units recomputed in windows before the cut, and units in all.
    """

    incremental: bool
    reason: str
    full_cost: float
    incremental_cost: float
    speedup: float
    windowed_units: int
    units: int


class _Schedule(NamedTuple):
    plan: IncrementalPlan
    nodes: tuple[Node, ...]  # the nodes before the cut
    windows: tuple[Window, ...]
    shapes: tuple[tuple[int, int, int], ...]  # of the values before the cut, the input first
    tail: nn.Sequential  # the units after the cut and the head


def _node_costs(node: Node, window: Window, shapes, index: int, batch: int) -> tuple[float, float]:
    """(full, windowed) cost of one node per image, in multiply-add equivalents."""
    c_in = shapes[node.source][0]
    c, h, w = shapes[index + 1]
    elementwise = len(node.post) + len(node.after) + (node.residual is not None)
    per_output = elementwise
    if type(node.op) is nn.Conv2d:
        per_output += c_in // node.op.groups * node.rows.kernel * node.cols.kernel
    elif node.op is not None:
        per_output += node.rows.kernel * node.cols.kernel
    full = c * h * w * per_output + FULL_MOVE_COST * (math.prod(shapes[node.source]) + c * h * w * (1 + elementwise))
    outputs = c * window.height * window.width
    if not outputs:
        return full, 0.0
    moved = c_in * window.crop[0] * window.crop[1] + outputs * (2 + (node.residual is not None))
    efficiency = WINDOW_FACTOR + SMALL_WINDOW / (batch * window.height * window.width)
    overhead = NODE_OVERHEAD * (1 + ELEMENTWISE_OVERHEAD * elementwise) / batch
    return full, efficiency * outputs * per_output + MOVE_COST * moved + overhead


def _cut(graph, windows, shapes, steps: int, batch: int) -> tuple[int, float, float]:
    """The cut (units run in windows) of least estimated cost, and the (full, incremental) costs per image.

    Per step, the incremental path pays the windows of the units before the cut, an update of the
    input, and the ordinary forward of the units after it; the seeding pass is paid once.
    """
    costs = [_node_costs(node, window, shapes, i, batch) for i, (node, window) in enumerate(zip(graph.nodes, windows))]
    units, first = [], 0
    for unit in graph.units:
        units.append((sum(c[0] for c in costs[first:unit.stop]), sum(c[1] for c in costs[first:unit.stop])))
        first = unit.stop
    full = sum(unit_full for unit_full, _ in units)
    update = MOVE_COST * math.prod(shapes[0]) + NODE_OVERHEAD / batch
    best, best_step = 0, full
    windowed = done = 0.0
    for cut, (unit_full, unit_windowed) in enumerate(units, start=1):
        windowed, done = windowed + unit_windowed, done + unit_full
        if windowed + update + full - done < best_step:
            best, best_step = cut, windowed + update + full - done
    seeding = sum(unit_full for unit_full, _ in units[:best])
    return best, steps * full, seeding + steps * best_step


def _schedule(model: nn.Module, channels: int, height: int, width: int, regions: int, batch: int,
              device: torch.device) -> _Schedule:
    """Walk the model, place the windows and choose the cut; raises :class:`Unsupported`."""
    graph = walk_model(model)
    shapes = value_shapes(graph.nodes, channels, height, width)
    windows = place_windows(graph.nodes, shapes, regions)
    cut, full_cost, incremental_cost = _cut(graph, windows, shapes, regions * regions, batch)
    speedup = full_cost / incremental_cost
    chosen = speedup >= AUTO_MIN_SPEEDUP and device.type in AUTO_DEVICES
    reason = (f"estimated speed-up {speedup:.2f} {'>=' if speedup >= AUTO_MIN_SPEEDUP else '<'} {AUTO_MIN_SPEEDUP} "
              f"({cut} of {len(graph.units)} units in windows)")
    if device.type not in AUTO_DEVICES:
        reason += f"; on {device.type} the full batched passes are faster"
    plan = IncrementalPlan(chosen, reason, full_cost, incremental_cost, speedup, cut, len(graph.units))
    stop = graph.units[cut - 1].stop if cut else 0
    tail = nn.Sequential(*(m for unit in graph.units[cut:] for m in unit.modules), *graph.head)
    return _Schedule(plan, graph.nodes[:stop], windows[:stop], tuple(shapes[:stop + 1]), tail)


def _unsupported(reason: str) -> IncrementalPlan:
    return IncrementalPlan(False, f"unsupported: {reason}", math.nan, math.inf, 0.0, 0, 0)


def incremental_plan(
    model: nn.Module, input_size, regions: int, channels: int = 3, perturbation="uniform", batch: int = 1,
    device: torch.device | str | None = None,
) -> IncrementalPlan:
    """Which AOPC path ``incremental="auto"`` takes for this model, input size and heatmap size, and why.

    Parameters
    ----------
    model : nn.Module
        A :class:`~camfaith.models.CamNet` or ``nn.Sequential``, inspected in its current train/eval
        mode (:func:`~camfaith.metrics.aopc` puts it in eval mode first).
    input_size : int or (int, int)
        Image side, or (height, width).
    regions : int
        Cells per side of the AOPC grid.
    channels : int
        Input channels.
    perturbation : str or float
        The AOPC perturbation; ``"road"`` re-imputes earlier cells at every step, so it is unsupported.
    batch : int
        Images that take their steps together (``min(N, chunk_size)`` in AOPC): they share the fixed
        overheads.
    device : torch.device or str, optional
        Where AOPC runs; by default the model's device. Only on :data:`AUTO_DEVICES` does "auto" take
        the incremental path.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"input_size must be a positive int or a pair (height, width), got {input_size!r}")
    if isinstance(regions, bool) or not isinstance(regions, int) or not 1 <= regions <= min(size):
        raise ValueError(f"regions must be an integer in 1..{min(size)}, got {regions!r}")
    if is_road(perturbation):
        return _unsupported("perturbation='road' re-imputes earlier pixels at every step")
    try:
        device = torch.device(device) if device is not None else model_device(model)
        return _schedule(model, channels, *size, regions, max(1, batch), device).plan
    except Unsupported as error:
        return _unsupported(str(error))


def schedule_for(model: nn.Module, images: torch.Tensor, regions: int, perturbation, incremental, batch: int,
                 precision: str = "float32"):
    """The schedule of :func:`incremental_logits` for ``aopc(..., incremental=...)``, or None for full passes.

    ``False``: None. ``True``: the schedule, or a ``ValueError`` naming why it is impossible. ``"auto"``:
    the schedule when :func:`incremental_plan` estimates it faster, else None; ROAD or a device outside
    :data:`AUTO_DEVICES` gives None, an unsupported model or a ``precision`` other than float32 (the
    windows run in float32 only) None and one :class:`IncrementalFallbackWarning`.
    """
    if not (incremental is True or incremental is False or (isinstance(incremental, str) and incremental == "auto")):
        raise ValueError(f"incremental must be True, False or 'auto', got {incremental!r}")
    road = is_road(perturbation)
    if incremental is False:
        return None
    if incremental == "auto" and (road or images.device.type not in AUTO_DEVICES):  # documented: no note
        return None
    try:
        if road:
            raise Unsupported("perturbation='road' re-imputes earlier pixels at every step")
        if precision != "float32":
            raise Unsupported(f"the forward passes run in {precision}; the windows run in float32 only")
        _, channels, height, width = images.shape
        schedule = _schedule(model, channels, height, width, regions, max(1, batch), images.device)
    except Unsupported as error:
        if incremental is True:
            raise ValueError(f"incremental=True is impossible here: {error}; use incremental='auto' or False") from None
        warnings.warn(f"AOPC uses full forward passes: {error}", IncrementalFallbackWarning, stacklevel=4)
        return None
    return schedule if incremental is True or schedule.plan.incremental else None


class _Tables(NamedTuple):
    """Device tensors of one node's window: starts per cell row / column, read offsets, and the weight
    in the form the window uses (a matrix for a 1x1 convolution, channels-last otherwise)."""

    row_starts: torch.Tensor
    col_starts: torch.Tensor
    read_rows: torch.Tensor
    read_cols: torch.Tensor
    weight: torch.Tensor | None


def _tables(node: Node, window: Window, device) -> _Tables:
    weight = None
    if is_pointwise(node.op):
        weight = node.op.weight.flatten(1).t()  # (C_in, C_out): the 1x1 convolution as a matrix product
    elif type(node.op) is nn.Conv2d:
        weight = node.op.weight.contiguous(memory_format=torch.channels_last)
    return _Tables(torch.tensor(window.row_starts, device=device), torch.tensor(window.col_starts, device=device),
                   torch.arange(window.crop[0], device=device) * window.step[0] - node.rows.padding,
                   torch.arange(window.crop[1], device=device) * window.step[1] - node.cols.padding, weight)


class _Indices(NamedTuple):
    """For a block of steps ``(S, ...)``: rows of the source cache to read (and which of them lie
    outside the map), and rows of the node's cache to write (also where its residual is read)."""

    read: torch.Tensor
    outside: torch.Tensor | None
    write: torch.Tensor


def _flat(n: int, height: int, width: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Rows of an ``(n, H, W, C)`` cache viewed as ``(n*H*W, C)``, for per-step, per-image ``rows (S, n, h)``
    and ``cols (S, n, w)``: shape ``(S, n*h*w)``."""
    base = torch.arange(n, device=rows.device)[:, None] * height
    return ((base + rows)[..., :, None] * width + cols[..., None, :]).flatten(1)


def _indices(node: Node, window: Window, tables: _Tables, shapes, index: int, cell_rows, cell_cols) -> _Indices:
    """Where node ``index`` reads and writes at each step of a block; ``cell_rows``, ``cell_cols``: ``(S, n)``."""
    n = cell_rows.shape[1]
    rows, cols = tables.row_starts[cell_rows], tables.col_starts[cell_cols]
    _, height, width = shapes[node.source]
    read_rows = (rows * node.rows.stride)[..., None] + tables.read_rows
    read_cols = (cols * node.cols.stride)[..., None] + tables.read_cols
    outside = None
    if window.pad is not None:
        inside = ((read_rows >= 0) & (read_rows < height))[..., :, None] & ((read_cols >= 0) & (read_cols < width))[
            ..., None, :]
        outside = ~inside.flatten(1)[..., None]
        read_rows, read_cols = read_rows.clamp(0, height - 1), read_cols.clamp(0, width - 1)
    read = _flat(n, height, width, read_rows, read_cols)
    _, out_height, out_width = shapes[index]
    write_rows = rows[..., None] + torch.arange(window.height, device=rows.device)
    write_cols = cols[..., None] + torch.arange(window.width, device=rows.device)
    return _Indices(read, outside, _flat(n, out_height, out_width, write_rows, write_cols))


def _update(node: Node, window: Window, weight, values: list, index: int, read, outside, write) -> None:
    """Recompute the window of value ``index`` of every image: gather, run the layer once, scatter."""
    source, target = values[node.source], values[index]
    n = source.shape[0]
    crop = source.view(-1, source.shape[-1]).index_select(0, read)
    if outside is not None:
        crop.masked_fill_(outside, window.pad)
    out = windowed_op(node, window, weight, crop, n)
    residual = None
    if node.residual is not None:
        cache = values[node.residual]
        residual = cache.view(-1, cache.shape[-1]).index_select(0, write)
        residual = residual.view(n, window.height, window.width, -1).permute(0, 3, 1, 2)
    out = finish(node, out, residual)
    target.view(-1, target.shape[-1]).index_copy_(0, write, out.permute(0, 2, 3, 1).reshape(-1, target.shape[-1]))


def _run_group(schedule: _Schedule, tables, images, fill, order, cells, regions: int, chunk_size: int) -> torch.Tensor:
    """Logits ``(n, L, classes)`` of one group of images along their removal ``order``.

    Steps go in blocks of ``chunk_size // n``: the read and write indices of a block are computed
    at once, the windows are updated step by step, and the ordinary forward after the cut runs on
    the block's cut activations together (a batch as large as the full path's).
    """
    n, steps = order.shape
    values = full_values(schedule.nodes, images)
    fill = fill.permute(0, 2, 3, 1).contiguous()
    logits = []
    for first, stop in chunk_bounds(steps, max(1, chunk_size // n)):
        block = order[:, first:stop].t()
        indices = [_indices(node, window, table, schedule.shapes, index, block // regions, block % regions)
                   for index, (node, window, table) in enumerate(zip(schedule.nodes, schedule.windows, tables), 1)]
        cut = []
        for step in range(stop - first):
            values[0] = torch.where((cells == block[step].view(-1, 1, 1)).unsqueeze(3), fill, values[0]).contiguous()
            for index, (node, window, table, where) in enumerate(
                    zip(schedule.nodes, schedule.windows, tables, indices), start=1):
                if window.height and window.width:
                    outside = None if where.outside is None else where.outside[step]
                    _update(node, window, table.weight, values, index, where.read[step], outside, where.write[step])
            cut.append(values[-1].permute(0, 3, 1, 2).contiguous())
        out = model_logits(schedule.tail, torch.cat(cut))
        logits.append(out.view(stop - first, n, -1).transpose(0, 1))
    return torch.cat(logits, dim=1)


def incremental_logits(
    model: nn.Module,
    images: torch.Tensor,
    fill: torch.Tensor,
    order: torch.Tensor,
    regions: int,
    chunk_size: int = 64,
    schedule=None,
) -> torch.Tensor:
    """Logits of every AOPC step by incremental inference: ``(N, L, classes)``, step ``k`` (0-based)
    is the image with cells ``order[:, :k+1]`` taken from ``fill``.

    Equals ``model(x_k)`` up to float rounding. ``images`` and ``fill`` are ``(N, C, H, W)`` on the
    model's device, ``order`` ``(N, L)`` cell indices (row-major) of the ``regions x regions`` grid
    of :func:`~camfaith.metrics.cells.cell_partition`. Images are processed in groups of at most
    ``chunk_size`` whose cached activations fit in :data:`CACHE_BYTES`. Raises ``ValueError``
    (:class:`Unsupported`) for a model the walker cannot follow; ``schedule`` (from
    :func:`schedule_for`) skips walking the model again.
    """
    if images.shape != fill.shape or order.ndim != 2 or order.shape[0] != images.shape[0]:
        raise ValueError(f"images {tuple(images.shape)}, fill {tuple(fill.shape)} and order "
                         f"{tuple(order.shape)} must be (N, C, H, W), (N, C, H, W) and (N, L)")
    with evaluating(model), torch.no_grad():
        if schedule is None:
            _, channels, height, width = images.shape
            schedule = _schedule(model, channels, height, width, regions, min(chunk_size, images.shape[0]),
                                 images.device)
        cells = cell_partition(images.shape[2], images.shape[3], regions, images.device)
        tables = [_tables(node, window, images.device) for node, window in zip(schedule.nodes, schedule.windows)]
        per_image = sum(math.prod(shape) for shape in schedule.shapes) * images.element_size()
        group = max(1, min(chunk_size, CACHE_BYTES // per_image))
        return torch.cat([_run_group(schedule, tables, images[a:b], fill[a:b], order[a:b], cells, regions, chunk_size)
                          for a, b in chunk_bounds(images.shape[0], group)])
