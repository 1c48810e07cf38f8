"""Bespoke solvers: the scale-time family, its constraints, its order, the parallel RMSE bound and training."""
from __future__ import annotations

import math

import pytest
import torch

from flowlib.artifacts import CheckpointError, save_checkpoint
from flowlib.distill.bespoke import (
    DenseTrajectories,
    bespoke_config,
    bespoke_loss,
    dense_ground_truth,
    load_bespoke,
    local_errors,
    save_bespoke,
    train_bespoke,
    validation_rmse,
)
from flowlib.flow import TrainData
from flowlib.models import MLPVelocity
from flowlib.solvers import ODESampler, solve
from flowlib.solvers.bespoke import BespokeSampler, BespokeSolver, cosine_transform, piecewise_linear_transform
from flowlib.solvers.grids import uniform_grid
from flowlib.solvers.nfe import NonFiniteError


def random_net(dim: int = 3) -> MLPVelocity:
    torch.manual_seed(1)
    return MLPVelocity((dim,), hidden=32, depth=2).eval().requires_grad_(False)


def smooth_transform(alpha: float, beta: float, gamma: float):
    """A smooth admissible map: t = r + α r (1 − r), s = exp(β r + γ r (1 − r)) (|α| < 1 keeps ṫ > 0)."""
    def transform(r):
        t = r + alpha * r * (1 - r)
        e = beta * r + gamma * r * (1 - r)
        s = torch.exp(e)
        return t, s, 1 + alpha * (1 - 2 * r), s * (beta + gamma * (1 - 2 * r))
    return transform


def endpoint_error(field, solver: BespokeSolver, x0) -> float:
    return (solver.solve(field, x0) - field.solution(x0)).abs().max().item()


@pytest.mark.parametrize("base,method", [("rk1", "euler"), ("rk2", "midpoint")])
def test_identity_is_the_base_solver(base, method):
    net, x0 = random_net(), torch.randn(64, 3)
    for n in (1, 3, 7):
        ours = BespokeSampler(net, BespokeSolver(base, n))(x0)
        ref = solve(net, x0, uniform_grid(n), method)
        assert (ours - ref).abs().max().item() < 1e-6
        assert BespokeSampler(net, BespokeSolver(base, n)).nfe == n * (1 if base == "rk1" else 2)


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_parameter_counts(n):
    assert BespokeSolver("rk1", n).num_parameters() == 4 * n - 1
    assert BespokeSolver("rk2", n).num_parameters() == 8 * n - 1
    assert BespokeSolver("rk2", 10).num_parameters() == 79  # the paper's "about 80 for 20 NFE"


