"""Combinations no paper tried (stage `combos@<teacher>`): the methods stacked on BOSS's straightened network.

BOSS changes the network (straightened for its Bellman grid at K steps); Bespoke and FlowTurbo change the solver. They
act on different things, so they can be stacked:
- `boss+bespoke`: an RK2-Bespoke solver trained on the straightened network's own paths, at K NFE;
- `boss+flowturbo`: FlowTurbo's H1P(K−2) schedule (K teacher calls, no refiner) on the straightened network.
Rows are scored like every other sampler, against the original teacher's ground truth and distribution; each carries
`parts`, the component samplers at the same NFE, so the report can say whether the gains add up (`gains_table`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..claims import compare
from ..config import Params
from ..errors import ArgumentError
from ..flow import load_velocity_model
from ..layout import BOSS_FULL
from ..solvers.bespoke import BespokeSampler
from ..solvers.flowturbo import FlowTurboSampler
from .common import TeacherContext, rebuild_hint, training_columns, validation_curve

GAINS = {"better": "adds up", "within noise": "no gain over the best part", "worse": "worse than the best part"}


def boss_network(params: Params, teacher: str, k: int) -> nn.Module:
    """BOSS's fully finetuned network at K steps (stage `boss@<teacher>`)."""
    if k not in params.boss.finetune_k:
        raise ArgumentError(f"combos.k = {k} is not one of boss.finetune_k {params.boss.finetune_k}: BOSS straightened no "
                         f"network at {k} steps. Set combos.k to one of them.")
    return load_velocity_model(params.layout.boss_student(teacher, BOSS_FULL, k),
                               rebuild_hint(f"boss@{teacher}")).to(params.torch_device)


def flowturbo_schedule(k: int) -> str:
    """The P-only FlowTurbo schedule with exactly k teacher calls: H1P(k−2) (k − 1 steps)."""
    if k < 3:
        raise ArgumentError(f"A FlowTurbo schedule with a pseudo-corrector step needs at least 3 teacher calls, got K = {k}.")
    return f"H1P{k - 2}"


def combo_rows(params: Params, ctx: TeacherContext, progress: bool = True) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Both combinations on the BOSS network at K = `combos.k`, as result rows (method names the combination), and the
    validation curve of the Bespoke solver trained on it (`validation_curve`)."""
    from .bespoke import ground_truth_pool, train_solvers  # the Bespoke stage's own steps, pointed at the BOSS net

    cp, k = params.combos, params.combos.k
    net = boss_network(params, ctx.name, k)
    own = dataclasses.replace(ctx, model=net)  # same noise, ground truth and reference: only the network differs
    local = dataclasses.replace(
        params, artifacts=Path(params.artifacts) / "combos" / ctx.name,
        bespoke=params.bespoke.model_copy(update={"nfes": [k], "bases": ["rk2"], "pool": cp.pool, "val": cp.val}))
    gt = ground_truth_pool(local, own, progress=progress)
    res = train_solvers(local, own, gt, progress=progress)[("rk2", k)]
    rows = []
    sampler = BespokeSampler(net, res.ema_model, name="boss+bespoke-rk2")
    row = ctx.evaluate(sampler, method="boss+bespoke", extra_params=res.ema_model.num_parameters(),
                       train_seconds=res.seconds + gt["seconds"])
    rows.append({**row, "parts": f"{BOSS_FULL};bespoke-rk2", "boss_k": k, **training_columns(res),
                 "train_flops": res.flops + gt["flops"]})  # the solver's own ground-truth pool counts in its cost
    schedule = flowturbo_schedule(k)
    row = ctx.evaluate(FlowTurboSampler(net, schedule, name=f"boss+{schedule}"), method="boss+flowturbo")
    rows.append({**row, "parts": f"{BOSS_FULL};{schedule}", "boss_k": k})
    return rows, validation_curve(res.val_history, f"boss+bespoke-rk2@{k}", "validation RMSE")


def gains_table(df: pd.DataFrame, sigmas: float = 2.0) -> pd.DataFrame:
    """Per combination row of `df` (the merged results): its distance to the teacher's distribution and RMSE beside
    each part's at the same teacher and NFE, and whether the combination beats its best part beyond the noise band.

    `adds up` when it is better than every part; `no gain` when within noise of the best part; `worse` otherwise.
    """
    if "parts" not in df:
        return pd.DataFrame()
    out = []
    for row in df[df["parts"].notna() & (df["parts"].astype(str) != "")].itertuples():
        same = df[(df["teacher"] == row.teacher) & (df["nfe"] == row.nfe)]
        parts = [same[same["solver"] == p].iloc[0] for p in str(row.parts).split(";") if (same["solver"] == p).any()]
        if not parts:
            continue
        best = min(parts, key=lambda p: p["gt_distance"])
        outcome = compare(row.gt_distance, best["gt_distance"], row.gt_distance_std, best["gt_distance_std"], sigmas)
        out.append({"teacher": row.teacher, "nfe": row.nfe, "combination": row.solver,
                    "gt_distance": row.gt_distance, "gt_distance_std": row.gt_distance_std, "rmse_to_gt": row.rmse_to_gt,
                    **{f"part {i + 1}": f"{p['solver']}: {p['gt_distance']:.3g}±{p['gt_distance_std']:.2g} "
                       f"(RMSE {p['rmse_to_gt']:.3g})" for i, p in enumerate(parts)},
                    "verdict": GAINS.get(outcome, outcome)})
    return pd.DataFrame(out)


def gains_sentence(gains: pd.DataFrame) -> str:
    """One sentence per teacher for the report: do the gains add up?"""
    if gains.empty:
        return "No combination rows: run the `combos@<teacher>` stages."
    parts = []
    for teacher, sub in gains.groupby("teacher", sort=False):
        items = ", ".join(f"{r.combination} at {int(r.nfe)} NFE: {r.verdict}" for r in sub.itertuples())
        parts.append(f"**{teacher}**: {items}.")
    return " ".join(parts)
