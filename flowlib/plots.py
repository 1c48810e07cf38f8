"""Seaborn/matplotlib figures for reports/: samples, loss curves, quality and RMSE against NFE.

Every figure is written atomically as PNG and returned as a `SavedFigure`: a path that Jupyter shows as the
picture itself, so `display(plot_...(...))` (or a plot call ending a cell) puts the figure inline, in the live
notebook and in the executed copies. `check_figures_shown()`, the last cell of every notebook that plots, fails
when a figure was written but never shown.

The library sets no matplotlib backend: in Jupyter the kernel's inline backend shows a raw `Figure` as an image;
headless processes (scripts, the test process) fall back to Agg, or choose one with `MPLBACKEND`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from matplotlib.ticker import NullFormatter
from torch import Tensor

from .artifacts import atomic_path
from .errors import FlowlibError
from .evaluate import REFERENCE_SOLVERS, sampler_label


class FigureNotShownError(FlowlibError, RuntimeError):
    """A notebook wrote a figure that it never displayed."""


_WRITTEN: dict[str, bool] = {}  # figures written by this process -> shown inline yet


class SavedFigure(os.PathLike):
    """A figure written to disk: usable as a path, shown by Jupyter as the PNG itself (`_repr_png_`), and printed
    as `figures/<name>.png`, never as an absolute path of the machine."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _WRITTEN.setdefault(str(self.path), False)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"SavedFigure({Path(self.path.parent.name, self.path.name).as_posix()!r})"

    def _repr_png_(self) -> bytes:
        _WRITTEN[str(self.path)] = True
        return self.path.read_bytes()


def check_figures_shown() -> str:
    """Raise `FigureNotShownError` if a figure written in this process was never displayed; else a one-line summary."""
    hidden = [Path(p).name for p, shown in _WRITTEN.items() if not shown]
    if hidden:
        raise FigureNotShownError(f"Written but not shown inline: {hidden}. End the cell with the plot call, or wrap it "
                                  "in display(...).")
    return f"{len(_WRITTEN)} figure(s) written, all shown inline"


def save_figure(fig: plt.Figure, path: str | Path) -> SavedFigure:
    """Save a figure as PNG atomically, close it, and return it as a `SavedFigure`."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return SavedFigure(path)


_YLABELS = {"quality": None, "gt_distance": "distance to the teacher's distribution", "rmse_to_gt": "RMSE to ground truth"}


def plot_vs_nfe(df: pd.DataFrame, path: str | Path, y: str = "quality") -> SavedFigure:
    """One panel per dataset: `y` against NFE (log-log) per sampler, ± one bootstrap std where the table has it.

    Reference lines, with their own ± std band shaded: the real data and the ground truth for `quality`, the floor
    (ground truth vs an independent ground-truth draw) for `gt_distance`, nothing for the RMSE.
    """
    std = f"{y}_std" if f"{y}_std" in df.columns else None
    curves = df[~df["solver"].isin(REFERENCE_SOLVERS) & df[y].notna()].copy()
    curves["sampler"] = sampler_label(curves)
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(1, max(len(datasets), 1), figsize=(5.2 * max(len(datasets), 1), 4), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        sub = curves[curves["dataset"] == name]
        sns.lineplot(data=sub, x="nfe", y=y, hue="sampler", marker="o", ax=ax)
        if std:
            colors = {line.get_label(): line.get_color() for line in ax.get_lines()}
            for sampler, part in sub.groupby("sampler"):
                ax.errorbar(part["nfe"], part[y], yerr=part[std].fillna(0), fmt="none", elinewidth=1, capsize=2,
                            ecolor=colors.get(sampler, "grey"))
        references = {"quality": (("adaptive", "--", "adaptive GT ({nfe} NFE)"), ("heldout", ":", "real held-out data"),
                                  ("decoded", "-.", "decoder floor")),
                      "gt_distance": (("adaptive", "--", "floor (GT vs GT)"),)}.get(y, ())
        for solver, style, label in references:
            for row in df[(df["dataset"] == name) & (df["solver"] == solver) & df[y].notna()].itertuples():
                value, spread = getattr(row, y), getattr(row, std) if std else float("nan")
                ax.axhline(value, color="k", linestyle=style, linewidth=1, label=label.format(nfe=int(row.nfe)))
                if not pd.isna(spread):
                    ax.axhspan(value - spread, value + spread, color="k", alpha=0.08)
        metric_col = {"quality": "quality_metric", "gt_distance": "gt_distance_metric"}.get(y)
        ylabel = sub[metric_col].iloc[0] if metric_col and len(sub) else _YLABELS.get(y, y)
        ax.set(xscale="log", yscale="log", title=name, ylabel=ylabel)
        ax.set_xticks(sorted(sub["nfe"].unique()), labels=[str(n) for n in sorted(sub["nfe"].unique())])
        ax.xaxis.set_minor_formatter(NullFormatter())  # only the NFE ticks, no 3x10^0
        ax.legend(fontsize=7)
    title = {"quality": "Distance to the data", "gt_distance": "Distance to the teacher's own distribution",
             "rmse_to_gt": "RMSE to the ground truth"}.get(y, y)
    fig.suptitle(f"{title} vs NFE (lower is better)")
    return save_figure(fig, path)


def draw_panel(ax: plt.Axes, samples: Tensor, title: str, reference: Tensor | None, nrow: int) -> None:
    """Images (values in [-1, 1]) as a grid, or 2-D points as a scatter over a grey reference."""
    if samples.dim() == 4:
        n = min(len(samples), nrow * nrow)
        c, h, w = samples.shape[1:]
        rows = math.ceil(n / nrow)
        grid = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1)
        for i in range(n):
            r, col = divmod(i, nrow)
            grid[:, 1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = samples[i]
        img = ((grid.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        ax.imshow(img.squeeze(-1) if c == 1 else img, cmap="gray" if c == 1 else None, interpolation="nearest")
        ax.axis("off")
    else:
        if reference is not None:
            ax.scatter(*reference[:5000].T.numpy(), s=1, c="lightgrey")
        ax.scatter(*samples[:5000].T.numpy(), s=1, c="tab:blue")
        ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)


def plot_sample_panels(panels: dict[str, Tensor], path: str | Path, reference: Tensor | None = None,
                       nrow: int = 8) -> SavedFigure:
    """One panel per entry (title -> samples); 2-D panels are drawn over `reference` in grey."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, samples) in zip(axes[0], panels.items()):
        draw_panel(ax, samples.detach().cpu(), title, reference, nrow)
    return save_figure(fig, path)


