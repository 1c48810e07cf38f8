"""The reproduction scorecard: every claim of the four papers, one row each, generated from `reports/claims/*.csv` only.

A row gives the paper, the claim, the paper's number and the verdict on each teacher (`holds`, `partly holds`,
`does not hold`, `inconclusive`, `not run`), and an overall verdict: `not run` when no teacher could test it,
`inconclusive` when every teacher that tested it was inconclusive (a learned component stopped at its cap), else
`holds` / `does not hold` when every teacher with a conclusive verdict agrees, `partly holds` otherwise; teachers
left inconclusive are named in the row's reason. Claims no profile here can test are in the
claims files too (as `not run`, with the reason), so the card is complete.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from .claims import COLUMNS, VERDICTS, ClaimError
from .errors import FlowlibError

PAPERS = {"boss": "BOSS", "bespoke": "Bespoke solvers", "flowturbo": "FlowTurbo", "fgm": "Flow Generator Matching"}


class ScorecardError(FlowlibError, ValueError):
    """Missing or malformed claims behind the scorecard."""


def read_claims(claims_dir: str | Path, papers: Iterable[str], teachers: Iterable[str]) -> pd.DataFrame:
    """Every `<paper>-<teacher>.csv` the pipeline must have written; a missing one names the stage to run."""
    frames, missing = [], []
    for paper in papers:
        for teacher in teachers:
            path = Path(claims_dir) / f"{paper}-{teacher}.csv"
            if not path.is_file():
                missing.append(f"{path.name} (run `dvc repro {paper}@{teacher}`)")
                continue
            df = pd.read_csv(path, keep_default_na=False)
            if list(df.columns) != COLUMNS:
                raise ScorecardError(f"{path}: columns {list(df.columns)} are not the claims schema {COLUMNS}; rerun "
                                     f"`dvc repro {paper}@{teacher}`.")
            frames.append(df)
    if missing:
        raise ScorecardError("The scorecard needs every paper's claims on every teacher; missing: " + "; ".join(missing))
    return pd.concat(frames, ignore_index=True)


def overall(verdicts: Iterable[str]) -> str:
    """One verdict from the per-teacher ones (see the module docstring)."""
    verdicts = list(verdicts)
    for v in verdicts:
        if v not in VERDICTS:
            raise ClaimError(f"Unknown verdict {v!r}; expected one of {VERDICTS}.")
    measured = [v for v in verdicts if v not in ("not run", "inconclusive")]
    if not measured:
        return "inconclusive" if "inconclusive" in verdicts else "not run"
    if all(v == "holds" for v in measured):
        return "holds"
    return "does not hold" if all(v == "does not hold" for v in measured) else "partly holds"


def scorecard(claims: pd.DataFrame) -> pd.DataFrame:
    """One row per (paper, claim): the paper's number, the verdict per teacher, and the overall verdict."""
    teachers = list(dict.fromkeys(claims["teacher"]))
    rows = []
    for (paper, cid), sub in claims.groupby(["paper", "claim_id"], sort=False):
        per = dict(zip(sub["teacher"], sub["verdict"]))
        first = sub.iloc[0]
        rows.append({"paper": PAPERS.get(paper, paper), "claim_id": cid, "claim": first["claim"],
                     "paper's number": first["paper_number"], **{t: per.get(t, "") for t in teachers},
                     "verdict": overall(per.values()), "reason": _reason(sub)})
    return pd.DataFrame(rows)


def _reason(sub: pd.DataFrame) -> str:
    """Why a claim was not run, or which teachers left it inconclusive (empty otherwise)."""
    inconclusive = sub.loc[sub["verdict"] == "inconclusive", "teacher"].tolist()
    if inconclusive:
        return "inconclusive on " + ", ".join(inconclusive) + ": a learned component stopped at its cap, still improving"
    return next((o[len("not run: "):] for o in sub["ours"] if str(o).startswith("not run: ")), "")


def summary(card: pd.DataFrame) -> pd.DataFrame:
    """Counts of overall verdicts per paper (the README's scorecard summary)."""
    table = card.pivot_table(index="paper", columns="verdict", values="claim", aggfunc="count", fill_value=0, sort=False)
    return table.reindex(columns=list(VERDICTS), fill_value=0)  # every verdict, inconclusive too, even at 0


def scorecard_markdown(card: pd.DataFrame, link: str | None = "claims/{paper}-{teacher}.md") -> str:
    """The scorecard as markdown; each per-teacher verdict links to that claims file when `link` is given."""
    keys = {v: k for k, v in PAPERS.items()}
    teachers = [c for c in card.columns if c not in {"paper", "claim_id", "claim", "paper's number", "verdict", "reason"}]
    shown = card.copy()
    if link:
        for t in teachers:
            shown[t] = [f"[{v}]({link.format(paper=keys.get(p, p), teacher=t)})" if v else ""
                        for p, v in zip(card["paper"], card[t])]
    shown["verdict"] = [f"**{v}**" + (f" ({r})" if r and (v == "not run" or r.startswith("inconclusive on")) else "")
                        for v, r in zip(card["verdict"], card["reason"])]
    return shown[["paper", "claim", "paper's number", *teachers, "verdict"]].to_markdown(index=False) + "\n"
