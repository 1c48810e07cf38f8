"""The BOSS experiment of notebook 02_boss: Bellman grids, the paper's Table 1 and Table 2 analogues, and
a verdict on each claim (papers/boss.md §6). Algorithms live in flowlib.solvers.bellman and
flowlib.distill; this module wires them to one teacher and the shared result table.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from .artifacts import load_checkpoint, save_checkpoint
from .config import Params
from .distill import reflow, straighten, straightening_pairs
from .experiment import TeacherContext, teacher_dir
from .flow import save_velocity_model
from .models import count_parameters
from .solvers import ODESampler, bellman_grid, bellman_values, euler_cost_matrix, euler_rollout, uniform_grid


def boss_dir(params: Params, teacher: str) -> Path:
    return params.artifacts / "boss" / teacher


def compute_grids(params: Params, ctx: TeacherContext) -> dict[str, Any]:
    """Phase 1: cost matrix from the EMA teacher's fine Euler rollout, and the Bellman path for every K used.

    Saved to artifacts/boss/<teacher>/grids.pt (one cost matrix per teacher, reused by every later step).
    """
    bp = params.boss
    start = time.perf_counter()
    noise = torch.randn(bp.n_cost, *ctx.dataset.shape, generator=torch.Generator().manual_seed(bp.seed))
    cost = euler_cost_matrix(euler_rollout(ctx.model, noise, bp.n_fine))
    ks = sorted(set(bp.nfes) | set(bp.finetune_k))
    paths = {k: bellman_grid(cost, k) for k in ks}
    values = bellman_values(cost, max(ks))
    info = {
        "cost": cost, "paths": paths, "times": uniform_grid(bp.n_fine),
        "dp_value": {k: float(values[k, 0]) for k in ks}, "seconds": time.perf_counter() - start,
    }
    save_checkpoint(info, boss_dir(params, ctx.name) / "grids.pt")
    return info


def step_sizes(grids: dict[str, Any]) -> pd.DataFrame:
    """Long table (K, step, position, size) of the Bellman step sizes, for the step-size figure."""
    rows = []
    for k, path in grids["paths"].items():
        t = grids["times"][path]
        for i, h in enumerate((t[1:] - t[:-1]).tolist()):
            rows.append({"K": k, "step": i + 1, "position": (i + 0.5) / k, "size": h})
    return pd.DataFrame(rows)


def training_free_rows(params: Params, ctx: TeacherContext, grids: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 1 analogue: Euler on each Bellman grid (uniform Euler at the same NFE is in the baselines table)."""
    rows = []
    for k in params.boss.nfes:
        sampler = ODESampler(ctx.model, grids["times"][grids["paths"][k]], "euler", name="bellman-euler")
        row = ctx.evaluate(sampler, method="boss", timing_repeats=params.eval.timing_repeats)
        rows.append({**row, "dp_value": grids["dp_value"][k], "trained_params": 0})
    return rows


