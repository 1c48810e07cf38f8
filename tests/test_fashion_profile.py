"""The `fashion` profile end to end at smoke sizes: every stage notebook of `dvc repro`, in order, under papermill, on small
Fashion-MNIST IDX files made here (tiny nets, a few steps), so the real-image path of the pipeline cannot rot."""
import json
from pathlib import Path

import pandas as pd
import papermill
import pytest
import yaml

from conftest import write_fashion_files

ROOT = Path(__file__).resolve().parents[1]
# dvc.yaml's order for one teacher: data, teacher, baselines, the four papers, the combinations, the report.
STAGES = ["00_data", "01_teacher", "01b_baselines", "02_boss", "03_bespoke", "04_flowturbo", "05_fgm", "05b_combos",
          "06_report"]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fashion")
    write_fashion_files(tmp / "data" / "fashion-mnist", n_train=96, n_test=48)
    raw = yaml.safe_load((ROOT / "profiles" / "fashion.yaml").read_text())
    raw["data"]["root"] = str(tmp / "data")
    params_file = tmp / "fashion.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    mp = pytest.MonkeyPatch()
    mp.setenv("FLOWLIB_SMOKE", "1")
    mp.setenv("FLOWLIB_SMOKE_DIR", str(tmp / "run"))  # its own artefacts and reports, apart from the notebooks' nbval run
    out = tmp / "run" / "reports" / "notebooks"  # where dvc.yaml writes them: the report lists their times
    out.mkdir(parents=True)
    try:
        for stage in STAGES:
            parameters = {"params_file": str(params_file)} | ({} if stage in ("00_data", "06_report") else {"teacher": "fashion"})
            papermill.execute_notebook(ROOT / "notebooks" / f"{stage}.ipynb", out / f"{stage}.ipynb",
                                       parameters=parameters, cwd=str(ROOT / "notebooks"), progress_bar=False)
    finally:
        mp.undo()
    return tmp / "run" / "reports"


def test_every_stage_runs_on_fashion_and_scores_with_its_classifier(fashion_run):
    reports = fashion_run
    data = json.loads((reports / "metrics" / "data.json").read_text())
    assert {"clf_acc", "clf_acc_fashion", "clf_s_fashion"} <= set(data)
    df = pd.read_csv(reports / "results.csv")
    assert set(df["dataset"]) == {"fashion"} and set(df["teacher"]) == {"fashion", "-"}  # "-": the real held-out row
    assert set(df["method"]) >= {"data", "baseline", "boss", "reflow", "bespoke", "flowturbo", "fgm", "boss+bespoke",
                                 "boss+flowturbo"}
    assert set(df["quality_metric"]) == {"fid-fashion-classifier"}
    assert set(df.loc[df["method"] != "data", "gt_distance_metric"]) == {"fd-to-gt-fashion-classifier"}
    for paper in ("boss", "bespoke", "flowturbo", "fgm"):
        claims = pd.read_csv(reports / "claims" / f"{paper}-fashion.csv")
        assert len(claims) and claims["verdict"].notna().all()
    assert "fashion" in (reports / "README.md").read_text()
