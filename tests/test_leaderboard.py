"""The report's pieces on fixed rows: the leaderboard, the scorecard, the combinations' gains, missing inputs."""
import pandas as pd
import pytest

from flowlib.claims import COLUMNS
from flowlib.experiments.combos import gains_table
from flowlib.leaderboard import best_within, candidates, leaderboard, leaderboard_markdown, training_cost, training_table
from flowlib.report import ReportError, require_results, stage_times
from flowlib.scorecard import ScorecardError, overall, read_claims, scorecard, scorecard_markdown, summary


def row(solver, nfe, d, sd=0.1, method="baseline", teacher="t", ms=1.0, **extra):
    return {"dataset": "moons", "teacher": teacher, "method": method, "solver": solver, "nfe": nfe, "quality": 2 * d,
            "quality_std": sd, "quality_metric": "m", "gt_distance": d, "gt_distance_std": sd, "gt_distance_metric": "g",
            "rmse_to_gt": d / 10, "ms_per_sample": ms, "extra_params": 0, "train_seconds": 0.0, **extra}


ROWS = pd.DataFrame([
    row("adaptive", 200, 0.5), row("euler", 1, 50.0), row("euler", 2, 20.0), row("euler", 4, 8.0),
    row("fgm", 1, 3.0, method="fgm"), row("fgm-compiled", 1, 0.1, method="fgm"),  # a compiled copy never ranks
    row("bespoke-rk2", 2, 5.0, sd=0.2, method="bespoke"), row("midpoint", 2, 5.0, sd=0.2, ms=0.5),  # an exact tie
    row("heun", 4, 2.0, sd=0.3), row("H1P2", 4, 2.3, sd=0.1, method="flowturbo"),  # within the band of heun
])


def test_the_best_sampler_within_each_budget():
    board = leaderboard(ROWS, budgets=(1, 2, 4)).set_index("budget")
    assert board.loc[1, "best"] == "fgm:fgm"                     # not the compiled copy, not the reference row
    assert board.loc[2, "best"] == "fgm:fgm"                     # a budget allows fewer NFE: 3.0 beats 5.0
    assert board.loc[4, "best"] == "heun"
    assert board.loc[4, "tied"] == "flowturbo:H1P2@4"            # 2.3 vs 2.0: inside 2·√(0.3² + 0.1²); fgm 3.0 is not
    assert "tied" in leaderboard_markdown(board.reset_index())


def test_exact_ties_break_by_time_then_name_whatever_the_row_order():
    pool = candidates(ROWS[ROWS["nfe"] == 2])
    for rows in (pool, pool.iloc[::-1]):
        best = best_within(rows, 2)
        assert best["best"] == "midpoint" and best["tied"] == "bespoke:bespoke-rk2@2"  # same distance, less time


def test_an_empty_table_is_an_error():
    with pytest.raises(ValueError, match="No sampler rows"):
        leaderboard(ROWS[ROWS["solver"] == "adaptive"])


def claim(paper, teacher, cid, verdict, ours="x"):
    return dict(zip(COLUMNS, [paper, teacher, cid, f"claim {cid}", "criterion", "paper's number", ours, verdict]))


CLAIMS = pd.DataFrame([
    claim("boss", "a", "c1", "holds"), claim("boss", "b", "c1", "holds"),
    claim("boss", "a", "c2", "holds"), claim("boss", "b", "c2", "does not hold"),
    claim("boss", "a", "c3", "not run", "not run: no weights"), claim("boss", "b", "c3", "does not hold"),
    claim("fgm", "a", "big", "not run", "not run: needs SD3"), claim("fgm", "b", "big", "not run", "not run: needs SD3"),
    claim("fgm", "a", "c4", "partly holds"), claim("fgm", "b", "c4", "holds"),
    claim("fgm", "a", "c5", "inconclusive", "x; inconclusive: fgm@1 stopped at its cap"), claim("fgm", "b", "c5", "holds"),
    claim("fgm", "a", "c6", "inconclusive"), claim("fgm", "b", "c6", "not run", "not run: no weights"),
    claim("fgm", "a", "c7", "holds"), claim("fgm", "b", "c7", "not run", "not run: no weights"),
])


def test_scorecard_verdicts_from_fixed_claim_rows():
    card = scorecard(CLAIMS).set_index("claim_id")
    assert card["verdict"].to_dict() == {"c1": "holds", "c2": "partly holds", "c3": "does not hold", "big": "not run",
                                         "c4": "partly holds", "c5": "holds", "c6": "inconclusive",
                                         "c7": "holds"}
    assert card.loc["c5", "reason"].startswith("inconclusive on a:")  # the teacher left inconclusive is named
    assert card.loc["big", "reason"] == "needs SD3" and card.loc["c3", "a"] == "not run"
    text = scorecard_markdown(card.reset_index())
    assert "[does not hold](claims/boss-b.md)" in text and "**not run** (needs SD3)" in text
    counts = summary(card.reset_index())
    assert counts.loc["BOSS", "holds"] == 1 and counts.loc["Flow Generator Matching", "not run"] == 1
    assert counts.loc["Flow Generator Matching", "inconclusive"] == 1  # counted apart
    assert "**holds** (inconclusive on a:" in text
    assert "**holds** (no weights)" not in text  # a not-run teacher's reason shows only when no teacher could test it


