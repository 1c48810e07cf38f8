from pathlib import Path

import pandas as pd
import pytest
import torch

from flowlib.evaluate import COLUMNS
from flowlib.plots import plot_sample_panels, plot_vs_nfe
from flowlib.report import README_END, README_START, baseline_checks, results_markdown, update_readme

ROOT = Path(__file__).resolve().parents[1]


def _table():
    rows = [("data", "heldout", 0, 10.0, float("nan")), ("baseline", "adaptive", 100, 11.0, 0.0)]
    rows += [("baseline", "euler", n, 10 + 100 / n, 1.0 / n) for n in (2, 4, 8)]
    rows += [("baseline", "heun", n, 10 + 50 / n**2, 1.0 / n**2) for n in (2, 4, 8)]
    return pd.DataFrame([{**dict.fromkeys(COLUMNS, 0), "dataset": "toy", "teacher": "t", "method": m, "solver": s,
                          "nfe": n, "quality": q, "quality_std": 0.5, "quality_metric": "sliced-w2", "rmse_to_gt": r,
                          "gt_distance": float("nan") if m == "data" else r / 10 + 0.01, "gt_distance_std": 0.001,
                          "gt_distance_metric": "sliced-w2-to-gt"} for m, s, n, q, r in rows])


def test_markdown_and_checks():
    df = _table()
    md = results_markdown(df)
    assert "NFE 2" in md and "NFE 8" in md and "| euler" in md and "real held-out data 10 ±0.5" in md
    assert "| euler     | 60 ±0.5" in md and "0.06 ±0.001 (0.5)" in md  # quality ± std; gt_distance ± std (RMSE)
    assert "floor (ground truth vs an independent ground-truth draw) 0.01 ±0.001" in md
    checks = baseline_checks(df).iloc[0]
    assert checks["gt_over_real"] == pytest.approx(1.1) and checks["euler_rmse_order"] == pytest.approx(1.0)


def test_figures_are_written(tmp_path):
    plot_vs_nfe(_table(), tmp_path / "q.png")
    plot_vs_nfe(_table(), tmp_path / "d.png", y="gt_distance")
    plot_sample_panels({"a": torch.rand(10, 1, 8, 8), "b": torch.rand(10, 1, 8, 8)}, tmp_path / "s.png")
    plot_sample_panels({"pts": torch.randn(100, 2)}, tmp_path / "p.png", reference=torch.randn(100, 2))
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("q.png", "d.png", "s.png", "p.png"))


def test_update_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\noutro\n")
    assert update_readme(readme, "| new |")
    assert readme.read_text() == f"intro\n{README_START}\n| new |\n{README_END}\noutro\n"
    assert not update_readme(readme, "| new |")


def test_readme_shows_the_generated_table():
    """The README's results block is the committed reports/summary.md (leaderboard and scorecard), not typed by hand."""
    text = (ROOT / "README.md").read_text()
    shown = text.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert shown == (ROOT / "reports" / "summary.md").read_text().strip()


def test_each_paper_section_shows_its_generated_claims(tmp_path):
    """Each paper's README section holds its claims with the verdict per teacher, as `report readme` writes them from the
    committed claims files (not typed by hand); writing them again changes nothing, and a README without a paper's
    markers is refused."""
    from flowlib.config import load_params
    from flowlib.report import ReportError, claims_markers, update_paper_claims
    from flowlib.scorecard import PAPERS

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    teachers = list(load_params(ROOT / "params.yaml", smoke=False).teachers)
    assert update_paper_claims(readme, ROOT / "reports" / "claims", teachers) == []     # the committed README is current
    for paper in PAPERS:
        block = readme.read_text().split(claims_markers(paper)[0], 1)[1].split(claims_markers(paper)[1], 1)[0]
        claims = pd.read_csv(ROOT / "reports" / "claims" / f"{paper}-digits.csv", keep_default_na=False)
        assert all(claim in block for claim in claims["claim"])
        assert block.splitlines()[1].split("|")[1].strip() == "claim"      # the section names the paper: no paper column
        assert f"(reports/claims/{paper}-digits.md)" in block
    start, end = claims_markers("fgm")
    readme.write_text(readme.read_text().replace(start, "").replace(end, ""))
    with pytest.raises(ReportError, match="lacks the markers"):
        update_paper_claims(readme, ROOT / "reports" / "claims", teachers)


def test_saved_figure_shows_inline_and_never_an_absolute_path(tmp_path, monkeypatch):
    from flowlib import plots

    monkeypatch.setattr(plots, "_WRITTEN", {})
    fig = plots.plot_sample_panels({"pts": torch.randn(50, 2)}, tmp_path / "figures" / "p.png")
    assert repr(fig) == "SavedFigure('figures/p.png')" and str(tmp_path) not in repr(fig)
    assert Path(fig).is_file()  # still a path
    with pytest.raises(plots.FigureNotShownError, match=r"p\.png"):
        plots.check_figures_shown()
    assert fig._repr_png_().startswith(b"\x89PNG")  # what Jupyter displays
    assert plots.check_figures_shown() == "1 figure(s) written, all shown inline"


def test_make_repro_writes_its_own_time_between_the_readme_markers(tmp_path):
    from flowlib.report import TIMING_END, TIMING_START, ReportError, timing_sentence, update_timing

    readme = tmp_path / "README.md"
    readme.write_text(f"took: {TIMING_START}old{TIMING_END} rest\n")
    assert update_timing(readme, timing_sentence(1500, 2, True, "2026-12-06"))
    assert readme.read_text() == (f"took: {TIMING_START}Last measured: `make repro` took 25 min 0 s on a fresh clone, install "
                                  f"included (2 cores, 2026-12-06).{TIMING_END} rest\n")
    assert not update_timing(readme, timing_sentence(1500, 2, True, "2026-12-06"))   # already current
    readme.write_text("no markers\n")
    with pytest.raises(ReportError, match="repro-time"):
        update_timing(readme, "x")
    assert TIMING_START in (ROOT / "README.md").read_text()   # the README has the place `make repro` writes to


def test_a_profile_run_writes_its_time_between_its_own_markers(tmp_path):
    from flowlib.report import TIMING_END, TIMING_START, timing_markers, timing_sentence, update_timing

    start, end = timing_markers("fashion")
    readme = tmp_path / "README.md"
    readme.write_text(f"{TIMING_START}default{TIMING_END}\n{start}old{end}\n")
    assert update_timing(readme, timing_sentence(3000, 2, True, "2026-12-06", "fashion"), "fashion")
    assert readme.read_text() == (f"{TIMING_START}default{TIMING_END}\n{start}Last measured: `make repro PROFILE=fashion` "
                                  f"took 50 min 0 s on a fresh clone, install included (2 cores, 2026-12-06).{end}\n")
    assert start in (ROOT / "README.md").read_text()   # make repro PROFILE=fashion writes there
