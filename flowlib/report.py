"""Result tables for reports/ and the README: markdown tables, sanity checks, the report's pages.

Reads only result tables (`reports/results/*.csv`), claims (`reports/claims/*.csv`) and the executed notebooks'
timings; never recomputes anything. `reports/README.md` is the report a code host renders; the main README gets the
leaderboard and the scorecard summary between its markers (`python -m flowlib.report readme`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .artifacts import write_text
from .errors import FlowlibError
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
        raise ReportError(f"{readme} lacks the markers {README_START} ... {README_END}.")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{table_md.strip()}\n{README_END}{tail}"
    if new != text:
        write_text(readme, new)
    return new != text


class ReportError(FlowlibError, ValueError):
    """The report's inputs are incomplete: names the stage that would make them."""


def require_results(results_dir: str | Path, stages: Iterable[str], teachers: Iterable[str]) -> None:
    """Fail, naming the stages to run, unless every `<stage>-<teacher>.csv` exists and has rows."""
    missing = []
    for stage in stages:
        for teacher in teachers:
            path = Path(results_dir) / f"{stage}-{teacher}.csv"
            if not path.is_file() or len(pd.read_csv(path)) == 0:
                missing.append(f"`dvc repro {stage}@{teacher}` ({path.name} {'is empty' if path.is_file() else 'is missing'})")
    if missing:
        raise ReportError("The report would show empty tables; run first: " + "; ".join(missing))


def report_teachers(params) -> list[str]:
    """The teachers the report covers: every configured one. In smoke mode (the test suite runs each method notebook
    for its default teacher only) just those whose baselines table exists, so nbval checks the report on what it ran."""
    names = list(params.teachers)
    if params.smoke:
        names = [t for t in names if (params.reports / "results" / f"baselines-{t}.csv").is_file()]
    return names


def stage_times(notebooks_dir: str | Path) -> pd.DataFrame:
    """Seconds each executed notebook took (papermill's own record in `reports/notebooks/*.ipynb`), by stage."""
    rows = []
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            rows.append({"notebook": path.stem, "seconds": round(float(meta["duration"]), 1)})
    return pd.DataFrame(rows, columns=["notebook", "seconds"])


def readme_summary(board_md: str, summary: pd.DataFrame) -> str:
    """The block the main README shows: the leaderboard and the scorecard's counts, with links to the full report."""
    return (f"{board_md.strip()}\n\n**Reproduction scorecard** (claims per overall verdict; every claim, teacher by teacher, "
            f"in [reports/README.md](reports/README.md#reproduction-scorecard)):\n\n{summary.to_markdown()}\n\n"
            "Full report: [reports/README.md](reports/README.md) (tables, figures, links to every executed notebook) and "
            "[reports/report.html](reports/report.html) (the executed report notebook); every sampler's numbers: "
            "[reports/results.md](reports/results.md).\n")


def report_page(board_md: str, card_md: str, gains_md: str, figures: Iterable[str], notebooks: Iterable[str],
                times: pd.DataFrame, training_md: str = "") -> str:
    """`reports/README.md`: leaderboard, scorecard, combinations, figures, executed notebooks and stage times.

    `figures` and `notebooks`: paths relative to the reports directory."""
    figs = "\n".join(f"![{Path(f).stem}]({f})" for f in figures)
    nbs = "\n".join(f"- [{Path(n).stem}](notebooks/{Path(n).name})" for n in notebooks)
    total = times["seconds"].sum() if len(times) else 0.0
    return (
        "# flowlib report\n\nGenerated by `dvc repro` (stage `report`, notebook `06_report`); do not edit.\n\n"
        "## Leaderboard\n\nPer teacher and NFE budget, the sampler nearest the teacher's own distribution among all that "
        "spend at most that many network calls; samplers within its noise band are listed as tied.\n\n"
        f"{board_md}\n## Reproduction scorecard\n\nEvery claim of the four papers, from `reports/claims/*.csv`; each "
        "verdict links to the claim's criterion and numbers.\n\n"
        f"{card_md}\n## How each learned component was trained\n\nEvery learned component trains until its validation "
        "score stops improving (`patience` checks every `val_every` steps without a relative gain of `rel_tol`) or hits "
        "its cap, and keeps its best checkpoint; `ended` says which. A negative verdict that rests on a component "
        "stopped at its cap, still improving, is `inconclusive`. Costs in floating-point operations (machine-"
        "independent: the matrix products and convolutions of every forward and backward pass, as torch's FlopCounterMode "
        "counts them; `-` where the only network is the exact teacher's closed form, which has none), wall time beside."
        f"\n\n{training_md}\n\n"
        f"## Combinations no paper tried\n\n{gains_md}\n\n## Figures\n\n{figs}\n\n"
        f"## Executed notebooks\n\n{nbs}\n\n## Time per stage\n\nFrom the executed notebooks (papermill), "
        f"{total / 60:.1f} min in all (without install and DVC's own overhead):\n\n{times.to_markdown(index=False)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.report")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("readme", help="copy reports/summary.md into README.md between the results markers")
    p.add_argument("--results", default="reports/summary.md")
    p.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    changed = update_readme(args.readme, Path(args.results).read_text())
    print(f"{args.readme}: results table {'updated' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

