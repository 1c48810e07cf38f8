"""`evaluate(sampler, ...)` -> one result row; result tables in one CSV schema for every stage.

Every notebook writes its rows to `reports/results/<stage>.csv` with `write_results`; the report merges them
with `merge_results`. Comparing methods is then a `groupby`, not new code.

A row carries two distances, each with its noise band (a bootstrap standard deviation):
- `quality`: to the data, at `n_eval` samples (what the papers report: FID to the dataset);
- `gt_distance`: to the teacher's own distribution, the same distance between `n_ref` samples of the sampler
  and `n_ref` ground-truth samples from independent noise. It resolves the top end, where the distance to the
  data stops moving; the floor row (the ground truth on the sampler's noise) shows its noise floor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch
from torch import Tensor

from .artifacts import atomic_path, write_json
from .errors import ArgumentError, FlowlibError, describe
from .layout import SIDE_TABLE_SUFFIX, teacher_of
from .metrics import QualityMetric, bootstrap_std, median_latency, rmse, sliced_wasserstein, time_call
from .solvers.nfe import NonFiniteError
from .solvers.samplers import Sampler

COLUMNS = [
    "dataset", "teacher", "method", "solver", "nfe", "quality", "quality_std", "quality_metric", "gt_distance",
    "gt_distance_std", "gt_distance_metric", "rmse_to_gt", "ms_per_sample", "extra_params", "train_seconds",
]
ROW_METHODS = ("data", "baseline", "diffusers", "boss", "bespoke", "flowturbo", "fgm", "reflow", "boss+bespoke",
               "boss+flowturbo")
BASELINE_SOLVERS = ("euler", "midpoint", "heun", "rk4", "adaptive")


REFERENCE_SOLVERS = ("adaptive", "heldout", "decoded")  # rows that are no sampler: the ground truth, real data, decoder floor


class ResultError(FlowlibError, ValueError):
    """A result row or table that does not follow the shared schema."""


@dataclass
class TeacherReference:
    """The teacher's own distribution at large n, for `gt_distance`.

    `metric` measures the distance to `n_ref` ground-truth samples; `noise` is the fixed `n_ref` noise every
    sampler also runs on (independent of the reference's noise and of the evaluation noise); `floor` is the
    ground truth solved on `noise`, whose distance is the metric's floor.
    """

    metric: QualityMetric
    noise: Tensor
    floor: Tensor


def _band(metric: QualityMetric, samples: Tensor, draws: int, seed: int) -> tuple[float, float]:
    """(distance, bootstrap std) of `samples` under `metric`."""
    return metric(samples), bootstrap_std(metric, samples, draws, seed)


def evaluate(
    sampler: Sampler,
    noise: Tensor,
    *,
    metric: QualityMetric,
    dataset: str,
    teacher: str,
    method: str,
    ground_truth: Tensor | None = None,
    reference: TeacherReference | None = None,
    reference_samples: Tensor | None = None,
    bootstrap: int = 0,
    solver: str | None = None,
    extra_params: int = 0,
    train_seconds: float = 0.0,
    timing_repeats: int = 5,
    latency_batch: int = 256,
    chunk: int | None = None,
) -> dict[str, Any]:
    """Run `sampler(noise)`, time it, and score quality (vs the dataset) and RMSE (vs `ground_truth`).

    `ground_truth` is the teacher's adaptive ODE solution from the same `noise`; without it rmse is NaN. With a
    `reference`, the sampler also runs on `reference.noise` for `gt_distance` (`reference_samples` passes that
    output when it is already known, as for the ground truth itself). `bootstrap` resamples give the `*_std`
    noise bands (NaN without). `nfe` is the sampler's measured count on the evaluation call. `ms_per_sample` is
    `sampler_latency`: the median of `timing_repeats` timed runs at batch `latency_batch`, the same for every row.
    `chunk`: the sampler runs on that many noises at a time (`sample_in_chunks`; None: all at once).
    """
    samples, nfe = sample_in_chunks(sampler, noise, chunk)
    seconds_per_sample = sampler_latency(sampler, noise, latency_batch, timing_repeats)
    if not torch.isfinite(samples).all():
        raise ResultError(f"Sampler {sampler.name!r} produced NaN or inf samples.")
    quality, quality_std = _band(metric, samples, bootstrap, seed=1)
    gt_distance = gt_distance_std = math.nan
    if reference is not None:
        far = reference_samples if reference_samples is not None else sample_in_chunks(sampler, reference.noise, chunk)[0]
        gt_distance, gt_distance_std = _band(reference.metric, far, bootstrap, seed=2)
    row = {
        "dataset": dataset,
        "teacher": teacher,
        "method": method,
        "solver": solver or sampler.name,
        "nfe": nfe,
        "quality": quality,
        "quality_std": quality_std,
        "quality_metric": metric.name,
        "gt_distance": gt_distance,
        "gt_distance_std": gt_distance_std,
        "gt_distance_metric": reference.metric.name if reference is not None else "-",
        "rmse_to_gt": rmse(samples, ground_truth) if ground_truth is not None else math.nan,
        "ms_per_sample": 1000.0 * seconds_per_sample,
        "extra_params": int(extra_params),
        "train_seconds": float(train_seconds),
    }
    validate_row(row)
    return row


def sample_in_chunks(sampler: Sampler, noise: Tensor, chunk: int | None = None) -> tuple[Tensor, int]:
    """`sampler(noise)` run `chunk` noises at a time (bounded memory; all at once when `chunk` is None or not smaller
    than the batch), and its NFE: the most any call spent (a fixed-grid sampler spends the same on every call; the
    adaptive one chooses its steps per call, so its chunked solve is its own, slightly different, ground truth)."""
    if chunk is None or len(noise) <= chunk:
        return sampler(noise), int(sampler.nfe)
    parts, nfe = [], 0
    for part in noise.split(chunk):
        parts.append(sampler(part))
        nfe = max(nfe, int(sampler.nfe))
    return torch.cat(parts), nfe


def sampler_latency(sampler: Sampler, noise: Tensor, batch: int = 256, repeats: int = 5) -> float:
    """Seconds per sample: the median wall time of `repeats` runs of `sampler` on the first `batch` noises (fewer if
    `noise` is smaller), after one untimed warm-up run. One timed run of a sub-millisecond sampler is noise (the same
    field at the same NFE read 20× apart); the median at a fixed batch makes rows comparable."""
    part = noise[:batch]
    return median_latency(lambda: sampler(part), repeats, warmup=1) / len(part)


def data_row(metric: QualityMetric, heldout: Tensor, *, dataset: str, bootstrap: int = 0,
             solver: str = "heldout") -> dict[str, Any]:
    """A reference line: real held-out data scored like a sampler (method `data`, nfe 0); `solver="decoded"`: a latent
    teacher's decoder floor (held-out latents, decoded by `metric`)."""
    quality, quality_std = _band(metric, heldout, bootstrap, seed=1)
    row = {
        "dataset": dataset, "teacher": "-", "method": "data", "solver": solver, "nfe": 0,
        "quality": quality, "quality_std": quality_std, "quality_metric": metric.name, "gt_distance": math.nan,
        "gt_distance_std": math.nan, "gt_distance_metric": "-", "rmse_to_gt": math.nan,
        "ms_per_sample": math.nan, "extra_params": 0, "train_seconds": 0.0,
    }
    validate_row(row)
    return row


def validate_row(row: dict[str, Any]) -> None:
    """Raise `ResultError` if a row misses columns or names an unknown method."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ResultError(f"Result row is missing columns {missing}.")
    if row["method"] not in ROW_METHODS:
        raise ResultError(f"Unknown method {row['method']!r} in a result row; choose one of {', '.join(ROW_METHODS)}.")
    if row["method"] == "baseline" and row["solver"] not in BASELINE_SOLVERS:
        raise ResultError(f"Baseline rows name a solver in {BASELINE_SOLVERS}, got {row['solver']!r}.")


def sampler_label(df: pd.DataFrame) -> pd.Series:
    """Sampler label: the solver for baselines, `method:solver` for everything else."""
    return df["solver"].where(df["method"] == "baseline", df["method"] + ":" + df["solver"])


def write_results(rows: Iterable[dict[str, Any]], path: str | Path) -> pd.DataFrame:
    """Validate `rows` and write them (columns in schema order) atomically to a CSV at `path`."""
    rows = list(rows)
    for row in rows:
        validate_row(row)
    df = pd.DataFrame(rows, columns=COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS)))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return df




def write_side_table(df: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Write a stage's side table (another schema, e.g. FlowTurbo's latency per batch size) atomically as CSV; its name
    must end in `-latency.csv`, so `merge_results` leaves it out."""
    if not Path(path).stem.endswith(SIDE_TABLE_SUFFIX):
        raise ResultError(f"{path}: a side table's name ends in {SIDE_TABLE_SUFFIX}.csv (merge_results skips those).")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    return df


def read_results(path: str | Path) -> pd.DataFrame:
    """Read one result CSV, checking the schema."""
    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ResultError(f"{path} is not a flowlib result table: missing columns {missing}.")
    return df


def merge_results(results_dir: str | Path, teachers: Iterable[str] | None = None) -> pd.DataFrame:
    """Concatenate every `*.csv` under `results_dir` (sorted by name), schema-checked; with `teachers`, only their tables
    (`<stage>-<teacher>.csv`), so a profile's report never mixes in tables another profile left in the folder."""
    keep = None if teachers is None else set(teachers)
    files = sorted(f for f in Path(results_dir).glob("*.csv") if not f.stem.endswith(SIDE_TABLE_SUFFIX)
                   and (keep is None or teacher_of(f.stem) in keep))
    if not files:
        raise ResultError(f"No result tables under {results_dir}; run the pipeline (`dvc repro`) first.")
    return pd.concat([read_results(f) for f in files], ignore_index=True)


def lookup(df: pd.DataFrame, solver: str, nfe: int | None, col: str) -> float:
    """`col` of the first row of `solver` at `nfe` (any NFE if None), NaN when the table has no such row."""
    hit = df[(df["solver"] == solver) & ((df["nfe"] == nfe) if nfe is not None else True)]
    return float(hit[col].iloc[0]) if len(hit) else math.nan


def with_band(df: pd.DataFrame, solver: str, nfe: int | None, col: str) -> str:
    """`value±std` of `col` (its noise band is the `<col>_std` column), as the claims write it."""
    return f"{lookup(df, solver, nfe, col):.3g}±{lookup(df, solver, nfe, col + '_std'):.2g}"


def _short(x: float) -> float | None:
    return None if pd.isna(x) else float(f"{float(x):.4g}")


def headline_metrics(df: pd.DataFrame, nfes: Iterable[int] = (4,), **extra: float) -> dict[str, Any]:
    """A stage's few headline numbers for `dvc metrics`: at each NFE in `nfes`, the best quality (`q4`, ...) and
    the best distance to the teacher's distribution (`d4`, ...) among the stage's samplers, plus `extra`
    (e.g. `gt`, `heldout`, `floor`, `train_s`), rounded to 4 digits.

    The full tables stay in reports/results/*.csv; this keeps `dvc metrics show` readable.
    """
    samplers = df[~df["solver"].isin(REFERENCE_SOLVERS)]
    out: dict[str, Any] = {}
    for n in nfes:
        at = samplers[samplers["nfe"] == n]
        out[f"q{n}"] = _short(at["quality"].min()) if len(at) else None
        out[f"d{n}"] = _short(at["gt_distance"].min()) if len(at) else None
    out.update({k: _short(v) for k, v in extra.items()})
    return out


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Write a stage's headline metrics (a flat dict of at most about ten numbers) as JSON."""
    write_json(path, metrics)
    return metrics


def compare_samplers(samplers: Iterable[Sampler], noise: Tensor, ground_truth: Tensor,
                     reference: Tensor | None = None) -> pd.DataFrame:
    """A quick table for any samplers of one velocity field (no dataset or metric set-up): per sampler its NFE,
    RMSE to `ground_truth` (the field's exact ODE solution from `noise`), sliced W2 of the samples to `reference`
    (flattened; default: the ground truth itself) and milliseconds per sample.

    >>> from flowlib.models import ring_mixture
    >>> from flowlib.solvers import AdaptiveSampler, ODESampler
    >>> v, z = ring_mixture(), torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    >>> table = compare_samplers([ODESampler(v, 2), ODESampler(v, 8)], z, AdaptiveSampler(v)(z))
    >>> bool(table["rmse_to_gt"].is_monotonic_decreasing), table["nfe"].tolist()
    (True, [2, 8])

    Args:
        samplers: samplers of one field; noise: [N, ...] noise; ground_truth: the exact solution from `noise`;
        reference: the samples the sliced W2 is measured to (default: the ground truth).

    Returns:
        One row per sampler: name, nfe, rmse_to_gt, sliced_w2, ms_per_sample.
    """
    samplers = list(samplers) if not isinstance(samplers, (Tensor, str)) and hasattr(samplers, "__iter__") else samplers
    if not isinstance(samplers, list):
        raise ArgumentError(f"samplers must be a list of samplers, got {describe(samplers)}.")
    for i, sampler in enumerate(samplers):
        if not isinstance(sampler, Sampler):
            raise ArgumentError(f"samplers[{i}] is {describe(sampler)}, not a sampler (callable on noise, with .nfe and "
                                ".name). Wrap a velocity field first, e.g. flowlib.ODESampler(v, 4, 'euler').")
    for name, tensor in (("noise", noise), ("ground_truth", ground_truth)):
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            raise ArgumentError(f"{name} must be a floating tensor, got {describe(tensor)}.")
    if ground_truth.shape != noise.shape:
        raise ArgumentError(f"ground_truth has shape {tuple(ground_truth.shape)} but noise {tuple(noise.shape)}: pass the "
                            "field's exact samples from this noise (e.g. flowlib.AdaptiveSampler(v)(noise)).")
    if not torch.isfinite(ground_truth).all():
        raise NonFiniteError("ground_truth contains NaN or inf; every RMSE to it would be NaN. Check the field or the "
                             "solver that produced it.")
    reference = ground_truth if reference is None else reference
    rows = []
    for sampler in samplers:
        samples, seconds = time_call(lambda s=sampler: s(noise))
        rows.append({"sampler": sampler.name, "nfe": int(sampler.nfe), "rmse_to_gt": rmse(samples, ground_truth),
                     "sliced_w2": sliced_wasserstein(samples.flatten(1), reference.flatten(1)),
                     "ms_per_sample": 1e3 * seconds / len(noise)})
    return pd.DataFrame(rows)
