"""The FlowTurbo experiment of notebook 04_flowturbo: a velocity refiner for one teacher, H/P/R schedules eager and
compiled, a latency table, the acceleration ratio against Heun, ablations and a computed verdict on each claim.
Algorithms live in flowlib.models.refiner, flowlib.distill.flowturbo and flowlib.solvers.flowturbo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..artifacts import write_json
from ..claims import ClaimSpec, Evidence, Finding, PaperClaims, compare, ratio
from ..config import Params
from ..distill.flowturbo import load_refiner, save_refiner, train_refiner
from ..evaluate import headline_metrics, sampler_latency
from ..flow import TrainData, count_flops
from ..metrics import median_latency, wall_time
from ..models import VelocityRefiner, count_parameters
from ..solvers.flowturbo import FlowTurboSampler, Schedule, compiled_steps
from ..train_data import DataSampler
from .common import TEACHER_VAL, TeacherContext, rebuild_hint, training_columns

# (ablation, with, without): each pair differs in one component; rows whose schedules are not configured are skipped.
ABLATIONS = [
    ("pseudo corrector, same teacher NFE", "H1P2", "H2"),
    ("pseudo corrector, same teacher NFE", "H1P4", "H3"),
    ("pseudo corrector, same teacher NFE", "H1P8", "H5"),
    ("pseudo corrector before the refiner", "H1P4R2", "H3R2"),
    ("refiner added, same teacher NFE", "H1P2R2", "H1P2"),
    ("refiner added, same teacher NFE", "H1P4R2", "H1P4"),
    ("refiner added, same teacher NFE", "H1P8R3", "H1P8"),
    ("H→P→R order vs interleaved", "H2P2R2", "H1P1R1H1P1R1"),
]


def heun_schedule(nfe: int) -> str:
    """Heun at `nfe` teacher calls as a FlowTurbo schedule (H-only equals the Heun solver)."""
    return f"H{nfe // 2}"


# ---------------------------------------------------------------------------------------------- refiner
def fit_refiner(params: Params, ctx: TeacherContext, progress: bool = True) -> dict[str, Any]:
    """Train the teacher's refiner (resuming a matching checkpoint) and save its EMA weights."""
    fp = params.flowturbo
    config = fp.refiners[ctx.name].model_dump()
    torch.manual_seed(fp.train.seed)
    refiner = VelocityRefiner(ctx.dataset.shape, config).to(ctx.device)
    out, path = params.layout.stage("flowturbo", ctx.name), params.layout.refiner(ctx.name)
    data = TrainData(DataSampler(ctx.dataset.sample_batch), fp.batch_size, ctx.dataset.heldout[:TEACHER_VAL])
    result = train_refiner(ctx.model, refiner, data, fp.train, delta_max=fp.delta_max, ckpt_dir=out,
                           run_config={"refiner": config, "teacher": ctx.name}, progress=progress)
    n_ref, n_teacher = count_parameters(refiner), count_parameters(ctx.model)
    info = {"params": n_ref, "teacher_params": n_teacher, "param_ratio": ratio(n_ref, n_teacher), "train_seconds": result.seconds,
            "train_fraction": ratio(result.seconds, ctx.train_seconds), "flop_fraction": ratio(result.flops, ctx.train_flops),
            **training_columns(result)}
    save_refiner(path, result.ema_model, config, **info)
    write_json(out / "meta.json", {**info, "history": result.history, "val_history": result.val_history})
    return {**info, "refiner": load_refiner(path, rebuild_hint(f"flowturbo@{ctx.name}")).to(ctx.device),
            "history": result.history, "val_history": result.val_history}


