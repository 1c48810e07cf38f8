"""The public API on any velocity field: its checks (shape, dtype, NaN), time-grid inputs, and the README example."""
import re
from pathlib import Path

import pytest
import torch

import flowlib
from flowlib import TrainData
from flowlib.solvers import GridError, as_time_grid
from flowlib.solvers.compiled import CallTally
from flowlib.solvers.flowturbo import CompiledSteps

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_exist():
    missing = [name for name in flowlib.__all__ if not hasattr(flowlib, name)]
    assert not missing


@pytest.mark.parametrize("make", [
    lambda v: flowlib.ODESampler(v, 4, "euler"),
    lambda v: flowlib.AdaptiveSampler(v),
    lambda v: flowlib.FlowTurboSampler(v, "H1P2"),
    lambda v: flowlib.BespokeSampler(v, flowlib.BespokeSolver("rk2", 2)),
])
def test_a_wrong_shape_is_an_error_not_a_broadcast(make):
    with pytest.raises(flowlib.VelocityShapeError, match=r"returned shape \(8, 1\) for x of shape \(8, 2\)"):
        make(lambda x, t: x[:, :1])(torch.randn(8, 2))


def test_an_integer_velocity_is_refused():
    with pytest.raises(flowlib.VelocityShapeError, match="dtype torch.int64"):
        flowlib.ODESampler(lambda x, t: torch.ones_like(x, dtype=torch.long), 2)(torch.randn(4, 2))


def test_nan_names_the_evaluation_and_time():
    field = lambda x, t: x / (0.5 - t[:, None])  # noqa: E731 - inf at t = 0.5, the 3rd of 4 Euler evaluations
    with pytest.raises(flowlib.NonFiniteError, match=r"evaluation 3 \(t = 0.5\)"):
        flowlib.ODESampler(field, 4)(torch.randn(4, 2))
    out = flowlib.ODESampler(field, 4, check_finite=False)(torch.randn(4, 2))  # the documented opt-out
    assert not torch.isfinite(out).all()
    with pytest.raises(flowlib.NonFiniteError, match="evaluation 3"):
        flowlib.FlowTurboSampler(field, "H1P3")(torch.randn(4, 2))  # calls at t = 0, 0.25 (H), then 0.5 (the 1st P)


def test_compiled_flowturbo_locates_the_first_bad_call():
    """Compiled steps skip the per-call wrapper: the sampler checks its samples, and on NaN re-runs the noise eagerly
    to name the first bad evaluation (stand-in steps here: the field turns NaN after t = 0.4, the Heun step's second
    call is at t = 1/3, the first P call at 2/3)."""
    field = lambda x, t: torch.where(t[:, None] > 0.4, x * float("nan"), -x)  # noqa: E731

    def euler(x, t0, t1, t):
        return (x + (t1 - t0) * field(x, t.expand(len(x))),) * 2

    steps = CompiledSteps({"H": lambda x, t0, t1: euler(x, t0, t1, t0), "P": lambda x, c, t0, t1: euler(x, t0, t1, t1)},
                          CallTally(field), None)
    sampler = flowlib.FlowTurboSampler(field, "H1P2", steps=steps, compiled=True)
    with pytest.raises(flowlib.NonFiniteError, match=r"evaluation 3 \(t = 0.6667\)"):
        sampler(torch.randn(4, 2))


@pytest.mark.parametrize("grid, expected", [
    ([0, 0.5, 1], [0.0, 0.5, 1.0]),
    ((0.0, 1.0), [0.0, 1.0]),
    (2, [0.0, 0.5, 1.0]),
    (torch.tensor([0.0, 0.25, 1.0], dtype=torch.float32), [0.0, 0.25, 1.0]),
    (torch.tensor([0, 1]), [0.0, 1.0]),
])
def test_time_grids_accept_lists_ints_and_float32(grid, expected):
    out = as_time_grid(grid)
    assert out.dtype == torch.float64 and out.tolist() == expected


@pytest.mark.parametrize("grid, match", [(0, "positive integer"), (True, "bool"), ("abc", "sequence of numbers"),
                                         ([0.5, 0.2], "strictly increasing"), ([0.0, 1.5], r"lie in \[0, 1\]")])
def test_bad_time_grids_are_refused(grid, match):
    with pytest.raises(GridError, match=match):
        as_time_grid(grid)


def test_float32_grid_gives_float32_samples():
    x = torch.randn(3, 2)
    out = flowlib.ODESampler(lambda x, t: -x, torch.linspace(0, 1, 5, dtype=torch.float32))(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, x * 0.75**4)


def test_finetuning_a_field_without_weights_says_how_to_fix_it():
    from flowlib.distill import reflow

    z = torch.randn(16, 2)
    with pytest.raises(flowlib.NoWeightsError, match="no parameters to finetune.*build_model"):
        reflow(flowlib.ring_mixture(), None, TrainData((z, z), 4), flowlib.TrainConfig(steps=1), progress=False)
    start = flowlib.build_model((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    student = reflow(flowlib.ring_mixture(), start, TrainData((z, z), 4), flowlib.TrainConfig(steps=2, warmup=0),
                     progress=False).ema_model
    assert student(z, torch.rand(16)).shape == (16, 2)


def run_readme_block(marker: str) -> dict:
    """Extract the README's python block between `<!-- {marker}:start/end -->` and run it; returns its variables."""
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {marker}:start -->\s*```python\n(.*?)```\s*<!-- {marker}:end -->", text, re.S)
    assert block, f"README lacks the {marker} markers"
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # noqa: S102 - our own README
    return scope


def test_readme_example_runs_as_written(capsys):
    """The README's "Use flowlib on your own model" block, extracted and run; its table shows every method's row."""
    table = run_readme_block("example")["table"]
    assert table["sampler"].tolist() == ["euler", "bellman-euler-k4", "bespoke-rk2", "H1P2"]
    assert (table["nfe"] == 4).all()
    euler = table.set_index("sampler")["rmse_to_gt"]
    assert euler["bespoke-rk2"] < euler["euler"] and euler["bellman-euler-k4"] < euler["euler"]
    assert "bespoke-rk2" in capsys.readouterr().out


@pytest.mark.parametrize("name", flowlib.__all__)
def test_every_public_name_is_documented_with_a_runnable_example(name):
    """Every name in flowlib.__all__: a docstring with an example (run by the doctests of `make test`), and for
    functions and constructors their Args (and a function's Returns)."""
    import inspect

    obj = getattr(flowlib, name)
    doc = inspect.getdoc(obj) or ""
    assert ">>>" in doc, f"flowlib.{name} has no runnable example"
    if inspect.isfunction(obj):
        assert "Args:" in doc and "Returns:" in doc, f"flowlib.{name} does not document its Args and Returns"
    elif inspect.isclass(obj) and not issubclass(obj, Exception) and name != "Sampler":
        assert "Args:" in doc, f"flowlib.{name} does not document its constructor's Args"


def test_readme_diffusers_example_runs_as_written(capsys):
    """The README's "with diffusers" block, extracted and run: both directions on a tiny random SD3 transformer."""
    scope = run_readme_block("example-diffusers")
    table = scope["table"]
    assert table["sampler"].tolist() == ["bellman-euler-k4", "dpmsolver++2m", "unipc"] and (table["nfe"] == 4).all()
    grid = scope["boss"].time_grid
    assert torch.equal(scope["scheduler"].sigmas, (1 - grid).float())
    assert "dpmsolver++2m" in capsys.readouterr().out
