"""Figures and tables of the report, from tidy results.

The figures (``residual_bars`` ... ``specification_curve``) return a matplotlib Figure; ``format_table``
returns a pandas Styler, ``text_table`` plain HTML for tables of sentences, and ``method_table`` a
comparison table with the maps by their names."""

from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs
import torch
from IPython.display import HTML
from pandas.io.formats.style import Styler

from camfaith.endpoints import METRICS

METHOD_LABELS = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM", "occlusion": "occlusion", "mask": "object mask",
                 "random": "random map", "centre": "centre prior", "edges": "Sobel edges", "chance": "chance level"}
METHOD_LABELS |= {"xgradcam": "XGrad-CAM", "gradcam_plusplus": "Grad-CAM++",
                  "gradcam_elementwise": "Grad-CAM element-wise", "layercam": "LayerCAM", "eigencam": "EigenCAM",
                  "eigengradcam": "EigenGradCAM",
                  "ablationcam": "Ablation-CAM", "scorecam": "Score-CAM"}
METHOD_LABELS |= {f"{name}_inverted": f"1 - {METHOD_LABELS[name]}" for name in ("gradcam", "hirescam", "occlusion",
                                                                                  "mask")}
METHOD_COLOURS = {"gradcam": "tab:orange", "hirescam": "tab:blue", "occlusion": "tab:green", "mask": "tab:red",
                  "random": "0.55", "centre": "tab:olive", "edges": "tab:purple"}
METHOD_COLOURS |= {f"{name}_inverted": METHOD_COLOURS[name] for name in ("gradcam", "hirescam", "occlusion", "mask")}
#: the CAMs and the positive controls are solid, their inversions dotted
METHOD_STYLES = {"random": ":", "centre": "-.", "edges": "--"} | {
    f"{name}_inverted": ":" for name in ("gradcam", "hirescam", "occlusion", "mask")}


def format_table(frame: pd.DataFrame | pd.Series, digits: int = 4, formats: dict[str, str] | None = None) -> Styler:
    """A results table as readers see it: no pandas index, numbers rounded, missing values blank.

    An index that carries information (named, several levels, or unnamed labels such as the rows of
    ``describe()``) becomes the leading columns, an unnamed one under an empty header; an unnamed integer
    index (row positions, also after a ``concat``) is dropped. Floats show ``digits`` decimals unless
    ``formats`` gives a column its own format (``{"p": "{:.1e}"}``). The table gets the ``dataframe``
    class, so that the book's theme and ``book/_static/camfaith.css`` draw it like a pandas table and
    scroll it inside its box when it is wider than the text. Returns a pandas ``Styler`` (shown and glued
    as HTML); the values stay those of ``frame``. Its HTML ids come from the table's content, so the same
    table gives the same HTML on every run.
    """
    frame = frame.to_frame() if isinstance(frame, pd.Series) else frame
    unnamed = frame.index.nlevels == 1 and frame.index.name is None
    if unnamed and pd.api.types.is_integer_dtype(frame.index):
        frame = frame.reset_index(drop=True)
    else:
        frame = (frame.rename_axis("") if unnamed else frame).reset_index()
    frame = frame.rename_axis(columns=None)
    if frame.columns.nlevels > 1:
        frame.columns = [" ".join(str(part) for part in column if str(part)) for column in frame.columns]
    uuid = hashlib.sha1(frame.to_csv().encode()).hexdigest()[:8]
    styler = Styler(frame, uuid=uuid, cell_ids=False).hide(axis="index").format(precision=digits, na_rep="")
    if formats:
        styler = styler.format(formats, subset=list(formats), na_rep="")  # the other columns keep ``digits``
    return styler.set_table_attributes('class="dataframe"')


def text_table(frame: pd.DataFrame) -> HTML:
    """A small table of sentences as plain HTML, whose cells wrap in the book (a Styler table keeps each cell
    on one line and scrolls)."""
    return HTML(frame.to_html(index=False, border=0, classes="text-table"))


def method_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """A :func:`camfaith.stats.compare_methods` table for readers: the methods by their names."""
    table = comparison.rename(columns={f"mean_{method}": label for method, label in METHOD_LABELS.items()})
    table["better"] = table["better"].replace(METHOD_LABELS)
    return table


