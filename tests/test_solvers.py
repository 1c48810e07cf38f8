import math

import pytest
import torch

from flowlib.solvers import (
    METHODS,
    AdaptiveSampler,
    CountingVelocity,
    GridError,
    ODESampler,
    Sampler,
    solve,
    solve_adaptive,
    uniform_grid,
)


def riccati_field(x, t):
    """dx/dt = -x^2, x(0) = 1: x(t) = 1 / (1 + t), a nonlinear ODE with a known solution."""
    return -(x**2)


def endpoint_error(method: str, steps: int) -> float:
    x0 = torch.ones(4, 1, dtype=torch.float64)
    x1 = solve(riccati_field, x0, uniform_grid(steps), method)
    return (x1 - 0.5).abs().max().item()


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_convergence_order(method, order):
    steps = [8, 16, 32, 64]
    errs = [endpoint_error(method, n) for n in steps]
    slope = -torch.tensor(errs).log().diff().div(torch.tensor(steps, dtype=torch.float64).log().diff()).mean().item()
    assert abs(slope - order) < 0.2, f"{method}: measured order {slope:.3f}, expected {order}"


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
def test_order_on_gaussian_flow(gaussian_field, method, order):
    x0 = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = gaussian_field.solution(x0)
    errs = [(solve(gaussian_field, x0, uniform_grid(n), method) - exact).abs().max().item() for n in (32, 64)]
    assert abs(math.log2(errs[0] / errs[1]) - order) < 0.2


def test_trajectory_output(gaussian_field):
    x0 = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = torch.tensor([0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0], dtype=torch.float64)
    traj = solve(gaussian_field, x0, grid, "rk4", return_trajectory=True)
    assert traj.shape == (7, 5, 2)
    assert torch.equal(traj[0], x0)
    assert torch.allclose(traj[-1], solve(gaussian_field, x0, grid, "rk4"))
    assert torch.allclose(traj[4], gaussian_field.solution(x0, 0.5), atol=1e-4)


@pytest.mark.parametrize("method,stages", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_nfe_counted_by_wrapper(gaussian_field, method, stages):
    counter = CountingVelocity(gaussian_field)
    solve(counter, torch.zeros(3, 2), uniform_grid(5), method)
    assert counter.nfe == 5 * stages
    sampler = ODESampler.uniform(gaussian_field, 4 * stages, method)
    assert sampler.nfe == 4 * stages
    sampler(torch.zeros(3, 2))
    assert sampler.nfe == 4 * stages and isinstance(sampler, Sampler) and sampler.name == method


def test_non_uniform_grid_matches_piecewise_solve(gaussian_field):
    x0 = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grid = torch.tensor([0.0, 0.05, 0.3, 0.9, 1.0], dtype=torch.float64)
    whole = solve(gaussian_field, x0, grid, "heun")
    mid = solve(gaussian_field, x0, grid[:3], "heun")
    assert torch.allclose(whole, solve(gaussian_field, mid, grid[2:], "heun"))


def test_adaptive_matches_closed_form(gaussian_field):
    x0 = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = solve_adaptive(gaussian_field, x0, rtol=1e-8, atol=1e-8)
    assert (out - gaussian_field.solution(x0)).abs().max() < 1e-6
    mids = solve_adaptive(gaussian_field, x0, rtol=1e-8, atol=1e-8, times=[0.0, 0.25, 1.0])
    assert mids.shape == (3, 32, 2)
    assert (mids[1] - gaussian_field.solution(x0, 0.25)).abs().max() < 1e-6
    sampler = AdaptiveSampler(gaussian_field, 1e-6, 1e-6)
    sampler(x0.float())
    assert sampler.nfe > 10 and sampler.nfe % 6 == 2  # dopri5: 6 new evaluations per step (FSAL) + 2 at start


@pytest.mark.parametrize("grid,match", [
    ([0.0, 0.5, 0.5, 1.0], "strictly increasing"),
    ([1.0, 0.0], "strictly increasing"),
    ([[0.0, 1.0]], "1-D"),
    ([0.0], "at least 2"),
    ([0.0, float("nan"), 1.0], "NaN"),
    ([-0.5, 1.0], r"\[0, 1\]"),
])
def test_bad_grids(gaussian_field, grid, match):
    with pytest.raises(GridError, match=match):
        solve(gaussian_field, torch.zeros(2, 2), torch.tensor(grid), "euler")


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_bad_step_counts(steps):
    with pytest.raises(GridError, match="positive integer"):
        uniform_grid(steps)


def test_unknown_method_and_bad_nfe(gaussian_field):
    with pytest.raises(ValueError, match="Unknown solver method 'rk45'.*euler"):
        solve(gaussian_field, torch.zeros(2, 2), uniform_grid(2), "rk45")
    with pytest.raises(ValueError, match="multiple of 4"):
        ODESampler.uniform(gaussian_field, 6, "rk4")
    assert set(METHODS) == {"euler", "midpoint", "heun", "rk4"}
