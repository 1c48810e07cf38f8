"""Result tables for reports/ and the README: markdown tables, sanity checks, the report's pages.

Reads only result tables (`reports/results/*.csv`), claims (`reports/claims/*.csv`) and the executed notebooks'
timings; never recomputes anything. `reports/README.md` is the report a code host renders; the main README gets the
leaderboard and the scorecard summary between its markers, and each paper's claims with their verdicts in that paper's
section (`python -m flowlib.report readme`).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .artifacts import write_text
from .errors import FlowlibError
from .evaluate import REFERENCE_SOLVERS, sampler_label
from .layout import teacher_of

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def baseline_checks(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: real-data and ground-truth quality, their ratio, and the fitted Euler RMSE order.

    The order is minus the log-log slope of RMSE to GT against NFE over the largest three NFEs (about 1 for
    Euler once in the asymptotic regime).
    """
    out = []
    for name, sub in df.groupby("dataset", sort=False):
        data = sub.loc[sub["solver"] == "heldout", "quality"]
        decoded = sub.loc[sub["solver"] == "decoded", "quality"]
        gt = sub.loc[(sub["method"] == "baseline") & (sub["solver"] == "adaptive"), ["quality", "nfe"]]
        euler = sub[(sub["method"] == "baseline") & (sub["solver"] == "euler")].sort_values("nfe").tail(3)
        order = float("nan")
        if len(euler) >= 2:
            slope = np.polyfit(np.log(euler["nfe"]), np.log(euler["rmse_to_gt"]), 1)[0]
            order = -slope
        row = {"dataset": name, "metric": sub["quality_metric"].iloc[0],
               "real_heldout": data.iloc[0] if len(data) else float("nan"),
               "decoder_floor": decoded.iloc[0] if len(decoded) else float("nan"),
               "ground_truth": gt["quality"].iloc[0] if len(gt) else float("nan"),
               "gt_nfe": int(gt["nfe"].iloc[0]) if len(gt) else 0, "euler_rmse_order": order}
        row["gt_over_real"] = row["ground_truth"] / row["real_heldout"]
        out.append(row)
    return pd.DataFrame(out)


def references_markdown(checks: pd.DataFrame) -> str:
    """One line per dataset of `baseline_checks`: real held-out data, a latent teacher's decoder floor and the teacher's
    ground truth, in the distance to the data (where the teacher stands, before any sampler is compared with it).

    >>> references_markdown(pd.DataFrame([{"dataset": "d", "metric": "fid", "real_heldout": 2.0, "decoder_floor": 9.0,
    ...     "ground_truth": 14.0, "gt_nfe": 80}])).split(": ", 1)[1]
    "d (fid): real held-out data 2, decoder floor 9, the teacher's ground truth 14 (dopri5, 80 NFE)."
    """
    parts = []
    for row in checks.itertuples():
        floor = "" if pd.isna(row.decoder_floor) else f", decoder floor {row.decoder_floor:.3g}"
        parts.append(f"{row.dataset} ({row.metric}): real held-out data {row.real_heldout:.3g}{floor}, the teacher's "
                     f"ground truth {row.ground_truth:.3g} (dopri5, {row.gt_nfe} NFE)")
    return "**Where the teachers stand** (distance to the data, lower is better): " + "; ".join(parts) + "." if parts else ""


def _cell(value: float, std: float, bracket: float = float("nan")) -> str:
    """`value ±std (bracket)`, leaving out what is missing."""
    if pd.isna(value):
        return ""
    text = f"{value:.3g}" + ("" if pd.isna(std) else f" ±{std:.2g}")
    return text + ("" if pd.isna(bracket) else f" ({bracket:.2g})")


def _table(sub: pd.DataFrame, col: str, bracket: str | None = None) -> str:
    cells = sub.apply(lambda r: _cell(r[col], r[f"{col}_std"], r[bracket] if bracket else float("nan")), axis=1)
    fixed = sub.assign(cell=cells)[~sub["solver"].isin(REFERENCE_SOLVERS) & sub[col].notna()]
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
        for row in sub[sub["solver"] == "decoded"].itertuples():
            refs.append(f"decoder floor (held-out images through the autoencoder) {_cell(row.quality, row.quality_std)}")
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


