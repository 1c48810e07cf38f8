import math

import pandas as pd
import pytest
import torch

from flowlib.claims import compare
from flowlib.evaluate import (
    COLUMNS,
    ResultError,
    TeacherReference,
    data_row,
    evaluate,
    merge_results,
    read_results,
    write_results,
)
from flowlib.metrics import FID, SlicedW2, bootstrap_std, redraw_std
from flowlib.solvers import AdaptiveSampler, ODESampler


def test_evaluate_row_and_table_round_trip(gaussian_field, tmp_path):
    noise = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0))
    reference = gaussian_field.solution(torch.randn(4000, 1, generator=torch.Generator().manual_seed(1)))
    metric = SlicedW2(reference)
    gt = AdaptiveSampler(gaussian_field, 1e-7, 1e-7)(noise)
    kw = dict(metric=metric, dataset="gauss", teacher="analytic", ground_truth=gt)
    rows = [evaluate(ODESampler.uniform(gaussian_field, n, "euler"), noise, method="baseline", **kw) for n in (2, 8)]
    rows.append(data_row(metric, reference[:2000], dataset="gauss"))
    assert list(rows[0]) == COLUMNS and rows[0]["nfe"] == 2 and rows[1]["nfe"] == 8
    assert rows[1]["rmse_to_gt"] < rows[0]["rmse_to_gt"] and rows[1]["quality"] < rows[0]["quality"]
    assert rows[0]["ms_per_sample"] > 0 and rows[0]["quality_metric"] == "sliced-w2"
    assert math.isnan(rows[2]["rmse_to_gt"]) and rows[2]["method"] == "data"
    write_results(rows, tmp_path / "results" / "x.csv")
    write_results(rows[:1], tmp_path / "results" / "y.csv")
    df = merge_results(tmp_path / "results")
    assert len(df) == 4 and list(df.columns) == COLUMNS
    assert df.loc[0, "quality"] == pytest.approx(rows[0]["quality"], rel=1e-5)


def test_schema_errors(tmp_path, gaussian_field):
    row = data_row(SlicedW2(torch.randn(10, 1)), torch.randn(10, 1), dataset="g")
    with pytest.raises(ResultError, match="Unknown method 'magic'"):
        write_results([{**row, "method": "magic"}], tmp_path / "r.csv")
    with pytest.raises(ResultError, match="missing columns"):
        write_results([{"dataset": "g"}], tmp_path / "r.csv")
    with pytest.raises(ResultError, match="Baseline rows name a solver"):
        write_results([{**row, "method": "baseline", "solver": "dpm"}], tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv")
    with pytest.raises(ResultError, match="not a flowlib result table"):
        read_results(tmp_path / "other.csv")
    with pytest.raises(ResultError, match="No result tables"):
        merge_results(tmp_path / "empty")


def test_nan_samples_are_rejected():
    class Broken:
        name, nfe = "broken", 1

        def __call__(self, noise):
            return noise * float("nan")

    with pytest.raises(ResultError, match="NaN"):
        evaluate(Broken(), torch.randn(4, 1), metric=SlicedW2(torch.randn(4, 1)), dataset="g", teacher="t",
                 method="baseline", solver="euler")


class _Identity:
    """Features = the points themselves (a Fréchet distance between Gaussians in closed form)."""

    metric_name = "fid-identity"

    def __call__(self, x):
        return x.flatten(1).double().numpy()


def _reference(gaussian_field, n, dims=2):
    draw = lambda seed: torch.randn(n, dims, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    noise = draw(2)
    return TeacherReference(FID(_Identity(), gaussian_field.solution(draw(1)), name="fd-to-gt-identity"), noise,
                            gaussian_field.solution(noise))


def test_gt_distance_floor_resolves_what_the_data_metric_cannot(gaussian_field):
    """Two independent ground-truth draws land at the floor, below samplers that are known to be worse."""
    reference = _reference(gaussian_field, 4000)
    noise = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    kw = dict(metric=FID(_Identity(), gaussian_field.solution(torch.randn(300, 2))), dataset="gauss", teacher="analytic",
              method="baseline", reference=reference, bootstrap=8)
    floor = evaluate(AdaptiveSampler(gaussian_field), noise, reference_samples=reference.floor, **kw)
    rows = {n: evaluate(ODESampler.uniform(gaussian_field, n, "euler"), noise, **kw) for n in (4, 8, 32)}
    assert floor["gt_distance"] < 0.01 and floor["gt_distance_metric"] == "fd-to-gt-identity"
    assert floor["gt_distance"] < rows[32]["gt_distance"] < rows[8]["gt_distance"] < rows[4]["gt_distance"]
    for row in (floor, *rows.values()):
        assert row["gt_distance_std"] > 0 and row["quality_std"] > 0
    # at 300 samples the distance to the data cannot tell Euler@32 from the ground truth; the distance to the teacher can
    assert compare(rows[32]["quality"], floor["quality"], rows[32]["quality_std"], floor["quality_std"]) == "within noise"
    assert compare(floor["gt_distance"], rows[32]["gt_distance"], floor["gt_distance_std"],
                   rows[32]["gt_distance_std"]) == "better"


def test_gt_distance_is_deterministic(gaussian_field):
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    rows = []
    for _ in range(2):
        torch.randn(5)  # the global RNG state must not matter
        rows.append(evaluate(ODESampler.uniform(gaussian_field, 4, "euler"), noise, metric=SlicedW2(torch.ones(50, 2)),
                             dataset="g", teacher="t", method="baseline", reference=_reference(gaussian_field, 1000),
                             bootstrap=5))
    assert rows[0]["gt_distance"] == rows[1]["gt_distance"] and rows[0]["gt_distance_std"] == rows[1]["gt_distance_std"]
    assert rows[0]["quality_std"] == rows[1]["quality_std"]


def test_bootstrap_band_matches_redraws():
    """The bootstrap std of a Fréchet distance is close to its spread over real disjoint redraws."""
    metric = FID(_Identity(), torch.randn(20000, 2, generator=torch.Generator().manual_seed(1)))
    samples = torch.randn(16 * 400, 2, generator=torch.Generator().manual_seed(2))
    _, redraw, draws = redraw_std(metric, samples, 400)
    boot = bootstrap_std(metric, samples[:400], draws=50, seed=0)
    assert draws == 16 and 0.5 < boot / redraw < 2.0
    assert math.isnan(bootstrap_std(metric, samples, draws=1)) and math.isnan(redraw_std(metric, samples[:500], 400)[1])
