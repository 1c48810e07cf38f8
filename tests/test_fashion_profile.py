"""The `fashion` profile end to end at smoke sizes: every stage notebook of `dvc repro`, in order, under papermill, on small
Fashion-MNIST IDX files made here (tiny nets, a few steps), so the real-image path of the pipeline cannot rot."""
import json

import pandas as pd
import pytest

from conftest import run_profile_smoke, write_fashion_files

pytestmark = pytest.mark.profile_smoke


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fashion")
    write_fashion_files(tmp / "data" / "fashion-mnist", n_train=96, n_test=48)
    return run_profile_smoke("fashion", tmp, {"data": {"root": str(tmp / "data")}})


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


def test_the_fashion_teacher_is_latent_and_reports_its_decoder_floor(fashion_run):
    reports = fashion_run
    autoencoders = json.loads((reports / "metrics" / "autoencoders.json").read_text())
    assert {"decoder_floor_fashion", "real_heldout_fashion", "val_mse_fashion"} <= set(autoencoders)
    df = pd.read_csv(reports / "results" / "baselines-fashion.csv")
    assert set(df.loc[df["method"] == "data", "solver"]) == {"heldout", "decoded"}  # real images and the decoder floor
    assert (reports / "figures" / "autoencoders" / "fashion-reconstructions.png").is_file()


def test_the_explorer_gallery_and_your_flow_show_decoded_images(fashion_run, tmp_path):
    """A latent teacher is shown as image grids: the explorer, the report's gallery and notebook 07 decode its samples."""
    import matplotlib
    import papermill

    from conftest import ROOT
    from flowlib.config import load_params
    from flowlib.explore import Knobs, show

    matplotlib.use("Agg")
    reports = fashion_run
    run = reports.parent
    assert (reports / "figures" / "report" / "gallery-fashion.png").is_file()
    assert "gallery-fashion.png" in (reports / "summary.md").read_text()
    mp = pytest.MonkeyPatch()
    mp.setenv("FLOWLIB_SMOKE", "1")
    mp.setenv("FLOWLIB_SMOKE_DIR", str(run))
    try:
        params = load_params(run.parent / "fashion.yaml")
        fig = show(params, "fashion", "teacher", Knobs(nfe=2), n=16)
        assert [len(ax.images) for ax in fig.axes] == [1, 1]  # two image grids, no scatter of latents
        out = tmp_path / "07.ipynb"
        papermill.execute_notebook(ROOT / "notebooks" / "07_your_flow.ipynb", out, cwd=str(ROOT / "notebooks"),
                                   parameters={"params_file": str(run.parent / "fashion.yaml"), "teacher": "fashion"},
                                   progress_bar=False)
    finally:
        mp.undo()
    assert (reports / "figures" / "your-flow-samples.png").is_file()
