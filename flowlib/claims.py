"""A paper's claims as data: the claim, its criterion, the paper's number, ours, and a computed verdict.

Every method stage writes `reports/claims/<paper>-<teacher>.csv` (and a markdown rendering beside it) with
`write_claims`; the report's scorecard reads only these files. A paper's claims are one table in its experiments module,
`CLAIMS = PaperClaims(paper, EvidenceType, [ClaimSpec(...)], {claim_id: check})`: what each claim says, and the function
that checks it against the paper's evidence, a dataclass whose typed fields are exactly what the checks read (built by
the experiment and passed whole). `check_claims(CLAIMS, evidence)` runs them. Verdicts are computed, never typed by
hand: `verdict(checks)` turns the per-case outcomes of a criterion into `holds` (every case), `partly holds` (some),
`does not hold` (none) or `not run` (no case measured).
A negative verdict (`does not hold`, `partly holds`) that rests on a learned component that did not reach its
validation plateau says nothing about the method: `inconclusive` replaces it, with the reason (`unless_converged`).
"""
from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import torch
from torch import Tensor

from .artifacts import atomic_path, write_text
from .errors import FlowlibError, describe
from .evaluate import lookup, with_band
from .layout import Layout

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
UNTESTABLE_CRITERION = "needs the paper's own data and models"


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of a paper as data: what it says, the paper's number, and the criterion our numbers must meet.

    `criterion` may name `{rule}` (the noise-band rule at `eval.band_sigmas`), `{sigmas}` and any field a check returns
    in `Finding.fields`. `reads` says which result rows or evidence the check reads. `exact`: why an exact (closed-form)
    teacher cannot test it (the claim is then `not run` there, with that reason). `untestable`: why no profile here can
    test it at all (always `not run`, no check function).
    """

    paper: str
    claim_id: str
    claim: str
    criterion: str
    paper_number: str
    reads: str = "-"
    exact: str | None = None
    untestable: str | None = None


@dataclass
class Finding:
    """What one claim's check found: our numbers as text, the per-case outcomes the verdict counts, and the
    unconverged components the claim rests on (a negative verdict then reads `inconclusive`)."""

    ours: str
    cases: list[bool | None]
    unconverged: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # values the criterion's text names


@dataclass(frozen=True, eq=False)
class Evidence:
    """What every paper's checks read: the result rows (`df`: baselines and the paper's rows), params and the teacher,
    with the lookups the checks share. Each paper subclasses it with the typed fields its own checks read."""

    df: pd.DataFrame
    params: Any
    teacher: str

    @property
    def sigmas(self) -> float:
        """The noise-band width in standard deviations of a difference (`eval.band_sigmas`)."""
        return float(self.params.eval.band_sigmas)

    @property
    def rule(self) -> str:
        """The noise-band rule as the criteria write it."""
        return f"beyond the noise band ({self.sigmas:g} standard deviations of the difference)"

    def value(self, solver: str, nfe: int | None, col: str = "gt_distance") -> float:
        """`col` of the row of `solver` at `nfe` (any NFE if None); NaN when missing."""
        return lookup(self.df, solver, nfe, col)

    def band(self, solver: str, nfe: int | None, col: str = "gt_distance") -> str:
        """`value±std` of `col`, as the claims write it."""
        return with_band(self.df, solver, nfe, col)

    def vs(self, a: str, ka: int | None, b: str, kb: int | None, col: str = "gt_distance", scale: float = 1.0) -> str:
        """`compare` of sampler a at ka against `scale` × sampler b at kb on `col` (lower is better), beyond the band."""
        return compare(self.value(a, ka, col), scale * self.value(b, kb, col), self.value(a, ka, col + "_std"),
                       scale * self.value(b, kb, col + "_std"), self.sigmas)

    def trained(self, solver: str, nfe: int | None) -> str:
        """How the row's network was trained: steps and whether it reached its validation plateau."""
        steps, converged = training_of(self.df, solver, nfe)
        if math.isnan(steps):
            return "-"
        return f"{steps:.0f} steps, " + ("plateau" if converged else "cap, still improving")


Check = Callable[[Any], Finding]  # takes the paper's Evidence subclass


@dataclass(frozen=True)
class PaperClaims:
    """One paper's claims table: the claims in the order its table lists them, the check of each testable claim by id,
    and the evidence type those checks read. Every testable claim has a check and every check a claim."""

    paper: str
    evidence: type[Evidence]
    specs: list[ClaimSpec]
    checks: Mapping[str, Check]

    def __post_init__(self) -> None:
        if any(s.paper != self.paper for s in self.specs) or len({s.claim_id for s in self.specs}) != len(self.specs):
            raise ClaimError(f"The claims of {self.paper!r} must all name that paper and have distinct ids.")
        testable = {s.claim_id for s in self.specs if s.untestable is None}
        if testable != set(self.checks):
            raise ClaimError(f"{self.paper}: claims without a check {sorted(testable - set(self.checks))}, checks "
                             f"without a claim {sorted(set(self.checks) - testable)}; add the missing check or ClaimSpec.")


def check_claims(claims: PaperClaims, ev: Evidence) -> list[Claim]:
    """Every claim of `claims` on `ev.teacher` with our numbers and a computed verdict, from the paper's evidence."""
    if not isinstance(claims, PaperClaims):
        raise ClaimError(f"check_claims takes a paper's claims table and its evidence, check_claims(CLAIMS, evidence) "
                         f"(e.g. flowlib.experiments.boss.CLAIMS), got {describe(claims)} as the table.")
    if not isinstance(ev, claims.evidence):
        raise ClaimError(f"The {claims.paper} claims read {claims.evidence.__name__}, not {type(ev).__name__}; build "
                         f"{claims.evidence.__name__}(df, params, teacher, ...) with the paper's evidence.")
    exact = ev.params.teacher(ev.teacher).exact
    out = []
    for spec in claims.specs:
        row = partial(Claim, claims.paper, ev.teacher, spec.claim_id, spec.claim)
        if spec.untestable is not None:
            out.append(row(UNTESTABLE_CRITERION, spec.paper_number, f"not run: {spec.untestable}", "not run"))
            continue
        if exact and spec.exact is not None:
            criterion = spec.criterion.format(rule=ev.rule, sigmas=ev.sigmas, **_placeholders(spec.criterion))
            out.append(row(criterion, spec.paper_number, f"not run: {EXACT_TEACHER}{spec.exact}", "not run"))
            continue
        found = claims.checks[spec.claim_id](ev)
        criterion = spec.criterion.format(rule=ev.rule, sigmas=ev.sigmas, **found.fields)
        out.append(unless_converged(row(criterion, spec.paper_number, found.ours, verdict(found.cases)),
                                    found.unconverged))
    return out


def _placeholders(text: str) -> dict[str, str]:
    """The criterion's own field names, left as they are (an exact teacher's `not run` claim has no check to fill them)."""
    return {name: "{" + name + "}" for _, name, _, _ in string.Formatter().parse(text) if name not in (None, "rule", "sigmas")}


def claims_path(reports: str | Path, paper: str, teacher: str, suffix: str = ".csv") -> Path:
    return Layout(Path(), Path(reports)).claims(paper, teacher, suffix)


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