@pytest.mark.parametrize("verdicts, expected", [(["not run"], "not run"), (["holds", "not run"], "holds"),
                                                (["does not hold", "does not hold"], "does not hold"),
                                                (["holds", "partly holds"], "partly holds"),
                                                (["inconclusive", "not run"], "inconclusive"),
                                                (["inconclusive", "does not hold"], "does not hold")])
def test_overall_verdict(verdicts, expected):
    assert overall(verdicts) == expected


def test_missing_claims_or_results_name_the_stage(tmp_path):
    CLAIMS[CLAIMS["paper"].eq("boss") & CLAIMS["teacher"].eq("a")].to_csv(tmp_path / "boss-a.csv", index=False)
    with pytest.raises(ScorecardError, match=r"boss-b.csv \(run `dvc repro boss@b`\)"):
        read_claims(tmp_path, ["boss"], ["a", "b"])
    pd.DataFrame([row("euler", 1, 1.0)]).to_csv(tmp_path / "baselines-a.csv", index=False)
    pd.DataFrame(columns=list(row("euler", 1, 1.0))).to_csv(tmp_path / "fgm-a.csv", index=False)
    with pytest.raises(ReportError, match=r"`dvc repro baselines@b` \(baselines-b.csv is missing\); `dvc repro fgm@a` "
                                          r"\(fgm-a.csv is empty\)"):
        require_results(tmp_path, ["baselines", "fgm"], ["a", "b"])


def test_combination_gains_against_the_best_part():
    rows = pd.DataFrame([
        row("bellman-euler+ft-full", 6, 10.0, method="boss"), row("bespoke-rk2", 6, 3.0, sd=0.2, method="bespoke"),
        row("H1P4", 6, 2.0, sd=0.2, method="flowturbo"),
        row("boss+bespoke-rk2", 6, 1.0, sd=0.2, method="boss+bespoke", parts="bellman-euler+ft-full;bespoke-rk2"),
        row("boss+H1P4", 6, 2.2, sd=0.2, method="boss+flowturbo", parts="bellman-euler+ft-full;H1P4"),
    ])
    gains = gains_table(rows).set_index("combination")["verdict"].to_dict()
    assert gains == {"boss+bespoke-rk2": "adds up", "boss+H1P4": "no gain over the best part"}


def test_stage_times_from_papermill_metadata(tmp_path):
    (tmp_path / "02_boss-a.ipynb").write_text('{"cells": [], "metadata": {"papermill": {"duration": 12.34}}}')
    (tmp_path / "explore.ipynb").write_text('{"cells": [], "metadata": {}}')
    assert stage_times(tmp_path).to_dict("records") == [{"notebook": "02_boss-a", "seconds": 12.3}]


def test_rows_say_how_they_were_trained_and_what_it_cost():
    trained = pd.DataFrame([
        row("adaptive", 200, 0.5, train_flops=1e12, train_seconds=50.0), row("euler", 4, 8.0),
        row("bespoke-rk2", 4, 1.0, method="bespoke", train_steps=340, converged=True, best_step=240, train_flops=2e9),
        row("fgm", 1, 3.0, method="fgm", train_steps=3000, converged=False, best_step=3000, train_flops=5e10),
    ])
    board = leaderboard(trained, budgets=(1, 4)).set_index("budget")
    assert board.loc[4, "trained"] == "340 (plateau)" and board.loc[1, "trained"] == "3000 (cap)"
    assert "train steps" in leaderboard_markdown(board.reset_index())
    table = training_table(trained).set_index("sampler")
    assert list(table.index) == ["bespoke:bespoke-rk2", "fgm:fgm"]  # training-free samplers have no training row
    assert table.loc["fgm:fgm", "ended"] == "cap, still improving" and table.loc["bespoke:bespoke-rk2", "best step"] == 240
    cost = training_cost(trained).set_index("method")
    assert cost.loc["teacher", "train_flops"] == 1e12 and cost.loc["fgm", "train_flops"] == 5e10


