"""A paper's claims as data: the claim, its criterion, the paper's number, ours, and a computed verdict.

Every method stage writes `reports/claims/<paper>-<teacher>.csv` (and a markdown rendering beside it) with
`write_claims`; the report's scorecard reads only these files. Verdicts are computed from result rows by the
paper's experiments module, never typed by hand: `verdict(checks)` turns the per-case outcomes of a criterion
into `holds` (every case), `partly holds` (some), `does not hold` (none) or `not run` (no case measured).
A negative verdict (`does not hold`, `partly holds`) that rests on a learned component that did not reach its
validation plateau says nothing about the method: `inconclusive` replaces it, with the reason (`unless_converged`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch
from torch import Tensor

from .artifacts import atomic_path, write_text
from .errors import FlowlibError

VERDICTS = ("holds", "partly holds", "does not hold", "inconclusive", "not run")
NEGATIVE = ("does not hold", "partly holds")  # verdicts that an unconverged component makes inconclusive
COLUMNS = ["paper", "teacher", "claim_id", "claim", "criterion", "paper_number", "ours", "verdict"]


class ClaimError(FlowlibError, ValueError):
    """A claim record or claims table that does not follow the schema."""


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper, checked on one teacher."""

    paper: str          # boss | bespoke | flowturbo | fgm
    teacher: str        # a key of params.yaml: teachers
    claim_id: str       # short stable id, e.g. "bellman-beats-uniform"
    claim: str          # the claim in one sentence
    criterion: str      # the test applied to our numbers, as written
    paper_number: str   # what the paper reports (with its setting), or "-" where it gives none
    ours: str           # our numbers behind the verdict
    verdict: str        # one of VERDICTS

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ClaimError(f"Claim {self.claim_id!r}: verdict {self.verdict!r} is not one of {VERDICTS}.")


def verdict(checks: Iterable[bool | None]) -> str:
    """Verdict of a criterion checked case by case (None or NaN: that case was not measured)."""
    measured = [bool(c) for c in checks if c is not None and not (isinstance(c, float) and math.isnan(c))]
    if not measured:
        return "not run"
    if all(measured):
        return "holds"
    return "partly holds" if any(measured) else "does not hold"


def both(*checks: bool | None) -> bool | None:
    """All checks hold; None if any is unmeasured."""
    return None if any(c is None for c in checks) else all(checks)


def compare(a: float, b: float, std_a: float, std_b: float, sigmas: float = 2.0) -> str:
    """Is A (lower-is-better `a`) better than B, beyond the noise band?

    The rule: the difference counts only when |a - b| > sigmas * sqrt(std_a² + std_b²), the standard deviation
    of the difference of two independent draws (std_*: each number's bootstrap standard deviation). Returns
    `better`, `worse`, `within noise`, or `not measured` when a number is missing. A missing standard deviation
    counts as 0, so a band that was not measured never hides a difference.
    """
    if math.isnan(a) or math.isnan(b):
        return "not measured"
    band = sigmas * math.hypot(0.0 if math.isnan(std_a) else std_a, 0.0 if math.isnan(std_b) else std_b)
    if a < b - band:
        return "better"
    return "worse" if a > b + band else "within noise"


def compare_paired(differences: Tensor, sigmas: float = 2.0) -> str:
    """Is A better than B on paired per-sample numbers (`differences` = a_i − b_i on the same noise, lower is better)?

    The rule: the mean difference counts only beyond `sigmas` standard errors of the mean; returns like `compare`.
    Pairing removes the spread the samples share, so a paired RMSE resolves far smaller gaps than two bands.
    """
    diffs = differences.double().flatten()
    diffs = diffs[torch.isfinite(diffs)]
    if len(diffs) < 2:
        return "not measured"
    mean, err = float(diffs.mean()), float(diffs.std() / math.sqrt(len(diffs)))
    if mean < -sigmas * err:
        return "better"
    return "worse" if mean > sigmas * err else "within noise"


def case(outcome: str, accepted: tuple[str, ...] = ("better",)) -> bool | None:
    """One verdict case from a `compare` outcome: True when it is accepted, None when not measured."""
    return None if outcome == "not measured" else outcome in accepted


def ratio(a: float, b: float) -> float:
    """a / b, NaN when b is 0 (an exact teacher has no training time and no parameters to compare with)."""
    return a / b if b else math.nan