def finetune_rows(params: Params, ctx: TeacherContext, grids: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """Table 2 analogue: BOSS (full and LoRA), Uniform-Reflow and Distill-K-Reflow at equal iterations.

    Pairs come from the teacher's 100-step Euler trajectories of fresh noise (the evaluation noise stays held
    out); the K = 1 pairs (noise, endpoint) are the reflow coupling. Students are saved as plain nets.
    """
    bp = params.boss
    teacher_state = load_checkpoint(teacher_dir(params, ctx.name) / "teacher.pt")
    noise = torch.randn(bp.n_pairs, *ctx.dataset.shape, generator=torch.Generator().manual_seed(bp.seed + 1))
    rollout = euler_rollout(ctx.model, noise, bp.n_fine)
    z, x1 = rollout.states[0], rollout.states[-1]
    times = grids["times"]
    rows = []

    def save(model, name: str) -> None:
        save_velocity_model(boss_dir(params, ctx.name) / f"{name}.pt", model, teacher_state["model_config"],
                            tuple(teacher_state["shape"]), init="ema-teacher")

    def record(model, sampler_grid, method: str, solver: str, seconds: float, trained: int) -> None:
        sampler = ODESampler(model, sampler_grid, "euler", name=solver)
        row = ctx.evaluate(sampler, method=method, train_seconds=seconds, timing_repeats=params.eval.timing_repeats)
        rows.append({**row, "trained_params": trained})

    uniform_model, uniform_result = reflow(ctx.model, z, x1, bp.train, bp.batch_size, eps=bp.reflow_eps, progress=progress)
    save(uniform_model, "uniform-reflow")
    n_params = count_parameters(ctx.model)
    lora_name = f"bellman-euler+ft-lora{bp.lora_rank}"
    for k in tqdm(bp.finetune_k, desc="finetune K", disable=not progress):
        path = grids["paths"][k]
        pairs = straightening_pairs(rollout, path)
        full, res, trained = straighten(ctx.model, pairs, bp.train, bp.batch_size, progress=progress)
        save(full, f"bellman-euler+ft-full-k{k}")
        record(full, times[path], "boss", "bellman-euler+ft-full", res.seconds, trained)
        lora, res, trained = straighten(ctx.model, pairs, bp.train, bp.batch_size, lora_rank=bp.lora_rank,
                                        lora_alpha=bp.lora_alpha, progress=progress)
        save(lora, f"{lora_name}-k{k}")
        record(lora, times[path], "boss", lora_name, res.seconds, trained)
        distill, res = reflow(ctx.model, z, x1, bp.train, bp.batch_size, k=k, eps=bp.reflow_eps, progress=progress)
        save(distill, f"distill-{k}-reflow-k{k}")
        record(distill, uniform_grid(k), "reflow", f"distill-{k}-reflow", res.seconds, n_params)
        record(uniform_model, uniform_grid(k), "reflow", "uniform-reflow", uniform_result.seconds, n_params)
    return rows


# ------------------------------------------------------------------------------------------- verdicts
def _lookup(df: pd.DataFrame, solver: str, nfe: int, col: str) -> float:
    hit = df[(df["solver"] == solver) & (df["nfe"] == nfe)]
    return float(hit[col].iloc[0]) if len(hit) else float("nan")


def _verdict(wins: list[bool]) -> str:
    if wins and all(wins):
        return "holds"
    return "partly holds" if any(wins) else "does not hold"


def boss_claims(df: pd.DataFrame, params: Params, grids: dict[str, Any]) -> pd.DataFrame:
    """The paper's claims with this run's numbers (quality and RMSE from `df`, which holds the teacher's
    baseline rows and the BOSS rows) and a verdict; criteria are stated in each row."""
    bp = params.boss
    lora = f"bellman-euler+ft-lora{bp.lora_rank}"
    q = lambda s, k: _lookup(df, s, k, "quality")  # noqa: E731
    r = lambda s, k: _lookup(df, s, k, "rmse_to_gt")  # noqa: E731
    claims = []

    wins = [q("bellman-euler", k) < q("euler", k) and r("bellman-euler", k) < r("euler", k) for k in bp.nfes]
    evidence = "; ".join(f"K={k}: {q('euler', k):.3g}→{q('bellman-euler', k):.3g} (RMSE {r('euler', k):.2g}→{r('bellman-euler', k):.2g})" for k in bp.nfes)
    claims.append(("Bellman steps beat uniform steps at equal NFE (quality and RMSE, every K)", evidence, _verdict(wins)))

    sizes = {k: grids["times"][grids["paths"][k]].diff() for k in bp.nfes if k >= 4}
    shapes = [bool(h[0] < h.max() and h[-1] < h.max()) for h in sizes.values()]
    evidence = "; ".join(f"K={k}: " + ", ".join(f"{x:.2f}" for x in h.tolist()) for k, h in sizes.items())
    claims.append(("Step sizes are small at both ends, large in the middle (first and last < largest)", evidence, _verdict(shapes)))

    ks = sorted(bp.nfes)
    dp = [grids["dp_value"][k] for k in ks]
    rm = [r("bellman-euler", k) for k in ks]
    mono = all(a > b for a, b in zip(dp, dp[1:])) and all(a > b for a, b in zip(rm, rm[1:]))
    claims.append(("DP value falls with K and ranks grids like RMSE to GT",
                   "; ".join(f"K={k}: V={v:.3g}, RMSE={e:.2g}" for k, v, e in zip(ks, dp, rm)), _verdict([mono])))

    wins = [q("bellman-euler+ft-full", k) < q("bellman-euler", k) for k in bp.finetune_k]
    claims.append(("Straightening improves on the training-free Bellman grid",
                   "; ".join(f"K={k}: {q('bellman-euler', k):.3g}→{q('bellman-euler+ft-full', k):.3g}" for k in bp.finetune_k),
                   _verdict(wins)))

    wins, parts = [], []
    for k in bp.finetune_k:
        share = _lookup(df, lora, k, "trained_params") / _lookup(df, "bellman-euler+ft-full", k, "trained_params")
        wins.append(q(lora, k) <= 1.25 * q("bellman-euler+ft-full", k))
        parts.append(f"K={k}: LoRA {q(lora, k):.3g} vs full {q('bellman-euler+ft-full', k):.3g} with {100 * share:.1f}% of parameters")
    claims.append(("LoRA is close to full finetuning (quality within 25 %) at a small fraction of parameters",
                   "; ".join(parts), _verdict(wins)))

    wins = [q("bellman-euler+ft-full", k) < min(q("uniform-reflow", k), q(f"distill-{k}-reflow", k)) for k in bp.finetune_k]
    claims.append(("BOSS beats Uniform-Reflow and Distill-K-Reflow at equal iterations",
                   "; ".join(f"K={k}: BOSS {q('bellman-euler+ft-full', k):.3g}, uniform-reflow {q('uniform-reflow', k):.3g}, "
                             f"distill-{k} {q(f'distill-{k}-reflow', k):.3g}" for k in bp.finetune_k), _verdict(wins)))
    return pd.DataFrame(claims, columns=["claim", "our numbers", "verdict"])