def test_verdict_shifts_compare_a_profile_with_the_default_overall():
    from flowlib.scorecard import verdict_shifts, verdict_shifts_markdown

    real = pd.DataFrame([claim("boss", "img", "c1", "holds"), claim("boss", "img", "c2", "holds"),
                         claim("boss", "img", "c3", "does not hold"), claim("fgm", "img", "big", "not run"),
                         claim("fgm", "img", "c4", "inconclusive"), claim("fgm", "img", "c5", "holds"),
                         claim("fgm", "img", "c6", "holds"), claim("fgm", "img", "c7", "holds")])
    shifts = verdict_shifts(CLAIMS, real).set_index("claim_id")
    assert shifts.loc["c1", "moved"] == "no"                       # holds on a and b, holds on img
    assert shifts.loc["c2", "moved"] == "yes"                      # partly holds -> holds
    assert shifts.loc["c3", "moved"] == "no"                       # does not hold (b) -> does not hold
    assert shifts.loc["big", "moved"] == "" and shifts.loc["c4", "moved"] == ""  # not run / inconclusive: no verdict to move
    assert shifts.loc["c6", "moved"] == ""                         # inconclusive on the default side
    assert list(shifts.columns[:3]) == ["paper", "claim", "default (all teachers)"] and "img" in shifts.columns
    text = verdict_shifts_markdown(shifts.reset_index(), "real", ["a", "b"])
    assert shifts.loc["c5", "moved"] == "no"                       # holds overall (a inconclusive), holds on img
    assert "of the 5 claims that both" in text and "4 keep their overall verdict and 1 move" in text
    assert "overall verdict over a, b" in text


def test_a_profile_report_keeps_its_own_tables_and_notebooks(tmp_path):
    import json

    from flowlib.evaluate import merge_results
    from flowlib.report import publish_profile, run_notebooks

    reports = tmp_path / "reports"
    for folder, names in {"results": ["baselines-img.csv", "baselines-a.csv", "flowturbo-img-latency.csv"],
                          "claims": ["boss-img.csv", "boss-img.md", "boss-a.csv"], "metrics": ["data.json", "fgm-a.json"],
                          "notebooks": ["00_data.ipynb", "01_teacher-img.ipynb", "01_teacher-a.ipynb"]}.items():
        (reports / folder).mkdir(parents=True)
        for name in names:
            text = json.dumps({"metadata": {"papermill": {"duration": 1.5}}}) if name.endswith(".ipynb") else ""
            (reports / folder / name).write_text(text)
    pd.DataFrame([row("euler", 1, 1.0, teacher="img")]).to_csv(reports / "results" / "baselines-img.csv", index=False)
    pd.DataFrame([row("euler", 1, 1.0, teacher="a")]).to_csv(reports / "results" / "baselines-a.csv", index=False)
    (reports / "summary.md").write_text("s")
    (reports / "screenshots").mkdir()
    for name in ("data.png", "samples-img.png", "samples-a.png", "report/img-overview.png", "report/a-overview.png",
                 "report/training-cost.png", "your-flow-comparison.png"):
        (reports / "figures" / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / "figures" / name).write_bytes(b"png")
    assert [p.name for p in run_notebooks(reports / "notebooks", ["img"])] == ["00_data.ipynb", "01_teacher-img.ipynb"]
    assert stage_times(reports / "notebooks", ["img"])["notebook"].tolist() == ["00_data", "01_teacher-img"]
    assert set(merge_results(reports / "results", ["img"])["teacher"]) == {"img"}  # another profile's table stays out
    target = publish_profile(reports, "real", ["img"])
    assert sorted(p.name for p in (target / "results").iterdir()) == ["baselines-img.csv", "flowturbo-img-latency.csv"]
    assert sorted(p.name for p in (target / "claims").iterdir()) == ["boss-img.csv", "boss-img.md"]
    assert sorted(p.name for p in (target / "metrics").iterdir()) == ["data.json"]
    assert sorted(p.name for p in (target / "notebooks").iterdir()) == ["00_data.ipynb", "01_teacher-img.ipynb"]
    assert (target / "summary.md").read_text() == "s" and not (target / "screenshots").exists()
    assert sorted(p.relative_to(target / "figures").as_posix() for p in (target / "figures").rglob("*.png")) == [
        "data.png", "report/img-overview.png", "report/training-cost.png", "samples-img.png"]


def test_a_profile_block_gets_its_own_markers_in_the_readme(tmp_path):
    from flowlib.report import README_END, README_START, profile_block, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    block = profile_block("real", "see [reports/README.md](reports/README.md)", "shifts")
    assert update_readme(readme, block, "real") and not update_readme(readme, block, "real")
    text = readme.read_text()
    assert "<!-- results:real:start -->\nsee [reports/real/README.md](reports/real/README.md)\n\nshifts\n" in text
    assert text.index(README_END) < text.index("results:real:start") < text.index("rest")  # after the default block
    assert f"{README_START}\nold\n{README_END}" in text                                   # which is left alone
