"""Result tables for reports/ and the README: markdown tables, sanity checks, the README's generated table.

Reads only result tables (`reports/results/*.csv`); never recomputes anything.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import write_text
from .evaluate import sampler_label

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


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
        sub = sub.assign(sampler=sampler_label(sub).str.replace("data:heldout", "real held-out data"))
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

