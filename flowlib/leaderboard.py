"""The leaderboard: per teacher, the best sampler of every method within each NFE budget.

Read from the merged result rows only. "Best" means nearest the teacher's own distribution (`gt_distance`, which
resolves the top end; `quality` where a table has no distance). Samplers within the noise band of the best one
(`flowlib.claims.compare` says "within noise") are listed as tied: the band, not the third digit, decides.
"""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from .claims import compare
from .errors import FlowlibError
from .evaluate import REFERENCE_SOLVERS, sampler_label

BUDGETS = (1, 2, 4, 6, 8, 10)
NOT_SAMPLERS = REFERENCE_SOLVERS  # reference rows: the ground truth, real data, a decoder floor


class LeaderboardError(FlowlibError, ValueError):
    """Result rows that cannot make a leaderboard."""


def candidates(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that are samplers: no reference rows, no compiled copies (they repeat their eager row's scores)."""
    keep = ~df["solver"].isin(NOT_SAMPLERS) & ~df["method"].eq("data") & ~df["solver"].astype(str).str.endswith("-compiled")
    return df[keep].assign(sampler=lambda d: sampler_label(d))


def ranking_column(df: pd.DataFrame) -> str:
    """`gt_distance` where the rows have it, else `quality`."""
    return "gt_distance" if df["gt_distance"].notna().any() else "quality"


def best_within(rows: pd.DataFrame, budget: int, sigmas: float = 2.0) -> dict | None:
    """The best sampler among `rows` that spends at most `budget` NFE, and the samplers tied with it.

    Exact ties are broken by fewer NFE, then less time per sample, then name, so the answer never depends on row order.
    """
    col = ranking_column(rows)
    pool = rows[(rows["nfe"] <= budget) & rows[col].notna()]
    if pool.empty:
        return None
    pool = pool.sort_values([col, "nfe", "ms_per_sample", "sampler"], kind="mergesort")
    best = pool.iloc[0]
    std = f"{col}_std"
    tied = [f"{r.sampler}@{r.nfe}" for r in pool.iloc[1:].itertuples()
            if compare(getattr(r, col), best[col], _num(getattr(r, std, math.nan)), _num(best.get(std)), sigmas)
            == "within noise"]
    return {"budget": budget, "best": best["sampler"], "nfe": int(best["nfe"]), "ranked_by": col,
            "gt_distance": best["gt_distance"], "gt_distance_std": best["gt_distance_std"], "quality": best["quality"],
            "quality_std": best["quality_std"], "rmse_to_gt": best["rmse_to_gt"], "ms_per_sample": best["ms_per_sample"],
            "extra_params": best["extra_params"], "train_seconds": best["train_seconds"],
            "trained": _trained(best), "tied": ", ".join(tied),
            "n_tied": len(tied)}


def _trained(row: pd.Series) -> str:
    """How the row's learned component was trained: `N (plateau)`, `N (cap)` or empty for a training-free sampler."""
    steps, conv = row.get("train_steps", math.nan), row.get("converged", math.nan)
    if pd.isna(steps):
        return ""
    return f"{int(steps)} ({'plateau' if str(conv) == 'True' else 'cap' if str(conv) == 'False' else 'no rule'})"


def _num(x: object) -> float:
    return math.nan if x is None or pd.isna(x) else float(x)


def leaderboard(df: pd.DataFrame, budgets: Iterable[int] = BUDGETS, sigmas: float = 2.0) -> pd.DataFrame:
    """One row per (teacher, NFE budget): the best sampler spending at most that many NFE, its numbers and its ties."""
    rows = candidates(df)
    if rows.empty:
        raise LeaderboardError("No sampler rows to rank; run the method stages (`dvc repro`) first.")
    out = []
    for teacher, sub in rows.groupby("teacher", sort=False):
        for budget in budgets:
            best = best_within(sub, budget, sigmas)
            if best is not None:
                out.append({"teacher": teacher, **best})
    return pd.DataFrame(out)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """The leaderboard as one markdown table per teacher."""
    parts = []
    for teacher, sub in board.groupby("teacher", sort=False):
        col = sub["ranked_by"].iloc[0]
        shown = pd.DataFrame({
            "NFE budget": sub["budget"], "best sampler": sub["best"], "NFE": sub["nfe"],
            "to the teacher": [f"{v:.3g} ±{s:.2g}" for v, s in zip(sub["gt_distance"], sub["gt_distance_std"])],
            "to the data": [f"{v:.3g} ±{s:.2g}" for v, s in zip(sub["quality"], sub["quality_std"])],
            "RMSE to GT": sub["rmse_to_gt"].map(lambda v: f"{v:.3g}"),
            "ms / sample": sub["ms_per_sample"].map(lambda v: f"{v:.3g}"),
            "train steps": sub["trained"] if "trained" in sub else "",
            "extra params": sub["extra_params"].map(lambda v: f"{int(v):,}" if pd.notna(v) else ""),
            "train s": sub["train_seconds"].map(lambda v: f"{v:.0f}" if pd.notna(v) else ""),
            "tied within noise (sampler@NFE)": [_shorten(t, n) for t, n in zip(sub["tied"], sub["n_tied"])]})
        parts.append(f"**{teacher}** (ranked by {col.replace('_', ' ')}; lower is better)\n\n{shown.to_markdown(index=False)}\n")
    return "\n".join(parts)


def _shorten(tied: str, n: int, keep: int = 4) -> str:
    """The first `keep` tied samplers and how many more."""
    names = [t for t in tied.split(", ") if t]
    return ", ".join(names[:keep]) + (f" and {n - keep} more" if n > keep else "")


def training_cost(df: pd.DataFrame) -> pd.DataFrame:
    """Per teacher and method, the largest training cost of one of its samplers in FLOPs (machine-independent) and in
    seconds, beside the teacher's own (carried by its ground-truth row, `adaptive`)."""
    rows = candidates(df)
    if "train_flops" not in rows:
        rows = rows.assign(train_flops=math.nan)
    cost = rows.groupby(["teacher", "method"], sort=False)[["train_flops", "train_seconds"]].max().reset_index()
    gt = df[df["solver"] == "adaptive"]
    teachers = pd.DataFrame({"teacher": gt["teacher"], "method": "teacher",
                             "train_flops": gt["train_flops"] if "train_flops" in gt else math.nan,
                             "train_seconds": gt["train_seconds"]})
    return pd.concat([teachers, cost], ignore_index=True)


def training_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every trained sampler row: how its learned component ended (steps, plateau or cap, best step) and what it cost."""
    rows = candidates(df)
    if "train_steps" not in rows:
        return pd.DataFrame()
    rows = rows[rows["train_steps"].notna()]
    ended = rows["converged"].astype(str).map({"True": "plateau", "False": "cap, still improving"}).fillna("no rule")
    return pd.DataFrame({"teacher": rows["teacher"], "sampler": rows["sampler"], "NFE": rows["nfe"],
                         "steps": rows["train_steps"].astype(int), "ended": ended,
                         "best step": rows["best_step"].astype("Int64") if "best_step" in rows else pd.NA,
                         "FLOPs": rows["train_flops"].map(lambda v: f"{v:.3g}" if v > 0 else "-"),  # closed form: no matmuls
                         "seconds": rows["train_seconds"].round(1)}).reset_index(drop=True)


PAPER_METHODS = ("boss", "bespoke", "flowturbo", "fgm")
VERSUS = {"better": "beats", "worse": "loses", "within noise": "within noise", "not measured": "not measured"}


def versus_diffusers(df: pd.DataFrame, budgets: Iterable[int] = BUDGETS, sigmas: float = 2.0) -> pd.DataFrame:
    """Per teacher, NFE budget and paper: the paper's best sampler against the best of diffusers' schedulers
    (DPM-Solver++, UniPC in flow form: rows of method `diffusers`), each spending at most the budget, by the distance to
    the teacher's distribution beyond the noise band (`beats`, `within noise`, `loses`). Empty without diffusers rows."""
    rows = candidates(df)
    out = []
    for teacher, sub in rows.groupby("teacher", sort=False):
        theirs_rows = sub[sub["method"] == "diffusers"]
        for budget in budgets:
            theirs = best_within(theirs_rows, budget, sigmas) if len(theirs_rows) else None
            if theirs is None:
                continue
            for paper in PAPER_METHODS:
                mine_rows = sub[sub["method"] == paper]
                ours = best_within(mine_rows, budget, sigmas) if len(mine_rows) else None
                if ours is None:
                    continue
                col = ours["ranked_by"]
                outcome = compare(ours[col], theirs[col], _num(ours[f"{col}_std"]), _num(theirs[f"{col}_std"]), sigmas)
                out.append({"teacher": teacher, "budget": budget, "paper": paper,
                            "ours": f"{ours['best']}@{ours['nfe']}", "ours_distance": ours[col],
                            "ours_std": ours[f"{col}_std"], "ours_trained": ours["trained"],
                            "diffusers": f"{theirs['best']}@{theirs['nfe']}", "diffusers_distance": theirs[col],
                            "diffusers_std": theirs[f"{col}_std"], "outcome": VERSUS[outcome]})
    return pd.DataFrame(out)


def versus_sentences(table: pd.DataFrame) -> str:
    """One line per paper: in how many (teacher, budget) cases of `versus_diffusers` it beats, ties or loses, and where."""
    if table.empty:
        return "No diffusers scheduler rows (`eval.diffusers` is empty).\n"
    lines = []
    for paper, sub in table.groupby("paper", sort=False):
        counts = sub["outcome"].value_counts()
        where = {kind: ", ".join(f"{r.teacher}@{r.budget}" for r in sub[sub["outcome"] == kind].itertuples()) or "none"
                 for kind in ("beats", "loses")}
        lines.append(f"- **{paper}** beats diffusers' best beyond the noise band in {counts.get('beats', 0)} of {len(sub)} "
                     f"(teacher, budget) cases ({where['beats']}), ties in {counts.get('within noise', 0)} and "
                     f"loses in {counts.get('loses', 0)} ({where['loses']}).")
    return "\n".join(lines) + "\n"


def versus_markdown(table: pd.DataFrame) -> str:
    """`versus_sentences` and a table per teacher (paper columns, budget rows)."""
    parts = [versus_sentences(table)]
    for teacher, sub in table.groupby("teacher", sort=False):
        cell = sub.assign(cell=[f"{o}: {a} {d:.3g} vs {b} {e:.3g}" for o, a, d, b, e in
                                zip(sub["outcome"], sub["ours"], sub["ours_distance"], sub["diffusers"],
                                    sub["diffusers_distance"])])
        wide = cell.pivot_table(index="budget", columns="paper", values="cell", aggfunc="first", sort=False).fillna("")
        parts.append(f"**{teacher}** (NFE budget; each cell: the paper's best against diffusers' best, distance to the "
                     f"teacher)\n\n{wide.to_markdown()}\n")
    return "\n".join(parts)


def closer_than(table: pd.DataFrame, reference: str, column: str = "rmse_to_gt", by: str = "family") -> pd.DataFrame:
    """Per NFE, the reference sampler's `column` and the samplers that end below it (closer), from a
    `compare_samplers` table with a `by` column naming each row's sampler: a notebook's comparison sentences,
    generated from its own table rather than typed.

    >>> t = pd.DataFrame({"family": ["euler", "a", "b"] * 2, "nfe": [2, 2, 2, 4, 4, 4],
    ...                   "rmse_to_gt": [0.5, 0.4, 0.6, 0.2, 0.3, 0.1]})
    >>> closer_than(t, "euler")["closer"].tolist()
    ['a', 'b']
    """
    if reference not in set(table[by]):
        raise FlowlibError(f"No {by} {reference!r} in the table; it has {sorted(set(table[by]))}.")
    rows = []
    for nfe, group in table.groupby("nfe", sort=True):
        ref = group.loc[group[by] == reference, column]
        if ref.empty:
            continue
        below = group[(group[by] != reference) & (group[column] < float(ref.iloc[0]))].sort_values(column)
        rows.append({"nfe": int(nfe), reference: float(ref.iloc[0]), "closer": ", ".join(below[by]) or "none"})
    return pd.DataFrame(rows)
