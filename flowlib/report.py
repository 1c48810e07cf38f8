"""Tables and seaborn figures for `reports/`, and the generated results table in the README.

Reads only result tables (`reports/results/*.csv`); never recomputes anything.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .artifacts import atomic_path, write_text  # noqa: E402
from .evaluate import merge_results  # noqa: E402

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save a figure as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _label(df: pd.DataFrame) -> pd.Series:
    """Sampler label: the solver for baselines, `method:solver` for everything else."""
    return df["solver"].where(df["method"] == "baseline", df["method"] + ":" + df["solver"])


def plot_vs_nfe(df: pd.DataFrame, path: str | Path, y: str = "quality") -> Path:
    """One panel per dataset: `y` against NFE (log-log) per method/solver, with the data and GT as lines."""
    curves = df[~df["solver"].isin(["adaptive", "heldout"]) & df[y].notna()].copy()
    curves["sampler"] = _label(curves)
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        sub = curves[curves["dataset"] == name]
        sns.lineplot(data=sub, x="nfe", y=y, hue="sampler", marker="o", ax=ax)
        for solver, style in (("adaptive", "--"), ("heldout", ":")):
            ref = df[(df["dataset"] == name) & (df["solver"] == solver) & df[y].notna()]
            for row in ref.itertuples():
                label = f"adaptive GT ({int(row.nfe)} NFE)" if solver == "adaptive" else "real held-out data"
                ax.axhline(getattr(row, y), color="k", linestyle=style, linewidth=1, label=label)
        metric = sub["quality_metric"].iloc[0] if y == "quality" and len(sub) else y
        ax.set(xscale="log", yscale="log", title=name, ylabel=metric if y == "quality" else "RMSE to ground truth")
        ax.set_xticks(sorted(sub["nfe"].unique()), labels=[str(n) for n in sorted(sub["nfe"].unique())])
        ax.legend(fontsize=7)
    fig.suptitle(f"{'Quality' if y == 'quality' else 'RMSE to ground truth'} vs NFE (lower is better)")
    return save_figure(fig, path)


def _draw_panel(ax: plt.Axes, samples: Tensor, title: str, reference: Tensor | None, nrow: int) -> None:
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


def plot_sample_panels(panels: dict[str, Tensor], path: str | Path, reference: Tensor | None = None, nrow: int = 8) -> Path:
    """One panel per entry (title -> samples); 2-D panels are drawn over `reference` in grey."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, samples) in zip(axes[0], panels.items()):
        _draw_panel(ax, samples.detach().cpu(), title, reference, nrow)
    return save_figure(fig, path)


def plot_loss(history: list[tuple[int, float]], path: str | Path, title: str) -> Path:
    """Training loss (moving average over each logging window) against step."""
    df = pd.DataFrame(history, columns=["step", "loss"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    sns.lineplot(data=df, x="step", y="loss", ax=ax)
    ax.set(yscale="log", title=title)
    return save_figure(fig, path)


def baseline_checks(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: real-data and ground-truth quality, their ratio, and the fitted Euler RMSE order.

    The order is minus the log-log slope of RMSE to GT against NFE over the largest three NFEs (about 1 for
    Euler once in the asymptotic regime).
    """
    out = []
    for name, sub in df.groupby("dataset", sort=False):
        data = sub.loc[sub["method"] == "data", "quality"]
        gt = sub.loc[(sub["method"] == "baseline") & (sub["solver"] == "adaptive"), ["quality", "nfe"]]
        euler = sub[(sub["method"] == "baseline") & (sub["solver"] == "euler")].sort_values("nfe").tail(3)
        order = float("nan")
        if len(euler) >= 2:
            slope = np.polyfit(np.log(euler["nfe"]), np.log(euler["rmse_to_gt"]), 1)[0]
            order = -slope
        row = {"dataset": name, "metric": sub["quality_metric"].iloc[0],
               "real_heldout": data.iloc[0] if len(data) else float("nan"),
               "ground_truth": gt["quality"].iloc[0] if len(gt) else float("nan"),
               "gt_nfe": int(gt["nfe"].iloc[0]) if len(gt) else 0, "euler_rmse_order": order}
        row["gt_over_real"] = row["ground_truth"] / row["real_heldout"]
        out.append(row)
    return pd.DataFrame(out)


def results_markdown(df: pd.DataFrame) -> str:
    """Per dataset, a table of `quality (rmse)` by sampler (rows) and NFE (columns)."""
    parts = []
    for name, sub in df.groupby("dataset", sort=False):
        metric = ", ".join(sorted(sub["quality_metric"].unique()))
        sub = sub.assign(sampler=_label(sub).str.replace("data:heldout", "real held-out data"))
        cell = sub.apply(lambda r: f"{r.quality:.3g}" + ("" if pd.isna(r.rmse_to_gt) else f" ({r.rmse_to_gt:.2g})"), axis=1)
        fixed = sub[~sub["solver"].isin(["adaptive", "heldout"])].assign(cell=cell)
        table = fixed.pivot_table(index="sampler", columns="nfe", values="cell", aggfunc="first", sort=False).fillna("")
        table.columns = [f"NFE {c}" for c in table.columns]
        parts.append(f"**{name}** — {metric}, lower is better; RMSE to the adaptive ground truth in brackets\n")
        parts.append(table.to_markdown())
        refs = sub[sub["solver"].isin(["adaptive", "heldout"])].assign(cell=cell)
        notes = [f"{r.sampler} ({int(r.nfe)} NFE): {r.cell}" if r.solver == "adaptive" else f"{r.sampler}: {r.cell}"
                 for r in refs.itertuples()]
        if notes:
            parts.append("\nReference: " + "; ".join(notes) + "\n")
    return "\n".join(parts) + "\n"


def update_readme(readme: str | Path, table_md: str) -> bool:
    """Replace the text between the README's results markers with `table_md`; True if it changed."""
    readme = Path(readme)
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_START} ... {README_END}.")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{table_md.strip()}\n{README_END}{tail}"
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.report")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("readme", help="copy reports/results.md into README.md between the results markers")
    p.add_argument("--results", default="reports/results.md")
    p.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    changed = update_readme(args.readme, Path(args.results).read_text())
    print(f"{args.readme}: results table {'updated' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["merge_results", "plot_vs_nfe", "plot_sample_panels", "plot_loss", "baseline_checks", "results_markdown",
           "update_readme", "save_figure"]