def call_costs(ctx: TeacherContext, refiner: VelocityRefiner, batches: list[int], repeats: int) -> pd.DataFrame:
    """Median time of one teacher call and one refiner call per batch size, and their ratio (eager); beside them the
    FLOPs of each call and their ratio (machine-independent)."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        x = torch.randn(b, *ctx.dataset.shape, generator=gen).to(ctx.device)
        t = torch.tensor(0.5, device=ctx.device).expand(b)
        with torch.no_grad():
            teacher_s = median_latency(partial(ctx.model, x, t), repeats)
            refiner_s = median_latency(partial(refiner, x, t, x), repeats)
            teacher_flops = count_flops(partial(ctx.model, x, t))[1]
            refiner_flops = count_flops(partial(refiner, x, t, x))[1]
        rows.append({"batch": b, "teacher_call_ms": 1e3 * teacher_s, "refiner_call_ms": 1e3 * refiner_s,
                     "time_ratio": refiner_s / teacher_s, "teacher_call_flops": teacher_flops,
                     "refiner_call_flops": refiner_flops, "flop_ratio": ratio(refiner_flops, teacher_flops)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------- rows
def samplers(params: Params, ctx: TeacherContext, refiner: VelocityRefiner) -> dict[str, FlowTurboSampler]:
    """Eager sampler per configured schedule, by its canonical name."""
    out = {}
    for text in params.flowturbo.schedules:
        schedule = Schedule.parse(text)
        out[str(schedule)] = FlowTurboSampler(ctx.model, schedule, refiner if schedule.count("R") else None)
    return out


def schedule_rows(params: Params, ctx: TeacherContext, fit: dict[str, Any], progress: bool = True) -> list[dict[str, Any]]:
    """One result row per schedule (eager): `nfe` teacher calls, the refiner's size and training time when it has R."""
    rows = []
    for name, sampler in tqdm(samplers(params, ctx, fit["refiner"]).items(), desc=f"flowturbo {ctx.name}",
                              disable=not progress):
        uses = sampler.schedule.count("R") > 0
        row = ctx.evaluate(sampler, method="flowturbo", extra_params=fit["params"] if uses else 0,
                           train_seconds=fit["train_seconds"] if uses else 0.0)
        if uses:
            row.update({k: fit[k] for k in ("train_steps", "converged", "best_step", "train_flops")})
        rows.append({**row, "schedule": name, "steps": sampler.schedule.n_steps, "refiner_calls": sampler.refiner_calls,
                     "compiled": False})
    return rows