def training_of(df: pd.DataFrame, solver: str, nfe: int | None) -> tuple[float, bool | None]:
    """(train_steps, converged) of the first row of `solver` at `nfe` (any NFE if None): NaN and None for a missing
    or training-free row (the flag reads the same from memory and from a CSV)."""
    hit = df[(df["solver"] == solver) & ((df["nfe"] == nfe) if nfe is not None else True)]
    if not len(hit) or "converged" not in hit.columns:
        return math.nan, None
    flag = {"True": True, "False": False}.get(str(hit["converged"].iloc[0]))
    return float(hit["train_steps"].iloc[0]) if "train_steps" in hit.columns else math.nan, flag


def unconverged(df: pd.DataFrame, rows: Iterable[tuple[str, int | None]]) -> list[str]:
    """For each (solver, NFE) row of `df` whose learned component stopped at its cap while still improving
    (`converged` is False), a phrase saying so; rows without training columns, or converged, give none."""
    reasons = []
    for solver, nfe in rows:
        steps, converged = training_of(df, solver, nfe)
        if converged is False:
            where = f"@{nfe}" if nfe is not None else ""
            reasons.append(f"{solver}{where} stopped at its cap of {steps:.0f} steps, still improving")
    return reasons


def unless_converged(claim: Claim, reasons: list[str]) -> Claim:
    """`claim`, or, when its verdict is negative and `reasons` name unconverged components it rests on, the same claim
    marked `inconclusive` with the reasons appended to its numbers (a positive verdict stands: more training would not
    undo it for the method's sake, and the rows say how they were trained)."""
    if claim.verdict not in NEGATIVE or not reasons:
        return claim
    return replace(claim, ours=f"{claim.ours}; inconclusive: {'; '.join(reasons)}", verdict="inconclusive")


EXACT_TEACHER = "the exact teacher (closed-form velocity) has "


def not_run(claims: list[Claim], reasons: dict[str, str]) -> list[Claim]:
    """`claims` with each claim named in `reasons` marked `not run`, the reason as its numbers: a setting that
    cannot test the claim (e.g. finetuning the weights of a teacher that has none) says so instead of failing it."""
    return [replace(c, ours=f"not run: {reasons[c.claim_id]}", verdict="not run") if c.claim_id in reasons else c
            for c in claims]


def untestable(paper: str, teacher: str, items: Iterable[tuple[str, str, str, str]]) -> list[Claim]:
    """Claims of the paper that this setting cannot test, as `not run` rows so the scorecard stays complete.

    `items`: (claim_id, claim, paper's number, reason)."""
    return [Claim(paper, teacher, cid, text, "needs the paper's own data and models", number, f"not run: {reason}", "not run")
            for cid, text, number, reason in items]


def claims_path(reports: str | Path, paper: str, teacher: str, suffix: str = ".csv") -> Path:
    return Path(reports) / "claims" / f"{paper}-{teacher}{suffix}"


def claims_markdown(df: pd.DataFrame, title: str) -> str:
    """A claims table as markdown (one row per claim), under `title`."""
    shown = df[["claim", "criterion", "paper_number", "ours", "verdict"]].rename(
        columns={"paper_number": "paper's number", "ours": "our numbers"})
    return f"# {title}\n\n" + shown.to_markdown(index=False) + "\n"


def write_claims(claims: Iterable[Claim], reports: str | Path, title: str) -> pd.DataFrame:
    """Write the claims of one paper on one teacher as CSV and markdown under `reports/claims/`."""
    claims = list(claims)
    if not claims:
        raise ClaimError("No claims to write.")
    keys = {(c.paper, c.teacher) for c in claims}
    if len(keys) != 1:
        raise ClaimError(f"A claims file holds one paper on one teacher, got {sorted(keys)}.")
    paper, teacher = keys.pop()
    df = pd.DataFrame([asdict(c) for c in claims], columns=COLUMNS)
    with atomic_path(claims_path(reports, paper, teacher)) as tmp:
        df.to_csv(tmp, index=False)
    write_text(claims_path(reports, paper, teacher, ".md"), claims_markdown(df, title))
    return df


def read_claims(reports: str | Path) -> pd.DataFrame:
    """Every claims table under `reports/claims/`, schema-checked (the scorecard's only input)."""
    files = sorted((Path(reports) / "claims").glob("*.csv"))
    if not files:
        raise ClaimError(f"No claims tables under {Path(reports) / 'claims'}; run the method stages (`dvc repro`).")
    frames = []
    for f in files:
        df = pd.read_csv(f, keep_default_na=False)
        if list(df.columns) != COLUMNS or not df["verdict"].isin(VERDICTS).all():
            raise ClaimError(f"{f} is not a flowlib claims table (columns {COLUMNS}, verdicts {VERDICTS}).")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
