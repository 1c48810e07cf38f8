"""The paper-scale `cifar10` profile end to end at its smoke sizes on CPU: every stage notebook of `dvc repro`, in order,
under papermill, on CIFAR-10 python batches and a stand-in Inception file made here (tiny UNets, a few steps), so the
GPU profile's path through the pipeline (UNet teacher, Inception FID from the data stage's statistics, chunked
evaluation, every paper) cannot rot on a machine without a GPU."""
import json

import pandas as pd
import pytest

from conftest import run_profile_smoke, write_cifar10_files, write_fake_inception

pytestmark = pytest.mark.profile_smoke


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cifar10")
    write_cifar10_files(tmp / "data")
    weights = write_fake_inception(tmp / "data" / "inception")
    return run_profile_smoke("cifar10", tmp, {"data": {"root": str(tmp / "data"), "inception_weights": str(weights)}})


def test_every_stage_runs_on_cifar10_with_inception_features(cifar_run):
    reports = cifar_run
    assert json.loads((reports / "inputs.json").read_text())["inception"]["present"]
    df = pd.read_csv(reports / "results.csv")
    assert set(df["dataset"]) == {"cifar10"}
    assert set(df["method"]) >= {"data", "baseline", "diffusers", "boss", "reflow", "bespoke", "flowturbo", "fgm",
                                 "boss+bespoke", "boss+flowturbo"}
    assert set(df["quality_metric"]) == {"fid-inception"}
    assert set(df.loc[df["method"] != "data", "gt_distance_metric"]) == {"fd-to-gt-inception"}
    for paper in ("boss", "bespoke", "flowturbo", "fgm"):
        claims = pd.read_csv(reports / "claims" / f"{paper}-cifar10.csv")
        assert len(claims) and claims["verdict"].notna().all()


def test_the_data_stage_computed_the_reference_statistics_once(cifar_run):
    stats = cifar_run.parent / "artifacts" / "features" / "cifar10_stats.pt"
    from flowlib.artifacts import load_checkpoint

    state = load_checkpoint(stats)
    assert state["metric"] == "fid-inception" and state["n"] == 40 and state["sigma"].shape == (2048, 2048)