def test_any_raw_parameters_are_admissible():
    gen = torch.Generator().manual_seed(3)
    for base in ("rk1", "rk2"):
        solver = BespokeSolver(base, 6)
        with torch.no_grad():
            for p in solver.parameters():
                p.copy_(8 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        v = solver.values()
        assert v.t[0] == 0 and v.t[-1] == 1 and (v.t.diff() > 0).all()
        assert (v.t_dot > 0).all() and (v.s > 0).all() and v.s[0] == 1
        assert len(v.t) == solver.points + 1 and len(v.t_dot) == solver.points


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Unknown Bespoke base"):
        BespokeSolver("rk3", 4)
    for n in (0, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            BespokeSolver("rk1", n)


@pytest.mark.parametrize("base", ["rk1", "rk2"])
def test_cosine_scheduler_solver_converges_to_the_exact_solution(gaussian_field, base):
    x0 = torch.randn(256, 2, dtype=torch.float64)
    errors = [endpoint_error(gaussian_field, BespokeSolver.from_transform(base, n, cosine_transform), x0)
              for n in (4, 16, 64, 256)]
    order = 1 if base == "rk1" else 2
    assert all(a > 0.8 * 4**order * b for a, b in zip(errors, errors[1:]))  # 4x the steps: 4^order less error
    assert errors[-1] < (1e-2 if base == "rk1" else 2e-5)


def test_cosine_transform_matches_the_cosine_path_velocity(gaussian_field):
    """ū_r(x̄) of the linear→cosine map equals the cosine path's own marginal velocity for the same Gaussian data."""
    r = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    t, s, t_dot, s_dot = cosine_transform(r)
    xbar = torch.randn(7, 1, dtype=torch.float64)
    u_bar = (s_dot / s)[:, None] * xbar + (t_dot * s)[:, None] * gaussian_field(xbar / s[:, None], t)
    theta = 0.5 * math.pi * r[:, None]
    mu, sd = gaussian_field.mu, gaussian_field.sd
    a, sig, da, dsig = torch.sin(theta), torch.cos(theta), 0.5 * math.pi * torch.cos(theta), -0.5 * math.pi * torch.sin(theta)
    var = a**2 * sd**2 + sig**2
    exact = da * mu + (a * da * sd**2 + sig * dsig) / var * (xbar - a * mu)
    assert torch.allclose(u_bar, exact, atol=1e-12)


@pytest.mark.parametrize("base,order", [("rk1", 1), ("rk2", 2)])
def test_smooth_scale_time_keeps_the_base_order(gaussian_field, base, order):
    x0 = torch.randn(128, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        alpha, beta, gamma = (torch.rand(3, generator=gen, dtype=torch.float64) * torch.tensor([1.6, 1.0, 1.0]) -
                              torch.tensor([0.8, 0.5, 0.5])).tolist()
        steps = [8, 16, 32, 64]
        errs = [endpoint_error(gaussian_field, BespokeSolver.from_transform(base, n, smooth_transform(alpha, beta, gamma)), x0)
                for n in steps]
        slope = -torch.tensor(errs).log().diff().div(torch.tensor(steps, dtype=torch.float64).log().diff()).mean().item()
        assert order - 0.2 < slope < order + 0.5, f"{base}: order {slope:.2f} at α={alpha:.2f} β={beta:.2f} γ={gamma:.2f}"


@pytest.mark.parametrize("base,order", [("rk1", 1), ("rk2", 2)])
def test_map_through_a_learned_solver_refines_at_the_base_order(gaussian_field, base, order):
    """The order check of the experiment: the piecewise-linear map through any admissible solver, refined."""
    x0 = torch.randn(128, 2, dtype=torch.float64)
    solver = BespokeSolver(base, 4)
    with torch.no_grad():
        for p in solver.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=p.dtype))
    transform = piecewise_linear_transform(solver)
    exact = gaussian_field.solution(x0)
    with torch.no_grad():
        fine = [BespokeSolver.from_transform(base, 4 * m, transform) for m in (2, 4, 8, 16)]
        errs = [(s.solve(gaussian_field, x0) - exact).pow(2).mean(1).sqrt().mean() for s in fine]
    slopes = [math.log2(float(a / b)) for a, b in zip(errs, errs[1:])]
    assert all(abs(s - order) < 0.2 for s in slopes), slopes
    coarse = BespokeSolver.from_transform(base, 4, transform).values()
    assert torch.allclose(coarse.t, solver.values().t.detach()) and torch.allclose(coarse.s, solver.values().s.detach())


def test_error_weights_run_backwards():
    solver = BespokeSolver("rk1", 3)
    with torch.no_grad():
        solver.s_dot.copy_(torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
    lips = solver.lipschitz()
    assert torch.allclose(solver.error_weights(), torch.stack([lips[1] * lips[2], lips[2], torch.ones((), dtype=lips.dtype)]))


def exact_trajectories(field, x0, grid: int = 401) -> DenseTrajectories:
    times = torch.linspace(0, 1, grid, dtype=torch.float64)
    states = torch.stack([field.solution(x0, float(t)) for t in times])
    return DenseTrajectories(times, states, torch.stack([field(x, t.expand(len(x))) for x, t in zip(states, times)]))


def test_hermite_ground_truth_and_x_aux_gradient(gaussian_field):
    x0 = torch.randn(32, 2, dtype=torch.float64)
    gt = exact_trajectories(gaussian_field, x0, grid=41)
    t = torch.tensor([0.0, 0.1234, 0.77, 1.0], dtype=torch.float64)
    exact = torch.stack([gaussian_field.solution(x0, float(s)) for s in t])
    assert (gt.at(t) - exact).abs().max() < 1e-6
    dense = dense_ground_truth(gaussian_field, x0, grid=11)
    assert (dense.endpoints - gaussian_field.solution(x0)).abs().max() < 1e-4
    # x_aux: the local error's gradient in t_i is carried by u_{t_i}(x(t_i)); on the exact field at the identity all d_i = 0
    solver = BespokeSolver("rk2", 4)
    d = local_errors(solver, gaussian_field, gt, torch.arange(8))
    assert d.shape == (4, 8) and d.max() < 0.05
    loss = bespoke_loss(solver, gaussian_field, gt, torch.arange(8))
    loss.backward()
    assert solver.t_raw.grad is not None and solver.t_raw.grad.abs().sum() > 0


def test_constant_field_has_zero_local_error():
    field = lambda x, t: torch.ones_like(x) * 0.7  # noqa: E731  straight paths
    x0 = torch.randn(16, 3, dtype=torch.float64)
    times = torch.linspace(0, 1, 5, dtype=torch.float64)
    states = torch.stack([x0 + 0.7 * t for t in times])
    gt = DenseTrajectories(times, states, torch.full_like(states, 0.7))
    for base in ("rk1", "rk2"):
        assert local_errors(BespokeSolver(base, 3), field, gt, torch.arange(16)).max() < 1e-9


@pytest.mark.parametrize("base", ["rk1", "rk2"])
def test_bound_is_above_the_true_rmse(gaussian_field, base):
    """With L_τ ≥ the field's Lipschitz constant (1 for this field), Σ M d_i bounds each sample's final RMSE."""
    x0 = torch.randn(64, 2, dtype=torch.float64)
    gt = exact_trajectories(gaussian_field, x0)
    gen = torch.Generator().manual_seed(11)
    for _ in range(4):
        solver = BespokeSolver(base, 4)
        with torch.no_grad():
            for p in solver.parameters():
                p.add_(0.4 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            d = local_errors(solver, gaussian_field, gt, torch.arange(64))
            bound = (solver.error_weights(1.0)[:, None] * d).sum(0)
            true = (solver.solve(gaussian_field, x0) - gaussian_field.solution(x0)).pow(2).mean(1).sqrt()
        assert (bound >= true - 1e-9).all()


def test_training_beats_the_base_solver_and_leaves_the_net_alone():
    torch.manual_seed(0)
    net = MLPVelocity((2,), hidden=32, depth=2).eval()
    with torch.no_grad():  # a curved field: random net plus a rotation
        for p in net.parameters():
            p.mul_(3.0)
    pool_noise, val_noise = torch.randn(256, 2), torch.randn(128, 2)
    gt = dense_ground_truth(net, pool_noise, grid=41, rtol=1e-6, atol=1e-6)
    val = dense_ground_truth(net, val_noise, grid=2, rtol=1e-6, atol=1e-6).endpoints
    for base in ("rk1", "rk2"):
        solver = BespokeSolver(base, 2)
        before = validation_rmse(solver, net, val_noise, val)
        result = train_bespoke(net, solver, TrainData(gt, 64, heldout=(val_noise, val)), bespoke_config(60, 2e-2, val_every=10),
                               progress=False)
        assert result.best_value < 0.8 * before, (base, before, result.best_value)
        assert validation_rmse(result.ema_model, net, val_noise, val) == pytest.approx(result.best_value)
        losses = [h[1] for h in result.history[1:]]
        assert sum(losses[-10:]) < sum(losses[:10])
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())  # flags restored


def test_training_is_deterministic(gaussian_field):
    x0 = torch.randn(64, 2, dtype=torch.float64)
    gt = exact_trajectories(gaussian_field, x0, grid=41)
    data = TrainData(gt, 8, heldout=(x0[:16], gt.endpoints[:16]))
    runs = [train_bespoke(random_net(2).double(), BespokeSolver("rk1", 2), data, bespoke_config(5, 1e-2),
                          progress=False).ema_model.values().t for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_nan_loss_is_a_clear_error(gaussian_field):
    x0 = torch.randn(8, 2, dtype=torch.float64)
    gt = exact_trajectories(gaussian_field, x0, grid=11)
    gt.states[5] = float("nan")  # the grid time of t_1 = 0.5: the field is fine, its input from the pool is not
    with pytest.raises(NonFiniteError, match="input already held NaN or inf"):
        data = TrainData(gt, 8, heldout=(x0, gaussian_field.solution(x0)))
        train_bespoke(random_net(2).double(), BespokeSolver("rk1", 2), data, bespoke_config(3, 1e-2), progress=False)


def test_saved_solver_round_trips_and_corrupt_files_are_rejected(tmp_path):
    solver = BespokeSolver.from_transform("rk2", 3, cosine_transform)
    save_bespoke(tmp_path / "s.pt", solver, teacher="x")
    loaded = load_bespoke(tmp_path / "s.pt")
    assert torch.equal(loaded.values().t, solver.values().t) and loaded.base == "rk2"
    save_checkpoint({"base": "rk2", "n": 3, "state_dict": {"t_raw": torch.zeros(2)}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="(?s)not a saved Bespoke solver.*dvc repro bespoke"):
        load_bespoke(tmp_path / "bad.pt", "dvc repro bespoke@digits")
    state = solver.state_dict()
    state["s_raw"][0] = float("nan")
    save_checkpoint({"base": "rk2", "n": 3, "state_dict": state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="non-finite"):
        load_bespoke(tmp_path / "nan.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "s.pt").read_bytes()[:50])
    with pytest.raises(CheckpointError):
        load_bespoke(tmp_path / "trunc.pt")


def test_sampler_on_a_teacher_grid_matches_ode_sampler_names():
    net = random_net()
    sampler = BespokeSampler(net, BespokeSolver("rk2", 5))
    out = sampler(torch.randn(4, 3))
    assert sampler.name == "bespoke-rk2" and sampler.nfe == 10 and out.shape == (4, 3)
    assert ODESampler.uniform(net, 10, "midpoint").nfe == sampler.nfe