def plot_at_nfe(df: pd.DataFrame, path: str | Path, title: str, y: str = "gt_distance") -> SavedFigure:
    """Samplers at one NFE as horizontal bars of `y` (± its bootstrap std), the floor (adaptive row) as a line."""
    rows = df[~df["solver"].isin(REFERENCE_SOLVERS) & df[y].notna()].copy()
    rows["sampler"] = sampler_label(rows)
    rows = rows.sort_values(y)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(rows) + 1.4))
    ax.barh(rows["sampler"], rows[y], xerr=rows.get(f"{y}_std"), color=sns.color_palette("viridis", len(rows)), capsize=3)
    for row in df[df["solver"].eq("adaptive") & df[y].notna()].itertuples():
        ax.axvline(getattr(row, y), color="k", linestyle="--", linewidth=1, label="floor (GT vs GT)")
    ax.set(xscale="log", xlabel=y.replace("_", " "), title=title)
    ax.invert_yaxis()
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_loss(history: list[tuple[int, float]], path: str | Path, title: str) -> SavedFigure:
    """Training loss (moving average over each logging window) against step (a note instead for an exact teacher)."""
    df = pd.DataFrame(history, columns=["step", "loss"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if df.empty:
        ax.text(0.5, 0.5, "nothing trained:\nthe velocity is exact (closed form)", ha="center", va="center")
        ax.set(xticks=[], yticks=[], title=title)
        return save_figure(fig, path)
    sns.lineplot(data=df, x="step", y="loss", ax=ax)
    ax.set(yscale="log", title=title)
    return save_figure(fig, path)


def plot_step_sizes(steps: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """Step size against position in [0, 1] (step i at (i - 1/2) / K), one line per K (BOSS's grid shape)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    sns.lineplot(data=steps, x="position", y="size", hue="K", marker="o", palette="viridis", ax=ax)
    ax.set(xlabel="position of the step in t (0 = noise, 1 = data)", ylabel="step size", yscale="log", title=title)
    return save_figure(fig, path)


def plot_scale_time(values: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """Learned Bespoke maps: t_r − r (top) and s_r (bottom) against r, one column per base, one line per NFE."""
    bases = list(dict.fromkeys(values["base"]))
    order = [str(n) for n in sorted(values["NFE"].unique())]
    values = values.assign(t_minus_r=values["t"] - values["r"], NFE=values["NFE"].astype(str))
    fig, axes = plt.subplots(2, len(bases), figsize=(4.6 * len(bases) + 1.2, 6), squeeze=False, sharex=True)
    for col, base in enumerate(bases):
        sub = values[values["base"] == base]
        for row, (y, label) in enumerate((("t_minus_r", "t_r − r (0: uniform time)"), ("s", "s_r (1: no scaling)"))):
            ax = axes[row][col]
            sns.lineplot(data=sub, x="r", y=y, hue="NFE", hue_order=order, marker="o", markersize=3,
                         palette="viridis", ax=ax, legend=(row == 0 and col == len(bases) - 1))
            ax.axhline(0.0 if y == "t_minus_r" else 1.0, color="k", linewidth=0.8, linestyle=":")
            ax.set(ylabel=label if col == 0 else "", title=base if row == 0 else "")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1.0), title="NFE")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_pareto(points: pd.DataFrame, path: str | Path, title: str, floor: float | None = None) -> SavedFigure:
    """Distance to the teacher's distribution against latency (log-log), one marker per sampler and mode, labelled by
    schedule; Heun's curve joined by a line (down and to the left is better). Columns: family, mode, label,
    ms_per_sample, gt_distance."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    sns.scatterplot(data=points, x="ms_per_sample", y="gt_distance", hue="family", style="mode", s=60, ax=ax)
    for mode, part in points[points["family"] == "Heun"].groupby("mode"):
        part = part.sort_values("ms_per_sample")
        ax.plot(part["ms_per_sample"], part["gt_distance"], color="grey", linewidth=1, linestyle="-" if mode == "eager" else ":")
    for row in points.itertuples():
        ax.annotate(row.label, (row.ms_per_sample, row.gt_distance), fontsize=6, xytext=(3, 2), textcoords="offset points")
    if floor is not None and not math.isnan(floor):
        ax.axhline(floor, color="k", linestyle="--", linewidth=1, label="floor (GT vs GT)")
    ax.set(xscale="log", yscale="log", xlabel="ms per sample", ylabel="distance to the teacher's distribution", title=title)
    ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, path)


def plot_training_curves(curves: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """One panel per curve kind (columns step, value, run, curve), one line per run, log y (a note instead when
    nothing was trained, e.g. the exact teacher)."""
    kinds = list(dict.fromkeys(curves["curve"]))
    if not kinds:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.text(0.5, 0.5, "nothing trained:\nthe velocity is exact (closed form)", ha="center", va="center")
        ax.set(xticks=[], yticks=[], title=title)
        return save_figure(fig, path)
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        sns.lineplot(data=curves[curves["curve"] == kind], x="step", y="value", hue="run", ax=ax, legend=ax is axes[0][-1])
        ax.set(yscale="log", ylabel=kind, title=kind)
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, title=None)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_teacher_overview(rows: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """One teacher, every sampler of every method: distance to the teacher's distribution against NFE (left; one
    line per sampler, coloured by method) and against ms per sample (right: the quality-latency plane)."""
    rows = rows[rows["gt_distance"].notna() & (rows["nfe"] > 0)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    order = list(dict.fromkeys(rows["method"]))
    sns.lineplot(data=rows, x="nfe", y="gt_distance", hue="method", hue_order=order, units="solver", estimator=None,
                 marker="o", markersize=4, linewidth=1, ax=axes[0], legend=False)
    sns.scatterplot(data=rows, x="ms_per_sample", y="gt_distance", hue="method", hue_order=order, style="method", s=30,
                    ax=axes[1])
    for ax, x in zip(axes, ("NFE", "ms per sample")):
        ax.set(xscale="log", yscale="log", xlabel=x, ylabel="distance to the teacher's distribution")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor labels overlap on a short log axis
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_training_cost(cost: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """Training cost per method beside each teacher's own training, in FLOPs (left, machine-independent) and seconds
    (right, this machine); columns teacher, method, train_flops, train_seconds."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, y, label in ((axes[0], "train_flops", "training FLOPs"), (axes[1], "train_seconds", "training seconds")):
        sns.barplot(data=cost, x="method", y=y, hue="teacher", ax=ax, legend=ax is axes[1])
        ax.set(yscale="log" if y == "train_flops" else "symlog", ylabel=f"{label} (largest sampler of the method)", xlabel="")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_convergence(table: pd.DataFrame, path: str | Path, title: str) -> SavedFigure:
    """RMSE to the ground truth against NFE (log-log), one line per sampler family (`family` column of stacked
    `compare_samplers` tables), with the slopes of order 1 and 2 drawn for reference."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=table, x="nfe", y="rmse_to_gt", hue="family", style="family", markers=True, dashes=False, ax=ax)
    nfe = table["nfe"].sort_values().unique()
    start = table.loc[table["nfe"] == nfe[0], "rmse_to_gt"].max()
    for order, style in ((1, ":"), (2, "--")):
        ax.plot(nfe, start * (nfe / nfe[0]) ** -order, color="grey", linestyle=style, linewidth=1, label=f"order {order}")
    ax.set(xscale="log", yscale="log", xlabel="NFE (network calls)", ylabel="RMSE to ground truth", title=title)
    ax.set_xticks(nfe, [str(int(n)) for n in nfe])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return save_figure(fig, path)
