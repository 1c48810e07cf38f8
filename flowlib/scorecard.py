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
from .layout import teacher_of

PAPERS = {"boss": "BOSS", "bespoke": "Bespoke solvers", "flowturbo": "FlowTurbo", "fgm": "Flow Generator Matching"}


CARD_COLUMNS = ("paper", "claim_id", "claim", "paper's number", "verdict", "reason")  # the others: one per teacher


def teacher_columns(card: pd.DataFrame) -> list[str]:
    """The per-teacher verdict columns of a `scorecard` table."""
    return [c for c in card.columns if c not in CARD_COLUMNS]


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


def scorecard_markdown(card: pd.DataFrame, link: str | None = "claims/{paper}-{teacher}.md", paper_column: bool = True
                       ) -> str:
    """The scorecard as markdown; each per-teacher verdict links to that claims file when `link` is given. Without
    `paper_column` (one paper's rows, under a heading that names it) the paper is left out."""
    keys = {v: k for k, v in PAPERS.items()}
    teachers = teacher_columns(card)
    shown = card.copy()
    if link:
        for t in teachers:
            shown[t] = [f"[{v}]({link.format(paper=keys.get(p, p), teacher=t)})" if v else ""
                        for p, v in zip(card["paper"], card[t])]
    shown["verdict"] = [f"**{v}**" + (f" ({r})" if r and (v == "not run" or r.startswith("inconclusive on")) else "")
                        for v, r in zip(card["verdict"], card["reason"])]
    columns = ["paper"] * paper_column + ["claim", "paper's number", *teachers, "verdict"]
    return shown[columns].to_markdown(index=False) + "\n"


def claim_teachers(claims_dir: str | Path) -> list[str]:
    """The teachers that have claims files under `claims_dir` (`<paper>-<teacher>.csv`), in name order."""
    names = {teacher_of(p.stem) for p in Path(claims_dir).glob("*.csv") if p.stem.split("-", 1)[0] in PAPERS}
    return sorted(names)


def verdict_shifts(base: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per claim: the overall verdict over `base`'s teachers (the default profile), each `other` teacher's verdict (a
    profile's, e.g. Fashion-MNIST), and whether that verdict moved. `moved` is empty where either side did not test
    the claim conclusively (`not run`, `inconclusive`), `yes` where the verdicts differ, `no` where they agree."""
    card_a, card_b = scorecard(base), scorecard(other)
    others = teacher_columns(card_b)
    out = card_a[["paper", "claim_id", "claim", "verdict"]].rename(columns={"verdict": "default (all teachers)"})
    out = out.merge(card_b[["paper", "claim_id", *others]], on=["paper", "claim_id"], how="outer")
    moved = []
    for _, row in out.iterrows():
        pair = [row["default (all teachers)"], *(row[t] for t in others)]
        if any(pd.isna(v) or v in ("not run", "inconclusive") for v in pair):
            moved.append("")
        else:
            moved.append("yes" if len(set(pair)) > 1 else "no")
    return out.assign(moved=moved)


def verdict_shifts_markdown(shifts: pd.DataFrame, profile: str, base_teachers: Iterable[str]) -> str:
    """The README's table of `verdict_shifts`, with a count sentence on top."""
    tested = shifts[shifts["moved"] != ""]
    n_moved = int((tested["moved"] == "yes").sum())
    head = (f"**Verdicts on real images against the toy teachers**: of the {len(tested)} claims that both the default "
            f"profile and the `{profile}` profile tested conclusively, {len(tested) - n_moved} keep their overall verdict and "
            f"{n_moved} move (`moved`: yes). The default column is the overall verdict over {', '.join(base_teachers)}; "
            "each claim's numbers are in the claims files of each report.\n\n")
    return head + shifts.drop(columns=["claim_id"]).fillna("").to_markdown(index=False) + "\n"
