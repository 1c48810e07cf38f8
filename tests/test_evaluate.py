import math

import pandas as pd
import pytest
import torch

from flowlib.evaluate import COLUMNS, ResultError, data_row, evaluate, merge_results, read_results, write_results
from flowlib.metrics import SlicedW2
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
