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


def _cell(value: float, std: float, bracket: float = float("nan")) -> str:
    """`value ±std (bracket)`, leaving out what is missing."""
    if pd.isna(value):
        return ""
    text = f"{value:.3g}" + ("" if pd.isna(std) else f" ±{std:.2g}")
    return text + ("" if pd.isna(bracket) else f" ({bracket:.2g})")


def _table(sub: pd.DataFrame, col: str, bracket: str | None = None) -> str:
    cells = sub.apply(lambda r: _cell(r[col], r[f"{col}_std"], r[bracket] if bracket else float("nan")), axis=1)
    fixed = sub.assign(cell=cells)[~sub["solver"].isin(["adaptive", "heldout"]) & sub[col].notna()]
    table = fixed.pivot_table(index="sampler", columns="nfe", values="cell", aggfunc="first", sort=False).fillna("")
    table.columns = [f"NFE {c}" for c in table.columns]
    return table.to_markdown()


def results_markdown(df: pd.DataFrame) -> str:
    """Per dataset, two tables of sampler (rows) by NFE (columns), each number ± its bootstrap std:
    the distance to the data (what the papers report), and the distance to the teacher's own distribution
    (which resolves the top end) with the RMSE to the ground truth in brackets. References below each."""
    parts = []
    for name, sub in df.groupby("dataset", sort=False):
        sub = sub.assign(sampler=sampler_label(sub))
        metric = ", ".join(sorted(sub["quality_metric"].unique()))
        parts.append(f"**{name}**: distance to the data ({metric}), lower is better, ± one bootstrap standard deviation\n")
        parts.append(_table(sub, "quality"))
        refs = []
        for row in sub[sub["solver"] == "heldout"].itertuples():
            refs.append(f"real held-out data {_cell(row.quality, row.quality_std)}")
        for row in sub[sub["solver"] == "adaptive"].itertuples():
            refs.append(f"adaptive ground truth ({int(row.nfe)} NFE) {_cell(row.quality, row.quality_std)}")
        if refs:
            parts.append("\nReference: " + "; ".join(refs) + "\n")
        if sub["gt_distance"].notna().any():
            gt_metric = ", ".join(sorted(sub.loc[sub["gt_distance"].notna(), "gt_distance_metric"].unique()))
            parts.append(f"**{name}**: distance to the teacher's own distribution ({gt_metric}), ± std; "
                         "RMSE to the ground truth from the same noise in brackets\n")
            parts.append(_table(sub, "gt_distance", "rmse_to_gt"))
            floors = [f"floor (ground truth vs an independent ground-truth draw) {_cell(r.gt_distance, r.gt_distance_std)}"
                      for r in sub[sub["solver"] == "adaptive"].itertuples() if not pd.isna(r.gt_distance)]
            if floors:
                parts.append("\nReference: " + "; ".join(floors) + "\n")
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