def comparison_rows(rows: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """FlowTurbo's schedules beside the teacher's Euler and Heun, its ground truth and the real data."""
    keep = baselines["solver"].isin(["euler", "heun", "adaptive"]) | baselines["method"].eq("data")
    return pd.concat([baselines[keep], rows], ignore_index=True)


def latency_grid(latency: pd.DataFrame) -> pd.DataFrame:
    """Milliseconds per sample, one row per sampler and one column per (compiled, batch size)."""
    return latency.pivot_table(index="sampler", columns=["compiled", "batch"], values="ms_per_sample", sort=False)


def latency_samplers(params: Params, ctx: TeacherContext, refiner: VelocityRefiner) -> dict[str, str]:
    """Schedule of every sampler in the latency table: Heun at each of `flowturbo.heun_nfes`, then the FlowTurbo ones."""
    heun = {f"heun@{n}": heun_schedule(n) for n in sorted(params.flowturbo.heun_nfes)}
    return {**heun, **{name: name for name in samplers(params, ctx, refiner)}}


def latency_table(params: Params, ctx: TeacherContext, refiner: VelocityRefiner, progress: bool = True) -> dict[str, Any]:
    """Milliseconds per sample at each latency batch, eager and (with `flowturbo.compile`) compiled, median of repeats.

    Every sampler first runs twice per batch size (this compiles the compiled ones: one compiled step per kind, H, P
    and R, shared by all schedules; the time spent compiling is reported apart). Then the timed runs go round-robin over
    the samplers, so a slow spell of the machine hits every sampler alike. The compiled samples are checked against
    the eager ones on the evaluation noise (max |difference|). Returns `latency` (long table), `compile` (seconds per
    step kind), `max_diff` per sampler and the compiled samplers.
    """
    fp = params.flowturbo
    steps = compiled_steps(ctx.model, refiner) if fp.compiles(ctx.name) else None
    gen = torch.Generator().manual_seed(0)
    noises = {b: torch.randn(b, *ctx.dataset.shape, generator=gen).to(ctx.device) for b in fp.latency_batches}
    runs: dict[tuple[str, bool], FlowTurboSampler] = {}
    for label, schedule in latency_samplers(params, ctx, refiner).items():
        parsed = Schedule.parse(schedule)
        for mode in ([False, True] if fp.compiles(ctx.name) else [False]):
            runs[label, mode] = FlowTurboSampler(ctx.model, parsed, refiner if parsed.count("R") else None,
                                                 compiled=mode, steps=steps)
    for sampler in tqdm(runs.values(), desc=f"warm-up and compile {ctx.name}", disable=not progress):
        for noise in noises.values():
            sampler(noise), sampler(noise)
    times: dict[tuple[str, bool, int], list[float]] = {}
    bar = tqdm(total=len(noises) * fp.latency_repeats, desc=f"latency {ctx.name}", disable=not progress)
    for b, noise in noises.items():
        for _ in range(fp.latency_repeats):
            for (label, mode), sampler in runs.items():
                times.setdefault((label, mode, b), []).append(wall_time(partial(sampler, noise))[1])
            bar.update()
    bar.close()
    rows = [{"sampler": label, "schedule": str(runs[label, mode].schedule), "compiled": mode, "batch": b,
             "ms_per_sample": 1e3 * float(np.median(ts)) / b, "nfe": runs[label, mode].schedule.teacher_calls,
             "refiner_calls": runs[label, mode].schedule.refiner_calls} for (label, mode, b), ts in times.items()]
    max_diff, compiled = {}, {}
    for (label, mode), sampler in runs.items():
        if mode:
            eager = runs[label, False](ctx.noise)
            max_diff[label] = float((sampler(ctx.noise) - eager).abs().max() / eager.abs().max().clamp_min(1.0))
            compiled[label] = sampler
    compile_rows = [{"step": kind, "compile_seconds": s.compile_seconds, "fell_back": s.error is not None}
                    for kind, s in (steps or {}).items()]
    compile_table = pd.DataFrame(compile_rows, columns=["step", "compile_seconds", "fell_back"])
    return {"latency": pd.DataFrame(rows), "compile": compile_table, "max_diff": max_diff, "compiled": compiled}


def compiled_rows(params: Params, ctx: TeacherContext, eager_rows: list[dict[str, Any]],
                  timing: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per compiled FlowTurbo sampler: the eager row's scores (its samples agree to `max_diff`, checked) with the
    compiled sampler's own time at the evaluation batch."""
    rows = []
    for row in eager_rows:
        sampler = timing["compiled"].get(row["schedule"])
        if sampler is None:
            continue
        seconds = sampler_latency(sampler, ctx.noise, ctx.latency_batch, ctx.timing_repeats)
        rows.append({**row, "solver": sampler.name, "ms_per_sample": 1e3 * seconds, "compiled": True,
                     "compiled_max_rel_diff": timing["max_diff"][row["schedule"]]})
    return rows


# ------------------------------------------------------------------------------------------ acceleration
def matched_heun_latency(distance: float, heun: pd.DataFrame) -> tuple[float, str]:
    """Latency Heun needs to reach `distance`: interpolated (log-log) on its lower envelope, in NFE order (or latency
    order without an `nfe` column).

    Returns (latency, how): `interpolated`, `beyond best Heun` (a lower bound: the best Heun's latency) or
    `worse than every Heun` (NaN).
    """
    heun = heun.sort_values("nfe" if "nfe" in heun else "ms_per_sample")  # cost order: measured latency can tie or swap
    lat, dist = heun["ms_per_sample"].to_numpy(), np.minimum.accumulate(heun["gt_distance"].to_numpy())
    if math.isnan(distance) or not len(lat):
        return math.nan, "not measured"
    if distance >= dist[0]:
        return (lat[0], "interpolated") if distance == dist[0] else (math.nan, "worse than every Heun")
    for i in range(1, len(lat)):
        if distance >= dist[i]:
            if dist[i] == dist[i - 1]:
                return lat[i], "interpolated"
            w = (math.log(dist[i - 1]) - math.log(distance)) / (math.log(dist[i - 1]) - math.log(dist[i]))
            return float(math.exp((1 - w) * math.log(lat[i - 1]) + w * math.log(lat[i]))), "interpolated"
    return float(lat[-1]), "beyond best Heun"


def acceleration(rows: pd.DataFrame, heun_rows: pd.DataFrame, latency: pd.DataFrame, batch: int,
                 cost_ratio: float) -> pd.DataFrame:
    """The paper's acceleration ratio: 1 − latency / (Heun's latency at the same distance to the teacher's distribution).

    Per FlowTurbo schedule, eager against eager Heun and (where timed) compiled against eager Heun (the paper's full
    pipeline), at latency batch `batch`; beside it the same ratio in predictor-equivalent cost, NFE + refiner calls ×
    `cost_ratio` (the refiner's share of a teacher call's multiply-adds), which no fixed overhead can hide.
    """
    lat = latency[latency["batch"] == batch]
    eager_heun = lat[~lat["compiled"] & lat["sampler"].str.startswith("heun@")].copy()
    eager_heun["nfe"] = eager_heun["sampler"].str.split("@").str[1].astype(int)
    heun = eager_heun.merge(heun_rows[["nfe", "gt_distance"]], on="nfe")
    heun_cost = heun.assign(ms_per_sample=heun["nfe"].astype(float))
    out = []
    for row in rows.itertuples():
        cost = row.nfe + row.refiner_calls * cost_ratio
        matched_cost, _ = matched_heun_latency(row.gt_distance, heun_cost)
        for compiled in (False, True):
            mine = lat[(lat["sampler"] == row.schedule) & (lat["compiled"] == compiled)]
            if not len(mine):
                continue
            ms = float(mine["ms_per_sample"].iloc[0])
            matched, how = matched_heun_latency(row.gt_distance, heun)
            out.append({"schedule": row.schedule, "compiled": compiled, "nfe": row.nfe, "refiner_calls": row.refiner_calls,
                        "gt_distance": row.gt_distance, "ms_per_sample": ms, "heun_ms_at_same_distance": matched,
                        "acceleration_ratio": 1 - ms / matched if matched == matched else math.nan, "match": how,
                        "cost": cost, "heun_cost_at_same_distance": matched_cost,
                        "cost_ratio": 1 - cost / matched_cost if matched_cost == matched_cost else math.nan})
    return pd.DataFrame(out)


def ablation_table(rows: pd.DataFrame, baselines: pd.DataFrame, latency: pd.DataFrame, ctx: TeacherContext,
                   refiner: VelocityRefiner, params: Params) -> pd.DataFrame:
    """Each pair of `ABLATIONS` side by side: distance to the teacher's distribution (with bands), RMSE and eager
    latency at the ratio batch, the distance compared beyond the noise band and the RMSE paired on the same noise.

    `at_floor`: the second sampler is already within noise of the floor (the ground truth against an independent draw),
    where no distance can show an improvement; `quality_ok` is then decided by the paired RMSE alone.
    """
    sigmas, batch = params.eval.band_sigmas, params.flowturbo.ratio_batch
    heun_rows = baselines[baselines["solver"] == "heun"]
    floor = baselines[baselines["solver"] == "adaptive"].iloc[0]
    heun = heun_rows.assign(schedule=heun_rows["nfe"].map(lambda n: heun_schedule(int(n))), refiner_calls=0)
    table = pd.concat([rows, heun], ignore_index=True).drop_duplicates("schedule").set_index("schedule")
    lat = latency[(latency["batch"] == batch) & ~latency["compiled"]].drop_duplicates("schedule").set_index("schedule")
    out = []
    for name, with_, without in ABLATIONS:
        if with_ not in table.index or without not in table.index:
            continue
        a, b = table.loc[with_], table.loc[without]
        samplers_ = [FlowTurboSampler(ctx.model, s, refiner if "R" in s else None) for s in (with_, without)]
        distance = compare(a.gt_distance, b.gt_distance, a.gt_distance_std, b.gt_distance_std, sigmas)
        at_floor = compare(b.gt_distance, floor.gt_distance, b.gt_distance_std, floor.gt_distance_std, sigmas) == "within noise"
        rmse_outcome = ctx.paired_rmse(*samplers_, sigmas)
        quality_ok = rmse_outcome == "better" and (distance == "better" or (distance == "within noise" and at_floor))
        out.append({"ablation": name, "schedule": with_, "against": without, "nfe": f"{int(a.nfe)} vs {int(b.nfe)}",
                    "refiner_calls": f"{int(a.refiner_calls)} vs {int(b.refiner_calls)}",
                    "gt_distance": f"{a.gt_distance:.3g}±{a.gt_distance_std:.2g} vs {b.gt_distance:.3g}±{b.gt_distance_std:.2g}",
                    "distance_outcome": distance, "at_floor": at_floor,
                    "rmse_to_gt": f"{a.rmse_to_gt:.3g} vs {b.rmse_to_gt:.3g}", "rmse_outcome": rmse_outcome,
                    "quality_ok": quality_ok,
                    f"ms_per_sample@{batch}": f"{lat.loc[with_, 'ms_per_sample']:.3g} vs {lat.loc[without, 'ms_per_sample']:.3g}"
                    if with_ in lat.index and without in lat.index else "-"})
    # a profile whose schedules form no pair still gets the table's columns (its claims then read no case)
    return pd.DataFrame(out, columns=None if out else ["ablation", "schedule", "against", "quality_ok"])


# ------------------------------------------------------------------------------------------- verdicts
# ------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True, eq=False)
class FlowTurboEvidence(Evidence):
    """What the FlowTurbo checks read beside the baseline and FlowTurbo rows."""

    fit: dict[str, Any]        # fit_refiner: the refiner, its training result and size
    costs: pd.DataFrame        # call_costs: a teacher call against a refiner call, per batch size
    accel: pd.DataFrame        # acceleration: each schedule's latency gain against Heun at the same distance
    ablations: pd.DataFrame    # ablation_table: the paired comparisons of the ablations
    timing: dict[str, Any]     # latency_table: latency per batch, compiled against eager samples, compile times


SPECS = [
    ClaimSpec("flowturbo", "pseudo-corrector", "The pseudo corrector keeps Heun's quality at fewer teacher calls",
              "H1P(N−1) (N steps, N+1 teacher calls) against Heun at the same teacher NFE: a lower paired RMSE to the "
              "ground truth and a smaller distance to the teacher's distribution beyond the noise band ({sigmas:g} std of "
              "the difference; where Heun is already within noise of the floor, 'within noise' counts)",
              "P steps cost 1 NFE and keep second order (appendix proof); FID 3.93 at (7+3)×2 NFE vs Heun 3.68 at 16×2",
              reads="ablations: pseudo corrector, same teacher NFE"),
    ClaimSpec("flowturbo", "refiner-cuts-latency", "The velocity refiner cuts latency at equal quality",
              "acceleration ratio (1 − latency / Heun's latency at the same distance to the teacher's distribution, eager, "
              "batch {batch}) above 0 for every schedule with R, and above that of the same schedule without its R steps "
              "(same teacher NFE)", "acceleration 53.1-58.3% on SiT-XL/2 (ImageNet 256); FID 2.12 at 100 ms/img, 3.93 at "
              "38 ms/img", reads="ablations: refiner added; accel (eager); fit"),
    ClaimSpec("flowturbo", "compile-cuts-latency", "Compiling each sampling step cuts latency further, without changing the "
              "samples", "at every latency batch, the median over samplers of the eager/compiled latency ratio (each a "
              "median of repeats) is above 1, and compiled samples agree with eager ones to 1e-5 (relative to the "
              "samples' largest magnitude, at least 1)", "sample-aware compilation lowers latency in the ablation (Table 3 "
              "of the paper)", reads="timing"),
    ClaimSpec("flowturbo", "order", "H→P→R beats an interleaved schedule with the same counts",
              "H2P2R2 against H1P1R1H1P1R1 (the same teacher and refiner calls): a lower paired RMSE and a smaller "
              "distance to the teacher's distribution beyond the noise band ('within noise' counts where the interleaved "
              "one is at the floor)", "[H1P1R1]×2 worse than H2P2R2 (ablation)",
              reads="ablations: H→P→R order vs interleaved; fit"),
    ClaimSpec("flowturbo", "small-refiner", "The refiner is small and cheap: about 5% of the predictor's parameters",
              "the refiner has at most 10% of the teacher's parameters and one refiner call costs at most 10% of a teacher "
              "call's floating-point operations (machine-independent); wall times per call and its training cost are "
              "reported beside", "one SiT block: ≈4.4% of SiT-XL/2's parameters (29.7M of 675M), trained in under 6 h on "
              "one A800", reads="fit; costs", exact="no parameters to compare the refiner's size with"),
    ClaimSpec("flowturbo", "imagenet-latency", "On SiT-XL/2 (ImageNet 256, latents) FlowTurbo reaches FID 2.12 at 100 "
              "ms/img and 3.93 at 38 ms/img", "", "acceleration 53.1-58.3% over Heun at equal FID",
              untestable="needs the SiT-XL/2 checkpoint, ImageNet latents and a GPU; no profile holds them"),
    ClaimSpec("flowturbo", "text-to-image", "FlowTurbo also accelerates text-to-image rectified flow (InstaFlow)", "",
              "figures only", untestable="no text-to-image model in any profile (the official code has no text-to-image "
              "part either)"),
]


def pseudo_corrector(ev: FlowTurboEvidence) -> Finding:
    pc = ev.ablations[ev.ablations["ablation"] == "pseudo corrector, same teacher NFE"]
    return Finding("; ".join(_pair_text(r) for r in pc.itertuples()) or "-", pc["quality_ok"].tolist())


def refiner_cuts_latency(ev: FlowTurboEvidence) -> Finding:
    eager = ev.accel[~ev.accel["compiled"]].set_index("schedule")
    added = ev.ablations[ev.ablations["ablation"] == "refiner added, same teacher NFE"]
    cases, ours = [], []
    for r in added.itertuples():
        if r.schedule not in eager.index or r.against not in eager.index:
            continue
        mine, partner = eager.loc[r.schedule], eager.loc[r.against]
        ok = bool(mine.acceleration_ratio > 0 and mine.acceleration_ratio > partner.acceleration_ratio)
        cases.append(None if math.isnan(mine.acceleration_ratio) else ok)
        ours.append(f"{r.schedule}: acceleration {100 * mine.acceleration_ratio:+.0f}% ({mine.ms_per_sample:.3g} ms vs Heun "
                    f"{mine.heun_ms_at_same_distance:.3g} ms at the same distance, {mine.match}) vs {r.against} without the "
                    f"refiner {100 * partner.acceleration_ratio:+.0f}%; in predictor-equivalent cost "
                    f"{100 * mine.cost_ratio:+.0f}% vs {100 * partner.cost_ratio:+.0f}%")
    return Finding("; ".join(ours) or "-", cases, refiner_unconverged(ev.fit),
                   fields={"batch": ev.params.flowturbo.ratio_batch})


def compile_cuts_latency(ev: FlowTurboEvidence) -> Finding:
    timing = ev.timing
    lat = timing["latency"]
    cases, ours = [], []
    if len(lat) and lat["compiled"].any():
        wide = lat.pivot_table(index=["sampler", "batch"], columns="compiled", values="ms_per_sample").dropna()
        for b, part in wide.groupby(level="batch"):
            speed = part[False] / part[True]
            cases.append(bool(speed.median() > 1))
            ours.append(f"batch {b}: compiled/eager speed-up median {speed.median():.2f}× (min {speed.min():.2f}×, "
                        f"max {speed.max():.2f}×)")
        worst = max(timing["max_diff"].values(), default=math.nan)
        cases.append(bool(worst <= 1e-5))
        ours.append(f"samples agree to {worst:.1g} (max |compiled − eager| / max(1, max |eager|)); compiling took "
                    + ", ".join(f"{r.step} {r.compile_seconds:.1f} s" for r in timing["compile"].itertuples())
                    + ("; FELL BACK to eager" if timing["compile"]["fell_back"].any() else ""))
    return Finding("; ".join(ours) or "not run (flowturbo.compile leaves this teacher out)", cases)


def order(ev: FlowTurboEvidence) -> Finding:
    rows = ev.ablations[ev.ablations["ablation"] == "H→P→R order vs interleaved"]
    return Finding("; ".join(_pair_text(r) for r in rows.itertuples()) or "-", rows["quality_ok"].tolist(),
                   refiner_unconverged(ev.fit))


def small_refiner(ev: FlowTurboEvidence) -> Finding:
    fit, at = ev.fit, ev.costs.set_index("batch")
    big = at.index.max()
    return Finding(
        f"{fit['params']:,} parameters = {100 * fit['param_ratio']:.1f}% of {fit['teacher_params']:,}; one call "
        f"{100 * at.loc[big, 'flop_ratio']:.1f}% of a teacher call's FLOPs; wall time per call "
        + ", ".join(f"{r.refiner_call_ms:.3g} vs {r.teacher_call_ms:.3g} ms (batch {b})" for b, r in at.iterrows())
        + f"; trained {fit['train_steps']} steps ({'plateau' if fit['converged'] else 'cap, still improving'}) in "
        f"{fit['train_flops']:.3g} FLOPs = {100 * fit['flop_fraction']:.1f}% of the teacher's training "
        f"({fit['train_seconds']:.1f} s = {100 * fit['train_fraction']:.1f}% of its wall time)",
        [bool(fit["param_ratio"] <= 0.10 and at.loc[big, "flop_ratio"] <= 0.10)])


def refiner_unconverged(fit: dict[str, Any]) -> list[str]:
    """The reason a claim resting on the refiner is inconclusive, if its training stopped at the cap still improving."""
    if fit.get("converged") is False:
        return [f"the refiner stopped at its cap of {fit['train_steps']} steps, still improving"]
    return []


def _pair_text(r: Any) -> str:
    """One ablation pair as the claims write it."""
    floor = ", at the floor" if r.at_floor else ""
    return (f"{r.schedule} vs {r.against}: NFE {r.nfe}, to GT {r.gt_distance} ({r.distance_outcome}{floor}), RMSE "
            f"{r.rmse_to_gt} ({r.rmse_outcome})")


def headline(df: pd.DataFrame, accel: pd.DataFrame, fit: dict[str, Any]) -> dict[str, Any]:
    """A few numbers for `dvc metrics`: best quality and distance at 6 teacher NFE, the best eager acceleration ratio,
    the refiner's share of the teacher's parameters and its training seconds."""
    eager = accel[~accel["compiled"]] if len(accel) else accel
    return headline_metrics(df, (6,), accel=eager["acceleration_ratio"].max() if len(eager) else math.nan,
                            refiner_pct=100 * fit["param_ratio"], train_s=fit["train_seconds"])


def pareto_points(rows: pd.DataFrame, heun_rows: pd.DataFrame, latency: pd.DataFrame, batch: int) -> pd.DataFrame:
    """Every sampler of the latency table at `batch` with its distance to the teacher's distribution: the figure's input."""
    lat = latency[latency["batch"] == batch]
    distance = {heun_schedule(int(r.nfe)): r.gt_distance for r in heun_rows.itertuples()}
    distance.update({r.schedule: r.gt_distance for r in rows.itertuples()})
    out = lat.assign(gt_distance=lat["schedule"].map(distance), mode=lat["compiled"].map({False: "eager", True: "compiled"}))
    family = out["sampler"].str.startswith("heun@").map({True: "Heun", False: ""})
    family = family.where(family != "", out["refiner_calls"].gt(0).map({True: "FlowTurbo with R", False: "FlowTurbo, P only"}))
    label = out["sampler"].where(~out["sampler"].str.startswith("heun@"), "H" + (out["nfe"] // 2).astype(str))
    return out.assign(family=family, label=label).dropna(subset=["gt_distance"])


# The paper's claims table: each claim, and the check that computes its verdict from FlowTurboEvidence.
CLAIMS = PaperClaims("flowturbo", FlowTurboEvidence, SPECS, {
    "pseudo-corrector": pseudo_corrector,
    "refiner-cuts-latency": refiner_cuts_latency,
    "compile-cuts-latency": compile_cuts_latency,
    "order": order,
    "small-refiner": small_refiner,
})