def residual_bars(table: pd.DataFrame, tolerance: float = 1e-4):
    """Largest identity residual per Table 1 setting, Grad-CAM beside HiResCAM, on a log scale."""
    labels = [f"{s}\n({t})" for s, t in zip(table["structure"], table["target layer"])]
    if "arch" in table:
        labels = [f"{a}: {label}" for a, label in zip(table["arch"], labels)]
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(table) + 1.2))
    for offset, method in ((-0.2, "gradcam"), (0.2, "hirescam")):
        values = table[f"{method}_residual"].clip(lower=1e-12)
        ax.barh(y + offset, values, height=0.38, color=METHOD_COLOURS[method], label=METHOD_LABELS[method])
    ax.axvline(tolerance, color="black", linestyle="--", linewidth=1, label=f"tolerance {tolerance:g}")
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative residual of  score = sum(map) + bias")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def history_curves(history: pd.DataFrame):
    """Training and validation loss, and validation balanced accuracy, per epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    left.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("weighted cross-entropy")
    left.legend()
    column = "val_balanced_accuracy" if "val_balanced_accuracy" in history else history.columns[-1]
    right.plot(history["epoch"], history[column], marker="o", color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel(column.replace("_", " "))
    fig.tight_layout()
    return fig


def morf_curves(curves: dict[str, torch.Tensor], regions: int, ax=None):
    """Mean MoRF perturbation curves per method with a band of one standard error (Fig. 14 of Lamprou 2023).

    Draws on ``ax`` when given (a panel of :func:`morf_panels`), else on a figure of its own.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.4))
    for method, values in curves.items():
        values = values.double().cpu()
        mean = values.mean(0)
        error = values.std(0) / max(1, values.shape[0]) ** 0.5
        steps = np.arange(values.shape[1])
        ax.plot(steps, mean, color=METHOD_COLOURS[method], linestyle=METHOD_STYLES.get(method, "-"),
                label=METHOD_LABELS[method])
        ax.fill_between(steps, mean - error, mean + error, color=METHOD_COLOURS[method], alpha=0.2)
    ax.set_xlabel(f"cells removed (of {regions}x{regions})")
    ax.set_ylabel("probability of the predicted class")
    ax.set_title(f"MoRF curves, {regions}x{regions} heatmap")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def morf_panels(curves: dict[int, dict[str, torch.Tensor]]):
    """The MoRF curves of :func:`morf_curves` for every heatmap size, one panel per size (two per row),
    with one legend: a single figure, so that the chapter can number and caption it."""
    columns = min(2, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), sharey=True, squeeze=False)
    for ax, (regions, by_method) in zip(axes.flat, curves.items()):
        morf_curves(by_method, regions, ax=ax)
    for ax in axes.flat[1:]:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def metric_by_setting(frame: pd.DataFrame, setting: str, value: str, ylabel: str, logx: bool = False):
    """Mean (with a 95% bootstrap interval if present) of a per-image metric per setting and method."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for method, group in frame.groupby("method"):
        group = group.sort_values(setting)
        ax.plot(group[setting], group[value], marker="o", color=METHOD_COLOURS[method],
                linestyle=METHOD_STYLES.get(method, "-"), label=METHOD_LABELS[method])
        if {"low", "high"} <= set(group):
            ax.fill_between(group[setting], group["low"], group["high"], color=METHOD_COLOURS[method], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(setting.replace("_", " "))
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def _show(ax, image: torch.Tensor):
    image = image.detach().cpu().float()
    ax.imshow(((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
    ax.axis("off")


def map_gallery(images: torch.Tensor, maps: dict[str, torch.Tensor], titles: list[str] | None = None):
    """Images with their Grad-CAM and HiResCAM maps overlaid, one row per image (Fig. 19 of Lamprou 2023)."""
    rows = images.shape[0]
    fig, axes = plt.subplots(rows, 1 + len(maps), figsize=(2.2 * (1 + len(maps)), 2.2 * rows), squeeze=False)
    for row in range(rows):
        _show(axes[row, 0], images[row])
        if titles:
            axes[row, 0].set_title(titles[row], fontsize=8)
        for column, (method, values) in enumerate(maps.items(), start=1):
            _show(axes[row, column], images[row])
            axes[row, column].imshow(values[row].detach().cpu().numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            if row == 0:
                axes[row, column].set_title(METHOD_LABELS.get(method, method), fontsize=9)
    fig.tight_layout()
    return fig


def image_rows(rows: dict[str, torch.Tensor], titles: list[str] | None = None):
    """A grid of images, one row per named batch (e.g. originals and HA images, Fig. 20 of Lamprou 2023)."""
    names = list(rows)
    columns = rows[names[0]].shape[0]
    fig, axes = plt.subplots(len(names), columns, figsize=(2 * columns, 2.1 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(columns):
            _show(axes[r, c], rows[name][c])
            if c == 0:
                axes[r, c].set_title(name, fontsize=8, loc="left")
            elif r == 0 and titles:
                axes[r, c].set_title(titles[c], fontsize=8)
    if titles:
        axes[0, 0].set_title(f"{names[0]}  {titles[0]}", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def accuracy_scatter(frame: pd.DataFrame, metric: str, ylabel: str):
    """Balanced accuracy against a HiResCAM metric, one point per model (Figs. 16-18 of Lamprou 2023).

    Our runs and the thesis's models get separate panels: image sizes and datasets differ, so only
    the shapes of the two clouds are comparable, not their values.
    """
    sources = [source for source in ("ours", "thesis") if (frame["source"] == source).any()]
    fig, axes = plt.subplots(1, len(sources), figsize=(4.6 * len(sources), 3.4), squeeze=False)
    for ax, source in zip(axes[0], sources):
        part = frame[frame["source"] == source]
        ax.scatter(part["balanced_accuracy"], part[metric], color="tab:blue")
        for _, row in part.iterrows():
            ax.annotate(f"{row['dataset']}/{row['arch']}", (row["balanced_accuracy"], row[metric]), fontsize=6)
        ax.set_title("this report" if source == "ours" else "Lamprou (2023)", fontsize=9)
        ax.set_xlabel("balanced accuracy")
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig



def forest_plot(table: pd.DataFrame):
    """One panel per metric: each run's difference with its interval, the pooled estimate with its
    prediction interval (dashed), and the published differences of Lamprou (2023) as hollow markers;
    the side that favours HiResCAM is marked."""
    metrics = list(dict.fromkeys(table["metric"]))
    heights = [max(2, len(table[table["metric"] == m])) * 0.22 + 0.8 for m in metrics]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    styles = {"ours": ("o", "tab:blue", "full"), "pooled": ("D", "black", "full"),
              "Lamprou (2023)": ("D", "tab:red", "none")}
    for ax, metric in zip(axes[:, 0], metrics):
        rows = table[table["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for source, (marker, colour, fill) in styles.items():
            part = rows["source"] == source
            ax.errorbar(rows.loc[part, "difference"], y[part.to_numpy()],
                        xerr=[rows.loc[part, "difference"] - rows.loc[part, "low"],
                              rows.loc[part, "high"] - rows.loc[part, "difference"]],
                        fmt=marker, color=colour, fillstyle=fill, capsize=2, label=source if part.any() else None)
        ax.axvline(0, color="0.5", linewidth=0.8)
        ax.set_yticks(y, rows["label"], fontsize=7)
        if "pred_low" in rows:  # the prediction interval of the pooled estimate, a thin line
            pooled = rows[rows["source"] == "pooled"].dropna(subset=["pred_low"])
            ax.hlines(y[pooled.index.to_numpy()], pooled["pred_low"], pooled["pred_high"], color="black",
                      linewidth=0.8, linestyle="--")
        better = next(m.higher_is_better for m in METRICS.values() if metric.startswith(m.label))
        side = "right" if better else "left"
        ax.set_title(f"{metric}: HiResCAM better to the {side}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("HiResCAM - Grad-CAM (95% interval)")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def critical_difference(ranking, alpha: float = 0.05):
    """The critical-difference diagram of a :class:`camfaith.ranking.Ranking`: the maps' mean ranks on one
    axis (1 = best), maps that Conover's Holm-adjusted test cannot tell apart joined by a bar."""
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.3 * len(ranking.mean_ranks)))
    labels = {name: METHOD_LABELS.get(name, name) for name in ranking.mean_ranks.index}
    scikit_posthocs.critical_difference_diagram(ranking.mean_ranks.rename(labels),
                                                ranking.posthoc.rename(index=labels, columns=labels),
                                                alpha=alpha, ax=ax)
    ax.set_title(f"mean rank over {ranking.blocks} blocks (1 = best)", fontsize=9)
    fig.tight_layout()
    return fig


