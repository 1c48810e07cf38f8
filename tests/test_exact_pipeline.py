"""The exact teacher through the pipeline's own steps (smoke sizes), and the explorer on its artefacts, headless."""
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
import torch
import yaml

from flowlib.config import parse_params
from flowlib.experiments.common import fit_teacher, load_context, load_teacher, solve_ground_truth, solve_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    params = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()), ROOT, smoke=True,
                          smoke_dir=tmp_path_factory.mktemp("ring"))
    info = fit_teacher(params, "ring", progress=False)
    solve_ground_truth(params, "ring")
    solve_reference(params, "ring", progress=False)
    return params, info


def test_the_exact_teacher_trains_nothing_and_is_exact(ring):
    params, info = ring
    assert info["params"] == 0 and info["train_seconds"] == 0.0 and info["history"] == []
    model = load_teacher(params, "ring")
    ctx = load_context(params, "ring")
    from flowlib.data import exact_mixture
    x, t = torch.randn(32, 2), torch.rand(32)
    assert torch.equal(model(x, t), exact_mixture("8gaussians")(x, t))
    assert ctx.train_seconds == 0.0


def test_weight_methods_skip_or_start_from_the_student(ring):
    from flowlib.claims import verdict
    from flowlib.experiments.boss import compute_grids, finetune_rows
    from flowlib.experiments.fgm import random_init_run, reflow_baseline, run_fgm

    params, _ = ring
    ctx = load_context(params, "ring")
    rows, curves = finetune_rows(params, ctx, compute_grids(params, ctx), progress=False)
    assert rows == [] and curves.empty
    run = run_fgm(params, ctx, 0.0, progress=False)
    assert run.init == "random" and sum(p.numel() for p in run.generator.parameters()) > 0
    assert run.curve[0][0] == 0 and run.steps <= params.fgm.train.steps and run.converged in (True, False)
    assert random_init_run(params, ctx, run) is run  # the exact teacher's runs already are the random arm
    student, seconds, result = reflow_baseline(params, ctx, run.steps, progress=False)
    assert student(torch.randn(4, 2), torch.rand(4)).shape == (4, 2) and seconds > 0 and result.steps <= run.steps
    assert verdict([]) == "not run"


def test_explorer_functions_run_headless(ring):
    from flowlib.explore import ExplorerError, Knobs, available, build_sampler, record_path, show

    matplotlib.use("Agg")
    params, _ = ring
    cached = available(params, "ring")
    assert cached["bellman"] and cached["boss"] == [] and cached["fgm"]  # grids and a generator from the test above
    sampler = build_sampler(params, "ring", "bellman", Knobs(k=cached["bellman"][0]))
    path = record_path(sampler, torch.randn(5, 2))
    assert path.shape == (cached["bellman"][0] + 1, 5, 2)
    with pytest.raises(ExplorerError, match=r"dvc repro boss@ring"):
        build_sampler(params, "ring", "boss", Knobs(k=cached["bellman"][0]))
    with pytest.raises(ExplorerError, match=r"run `dvc repro flowturbo@ring` first"):
        build_sampler(params, "ring", "flowturbo", Knobs(schedule="H1P2R2"))
    # H and P steps need the teacher alone: no refiner asked for (it used to ask for refiner.pt)
    assert cached["flowturbo"] == [s for s in params.flowturbo.schedules if "R" not in s] != []
    assert build_sampler(params, "ring", "flowturbo", Knobs(schedule="H1P2"))(torch.randn(4, 2)).shape == (4, 2)
    with pytest.raises(ExplorerError, match="Unknown method 'magic'"):
        build_sampler(params, "ring", "magic")
    fig = show(params, "ring", "teacher", Knobs(nfe=2, solver="midpoint"), n=64, n_paths=4)
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "midpoint (2 NFE)"
    saved = show(params, "ring", "fgm", n=64, n_paths=4, path=params.reports / "figures" / "explore.png")
    assert Path(saved).is_file()


def test_the_baselines_include_diffusers_schedulers_at_every_nfe(ring):
    from flowlib.experiments.common import baseline_rows
    from flowlib.leaderboard import versus_diffusers, versus_markdown

    params, _ = ring
    rows = pd.DataFrame(baseline_rows(params, load_context(params, "ring"), progress=False))
    ours = rows[rows["method"] == "diffusers"]
    assert params.eval.diffusers == ["dpmsolver++2m", "dpmsolver++3m", "unipc"]
    assert sorted(zip(ours["solver"], ours["nfe"])) == sorted((s, n) for s in params.eval.diffusers for n in params.eval.nfes)
    assert ours["gt_distance"].notna().all() and (ours["rmse_to_gt"] > 0).all()
    two = ours[ours["nfe"] == 4].set_index("solver")
    euler4 = rows[(rows["solver"] == "euler") & (rows["nfe"] == 4)].iloc[0]
    assert (two["rmse_to_gt"] < euler4["rmse_to_gt"]).all()  # second-order multistep beats Euler at equal NFE
    fake = pd.concat([rows, rows[rows["solver"] == "heun"].assign(method="bespoke", solver="bespoke-rk2")])
    table = versus_diffusers(fake, budgets=(2, 4))
    assert set(table["paper"]) == {"bespoke"} and set(table["outcome"]) <= {"beats", "within noise", "loses"}
    assert "**bespoke** beats diffusers' best" in versus_markdown(table)