def update_readme(readme: str | Path, table_md: str, profile: str | None = None) -> bool:
    """Replace the text between the README's results markers (the default's, or `profile`'s) with `table_md`; True if it
    changed. A profile without markers yet gets a new section after the default results."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = readme_markers(profile)
    if profile is not None and start not in text and README_END in text:
        text = text.replace(README_END, f"{README_END}\n\n### Results of the `{profile}` profile (generated by `make repro "
                            f"PROFILE={profile}`, do not edit)\n\n{start}\n{end}", 1)
    return write_between(readme, start, end, f"\n{table_md.strip()}\n", text)


def write_between(readme: Path, start: str, end: str, body: str, text: str | None = None) -> bool:
    """Put `body` between the markers `start` and `end` of `text` (default: the file's own) and write it to `readme`
    when that changes the file; True if it did. The one way the README's generated parts are written."""
    original = readme.read_text()
    text = original if text is None else text
    if start not in text or end not in text:
        raise ReportError(f"{readme} lacks the markers {start} ... {end}.")
    head, rest = text.split(start, 1)
    new = f"{head}{start}{body}{end}{rest.split(end, 1)[1]}"
    if new != original:
        write_text(readme, new)
        return True
    return False


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


def run_notebooks(notebooks_dir: str | Path, teachers: Iterable[str] | None = None) -> list[Path]:
    """The executed notebooks of a run (`reports/notebooks/*.ipynb`); with `teachers`, only the profile's own: the
    stage-wide ones (`00_data`, `06_report`) and `<notebook>-<teacher>` of those teachers, not another profile's."""
    keep = None if teachers is None else set(teachers)
    return [p for p in sorted(Path(notebooks_dir).glob("*.ipynb"))
            if keep is None or teacher_of(p.stem) in (None, *keep)]


def stage_times(notebooks_dir: str | Path, teachers: Iterable[str] | None = None) -> pd.DataFrame:
    """Seconds each executed notebook took (papermill's own record in `reports/notebooks/*.ipynb`), by stage."""
    rows = []
    for path in run_notebooks(notebooks_dir, teachers):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            rows.append({"notebook": path.stem, "seconds": round(float(meta["duration"]), 1)})
    return pd.DataFrame(rows, columns=["notebook", "seconds"])


def readme_summary(board_md: str, summary: pd.DataFrame, versus_md: str = "", galleries: Iterable[str] = (),
                   references_md: str = "") -> str:
    """The block the main README shows: the leaderboard, where the teachers stand against the data (`references_md`),
    each image teacher's gallery (`galleries`: figure paths from the repository root), the scorecard's counts and (with
    diffusers rows) where each paper beats diffusers' schedulers, with links to the full report."""
    versus = (f"**Against diffusers' schedulers** (DPM-Solver++ 2M/3M and UniPC in flow form, the best within each NFE "
              f"budget, by the distance to the teacher; [details](reports/README.md#against-diffusers-schedulers)):\n\n"
              f"{versus_md.strip()}\n\n") if versus_md else ""
    shown = "".join(f"![{Path(g).stem}]({g})\n" for g in galleries)
    if shown:
        shown = ("**What the samplers draw** (real held-out images, the ground truth, then each paper's sampler nearest "
                 "the teacher's distribution at 1, 2 and 4 NFE, from the same noises):\n\n" + shown + "\n")
    references = f"{references_md.strip()}\n\n" if references_md else ""
    return (f"{board_md.strip()}\n\n{references}{shown}{versus}**Reproduction scorecard** (claims per overall verdict; "
            f"every claim, teacher by teacher, in [reports/README.md](reports/README.md#reproduction-scorecard)):\n\n"
            f"{summary.to_markdown()}\n\n"
            "Full report: [reports/README.md](reports/README.md) (tables, figures, links to every executed notebook) and "
            "[reports/report.html](reports/report.html) (the executed report notebook); every sampler's numbers: "
            "[reports/results.md](reports/results.md).\n")


def report_page(board_md: str, card_md: str, gains_md: str, figures: Iterable[str], notebooks: Iterable[str],
                times: pd.DataFrame, training_md: str = "", versus_md: str = "", references_md: str = "") -> str:
    """`reports/README.md`: leaderboard, where the teachers stand against the data (`references_markdown`), scorecard,
    combinations, figures, executed notebooks and stage times.

    `figures` and `notebooks`: paths relative to the reports directory."""
    figs = "\n".join(f"![{Path(f).stem}]({f})" for f in figures)
    nbs = "\n".join(f"- [{Path(n).stem}](notebooks/{Path(n).name})" for n in notebooks)
    total = times["seconds"].sum() if len(times) else 0.0
    return (
        "# flowlib report\n\nGenerated by `dvc repro` (stage `report`, notebook `06_report`); do not edit.\n\n"
        "## Leaderboard\n\nPer teacher and NFE budget, the sampler nearest the teacher's own distribution among all that "
        "spend at most that many network calls; samplers within its noise band are listed as tied.\n\n"
        f"{board_md}\n" + (f"\n{references_md.strip()}\n\n" if references_md else "") +
        (f"## Against diffusers' schedulers\n\nPer teacher and NFE budget, each paper's best sampler "
                            "against the best of diffusers' DPM-Solver++ (2M, 3M) and UniPC in their flow-matching form "
                            "(`eval.diffusers`, run by `flowlib.diffusers_bridge.DiffusersSampler` on the same teacher, "
                            "noise and metrics), by the distance to the teacher's distribution beyond the noise band.\n\n"
                            f"{versus_md}\n" if versus_md else "") +
        f"## Reproduction scorecard\n\nEvery claim of the four papers, from `reports/claims/*.csv`; each "
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


# ------------------------------------------------------------------------------- a profile's own report
# What a run of the pipeline writes under reports/ (dvc.yaml's committed outputs): a profile's report is a copy of these.
RUN_OUTPUTS = ("README.md", "report.html", "summary.md", "results.md", "results.csv", "inputs.json", "results", "claims",
               "figures", "metrics", "notebooks")
# The run's figures that name no teacher (stages data and report); every other figure names its teacher.
RUN_FIGURES = ("data.png", "quality_vs_nfe.png", "gt_distance_vs_nfe.png", "rmse_vs_nfe.png", "report/training-cost.png")


def publish_profile(reports: str | Path, profile: str, teachers: Iterable[str]) -> Path:
    """Copy a profile run's report from `reports/` to `reports/<profile>/` (replacing an older copy), keeping only the
    profile's own tables, claims, notebooks and figures, so that the default report and every profile's sit side by side."""
    reports, teachers = Path(reports), list(teachers)
    target = reports / profile
    if target.exists():
        shutil.rmtree(target)

    def others(folder: str, names: list[str]) -> list[str]:  # what another profile left in the shared folders
        return [n for n in names if (Path(folder) / n).is_file()
                and not _profile_owns((Path(folder) / n).relative_to(reports).as_posix(), teachers)]

    for name in RUN_OUTPUTS:
        source = reports / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=others)
        elif source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _profile_owns(path: str, teachers: list[str]) -> bool:
    """Whether a file of a run's folders (`path` relative to reports/) belongs to a profile with `teachers`: a figure
    that names one of them or is stage-wide (`RUN_FIGURES`); a table, claims file, metrics file or executed notebook
    of one of them (`<stage>-<teacher>`) or of a stage-wide step (`data`, `00_data`, `06_report`)."""
    folder, _, rel = path.partition("/")
    if folder == "figures" and rel.endswith(".png"):
        return rel in RUN_FIGURES or bool(set(re.split(r"[-/]", rel.removesuffix(".png"))) & set(teachers))
    return folder == "figures" or teacher_of(Path(rel).name) in (None, *teachers)



def profile_block(profile: str, summary_md: str, shifts_md: str) -> str:
    """The README's block for a profile: its leaderboard and scorecard (links into `reports/<profile>/`) and the
    claims whose verdict differs from the default profile's."""
    linked = summary_md.replace("(reports/", f"(reports/{profile}/").replace("[reports/", f"[reports/{profile}/")
    return f"{linked.strip()}\n\n{shifts_md.strip()}\n"


def readme_markers(profile: str | None = None) -> tuple[str, str]:
    """The README's markers around the default results (`profile` None) or a profile's."""
    if profile is None:
        return README_START, README_END
    return f"<!-- results:{profile}:start -->", f"<!-- results:{profile}:end -->"


def claims_markers(paper: str) -> tuple[str, str]:
    """The README's markers around one paper's claims table (`paper`: boss, bespoke, flowturbo, fgm)."""
    return f"<!-- claims:{paper}:start -->", f"<!-- claims:{paper}:end -->"


def paper_claims_markdown(card: pd.DataFrame, paper: str) -> str:
    """One paper's rows of the scorecard for its README section: each claim, its verdict per teacher (linked to the
    claims file that holds the criterion and our numbers) and overall."""
    from .scorecard import PAPERS, scorecard_markdown

    return scorecard_markdown(card[card["paper"] == PAPERS[paper]], link="reports/claims/{paper}-{teacher}.md",
                              paper_column=False)


def update_paper_claims(readme: str | Path, claims_dir: str | Path, teachers: Iterable[str]) -> list[str]:
    """Put each paper's claims table (from `claims_dir`, over `teachers`) between its markers in the README; the papers
    whose table changed."""
    from .scorecard import PAPERS, read_claims, scorecard

    card = scorecard(read_claims(claims_dir, PAPERS, list(teachers)))
    return [paper for paper in PAPERS
            if write_between(Path(readme), *claims_markers(paper), "\n" + paper_claims_markdown(card, paper))]


TIMING_START, TIMING_END = "<!-- repro-time:start -->", "<!-- repro-time:end -->"


def timing_sentence(seconds: float, cores: int | None, fresh: bool, when: str, profile: str | None = None) -> str:
    """The README's measured `make repro` time (of the default profile, or `profile`'s), as the run that measured it
    writes it.

    >>> timing_sentence(1234.5, 2, True, "2026-12-06")
    'Last measured: `make repro` took 20 min 34 s on a fresh clone, install included (2 cores, 2026-12-06).'
    """
    minutes, rest = divmod(round(seconds), 60)
    where = "on a fresh clone, install included" if fresh else "with .venv already installed"
    command = "make repro" + (f" PROFILE={profile}" if profile else "")
    return f"Last measured: `{command}` took {minutes} min {rest} s {where} ({cores or '?'} cores, {when})."


def timing_markers(profile: str | None = None) -> tuple[str, str]:
    """The README's markers around the default run's measured time (`profile` None) or a profile's."""
    return (TIMING_START, TIMING_END) if profile is None else (f"<!-- repro-time:{profile}:start -->",
                                                               f"<!-- repro-time:{profile}:end -->")


def update_timing(readme: str | Path, sentence: str, profile: str | None = None) -> bool:
    """Put `sentence` between the README's repro-time markers (the default's, or `profile`'s); True if it changed."""
    return write_between(Path(readme), *timing_markers(profile), sentence)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.report")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("readme", help="copy reports/summary.md into README.md between the results markers, and each "
                       "paper's claims (reports/claims/) into its section")
    p.add_argument("--results", default="reports/summary.md")
    p.add_argument("--claims", default="reports/claims")
    p.add_argument("--readme", default="README.md")
    q = sub.add_parser("profile", help="after `make repro PROFILE=NAME`: copy the run's report to reports/NAME/ and put "
                       "its leaderboard, scorecard and the verdicts that differ from the default's into README.md")
    q.add_argument("name")
    q.add_argument("--reports", default="reports")
    q.add_argument("--readme", default="README.md")
    t = sub.add_parser("timing", help="after `make repro`: write its measured wall time into README.md")
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--fresh", action="store_true", help="the run created .venv (install included)")
    t.add_argument("--profile", default=None, help="the profile that ran (default: the default profile)")
    t.add_argument("--readme", default="README.md")
    args = parser.parse_args(argv)
    if args.cmd == "timing":
        import datetime
        import os

        sentence = timing_sentence(args.seconds, os.cpu_count(), args.fresh, datetime.date.today().isoformat(),
                                   args.profile)
        update_timing(args.readme, sentence, args.profile)
        print(f"{args.readme}: {sentence}")
        return 0
    if args.cmd == "readme":
        from .config import load_params

        changed = update_readme(args.readme, Path(args.results).read_text())
        papers = update_paper_claims(args.readme, args.claims, load_params(smoke=False).teachers)
        print(f"{args.readme}: results table {'updated' if changed else 'already current'}; claims tables "
              f"{'updated: ' + ', '.join(papers) if papers else 'already current'}")
        return 0
    from .config import profile_teachers
    from .scorecard import PAPERS, claim_teachers, read_claims, verdict_shifts, verdict_shifts_markdown

    teachers = profile_teachers(args.name)
    reports = Path(args.reports)
    target = publish_profile(reports, args.name, teachers)
    others = [t for t in claim_teachers(reports / "claims") if t not in teachers]
    if not others:
        raise ReportError(f"No default-profile claims under {reports / 'claims'} to compare with; check out the "
                          "committed reports (`git checkout reports/claims`).")
    shifts = verdict_shifts(read_claims(reports / "claims", PAPERS, others), read_claims(target / "claims", PAPERS, teachers))
    block = profile_block(args.name, (target / "summary.md").read_text(), verdict_shifts_markdown(shifts, args.name, others))
    changed = update_readme(args.readme, block, args.name)
    print(f"report copied to {target}; {args.readme}: {args.name} results {'updated' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