def specification_curve(table: pd.DataFrame, choices: list[str], primary: dict, ylabel: str):
    """The specification curve (Simonsohn et al. 2020): every specification's effect with its interval,
    sorted, the primary one in black; below, one row per choice marking the value each specification used."""
    rows = sum(table[c].nunique() for c in choices)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 3 + 0.22 * rows), sharex=True,
                                      gridspec_kw={"height_ratios": [3, max(1, rows * 0.22)]})
    x = np.arange(len(table))
    is_primary = np.ones(len(table), dtype=bool)
    for choice, value in primary.items():
        is_primary &= table[choice].astype(str).to_numpy() == str(value)
    colours = np.where(table["favours"] == "HiResCAM", "tab:blue", np.where(table["favours"] == "Grad-CAM",
                                                                             "tab:orange", "0.6"))
    top.vlines(x, table["low"], table["high"], colors=colours, linewidth=1)
    top.scatter(x, table["difference"], c=colours, s=10, zorder=3)
    top.scatter(x[is_primary], table["difference"][is_primary], facecolors="none", edgecolors="black", s=60,
                zorder=4, label="primary specification")
    top.axhline(0, color="black", linewidth=0.6)
    top.set_ylabel(ylabel, fontsize=8)
    top.legend(fontsize=7, loc="upper left")
    labels, row = [], 0
    for choice in choices:
        for value in sorted(table[choice].astype(str).unique()):
            used = table[choice].astype(str).to_numpy() == value
            bottom.scatter(x[used], np.full(used.sum(), row), marker="|", color="black", s=30)
            labels.append(f"{choice}: {value}")
            row += 1
    bottom.set_yticks(range(row), labels, fontsize=7)
    bottom.invert_yaxis()
    bottom.set_xlabel("specifications, sorted by the effect", fontsize=8)
    fig.tight_layout()
    return fig
