"""flowlib <-> diffusers: schedulers as samplers on the exact ring teacher, grids exported as sigmas, and a tiny random
SD3 transformer (built from a config here: no download) as a flowlib velocity field."""
import math

import numpy as np
import pytest
import torch

from flowlib import AdaptiveSampler, ODESampler, ring_mixture, solve_adaptive, uniform_grid
from flowlib.diffusers_bridge import (
    SCHEDULERS,
    DiffusersBridgeError,
    DiffusersSampler,
    DiffusersVelocity,
    diffusers_loop,
    export_grid,
    grid_to_sigmas,
    make_scheduler,
    set_sigmas,
)
from flowlib.solvers.bellman import bellman_grid, euler_cost_matrix, euler_rollout


@pytest.fixture(scope="module")
def ring():
    field = ring_mixture()
    noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return field, noise, AdaptiveSampler(field, rtol=1e-9, atol=1e-9)(noise)


def _rmse(a, b):
    return float((a - b).pow(2).sum(1).mean().sqrt())


class CallCounter:
    def __init__(self, field):
        self.field, self.calls = field, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.field(x, t)


@pytest.mark.parametrize("name, order", [("flowmatch-euler", 1), ("dpmsolver++2m", 2), ("dpmsolver++3m", 3), ("unipc", 2)])
def test_each_scheduler_converges_to_the_exact_samples_at_about_its_order(ring, name, order):
    """RMSE to the exact ring teacher's ODE solution from the scheduler's own starting time (the multistep schedulers'
    flow sigmas start at σ = 1 − 1/1000, where they take the noise), over 8 -> 64 steps."""
    field, noise, _ = ring
    noise = noise[:256]
    errors, truths = {}, {}
    for steps in (8, 16, 32, 64):
        scheduler = make_scheduler(name)
        scheduler.set_timesteps(num_inference_steps=steps)
        t0 = 1.0 - float(scheduler.sigmas[0])
        if t0 not in truths:
            truths[t0] = solve_adaptive(lambda x, s, a=t0: (1 - a) * field(x, a + (1 - a) * s), noise, rtol=1e-9, atol=1e-9)
        truth = truths[t0]
        counter = CallCounter(field)
        sampler = DiffusersSampler(counter, scheduler, steps=steps)
        errors[steps] = _rmse(sampler(noise), truth)
        assert sampler.nfe == counter.calls == steps  # counted at the call, one network call per step
    assert errors[8] > errors[16] > errors[32] > errors[64], errors
    slope = math.log2(errors[8] / errors[64]) / 3  # mean observed order
    if order == 1:
        assert 0.9 < slope < 1.25, errors
    else:  # the ring's narrow modes near t = 1 keep the multistep methods below their order at these steps
        assert slope > 1.5, errors
    assert errors[64] < 2e-3 * (50 if order == 1 else 1)


def test_diffusers_euler_on_a_flowlib_grid_equals_flowlib_euler(ring):
    field, noise, _ = ring
    for grid in (uniform_grid(6), torch.tensor([0.0, 0.1, 0.35, 0.5, 0.8, 0.95, 1.0], dtype=torch.float64)):
        ours = ODESampler(field, grid, "euler")(noise)
        theirs = DiffusersSampler(field, "flowmatch-euler", grid=grid)(noise)
        assert (ours - theirs).abs().max() < 1e-6  # diffusers keeps sigmas in float32


def _bellman(field, noise, n_fine, k):
    """BOSS's Bellman grid: K of the N uniform Euler steps' times, chosen by dynamic programming."""
    rollout = euler_rollout(field, noise, n_fine)
    return rollout.times[bellman_grid(euler_cost_matrix(rollout), k)]


def _bespoke_times(field, noise):
    """The time grid t_0..t_N of a (briefly) trained RK1 Bespoke solver: its steps without the learned scale."""
    from flowlib import fit_bespoke

    solver = fit_bespoke(field, noise[:64], nfe=5, base="rk1", iterations=10, progress=False).ema_model
    with torch.no_grad():
        return solver.values().t.double()


def test_an_exported_grid_reaches_the_scheduler_exactly():
    field = ring_mixture()
    noise = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    grids = {"uniform": uniform_grid(8),
             "bellman": _bellman(field, noise, 100, 6),
             "uneven": torch.tensor([0.0, 0.03, 0.2, 0.61, 0.9, 1.0], dtype=torch.float64),
             "bespoke": _bespoke_times(field, noise)}
    for name, grid in grids.items():
        scheduler = export_grid(grid)
        sigmas = np.float32(1.0 - grid.numpy())
        assert torch.equal(scheduler.sigmas, torch.from_numpy(sigmas)), name  # σ_i = 1 − t_i, terminal 0
        assert torch.equal(scheduler.timesteps, torch.from_numpy(sigmas[:-1]) * 1000), name
    assert grid_to_sigmas([0.0, 0.5, 1.0]) == [1.0, 0.5]


def test_a_scheduler_that_would_reshift_the_sigmas_is_refused():
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    with pytest.raises(DiffusersBridgeError, match=r"shift=3.0.*shift=1.0"):
        set_sigmas(FlowMatchEulerDiscreteScheduler(shift=3.0), [1.0, 0.5])        # SD3's default shift
    with pytest.raises(DiffusersBridgeError, match="use_dynamic_shifting"):
        set_sigmas(FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), [1.0, 0.5])  # Flux's
    with pytest.raises(DiffusersBridgeError, match="takes no explicit sigmas"):
        set_sigmas(DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True), [1.0, 0.5])
    with pytest.raises(DiffusersBridgeError, match=r"UniPCMultistepScheduler changed the given sigmas: asked \[1.0, 0.5, 0.0\]"):
        set_sigmas(make_scheduler("unipc"), [1.0, 0.5])  # it moves σ = 1 to 1 − 1e-6: refused, not passed on silently
    with pytest.raises(DiffusersBridgeError, match="not in flow-matching form .*prediction_type='epsilon'"):
        DiffusersSampler(ring_mixture(), DPMSolverMultistepScheduler(), steps=4)  # an epsilon model's scheduler
    with pytest.raises(DiffusersBridgeError, match="Unknown scheduler 'ddim'"):
        make_scheduler("ddim")
    with pytest.raises(Exception, match="exactly one of steps= .* or grid="):
        DiffusersSampler(ring_mixture(), "unipc")
    assert set(SCHEDULERS) == {"flowmatch-euler", "dpmsolver++2m", "dpmsolver++3m", "unipc"}


@pytest.fixture(scope="module")
def tiny_sd3():
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2,
                                  attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                  caption_projection_dim=16, pooled_projection_dim=12, pos_embed_max_size=8).eval()
    cond = {"encoder_hidden_states": torch.randn(1, 5, 16), "pooled_projections": torch.randn(1, 12)}
    return model, cond


def test_flowlib_euler_on_an_exported_boss_grid_with_sd3_equals_a_plain_diffusers_loop(tiny_sd3):
    model, cond = tiny_sd3
    field = DiffusersVelocity(model, **cond)
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    grid = _bellman(field, noise, 20, 4)  # BOSS's Bellman grid of the transformer itself
    with torch.no_grad():
        ours = ODESampler(field, grid, "euler")(noise)
        theirs = diffusers_loop(model, export_grid(grid), noise, **cond)  # a plain loop over the exported sigmas
    assert (ours - theirs).abs().max() < 1e-5
    with pytest.raises(Exception, match="conditioning 'pooled_projections' has batch 2"):
        DiffusersVelocity(model, pooled_projections=torch.randn(2, 12))(noise, torch.zeros(3))


def test_every_flowlib_method_runs_on_a_wrapped_sd3_transformer(tiny_sd3):
    """Bespoke training, FlowTurbo's pseudo corrector and refiner, and FGM's generator (from the transformer's own
    weights) on the tiny transformer: a few steps each, every NFE counted at the call."""
    import copy

    from flowlib import (
        BespokeSampler,
        FlowTurboSampler,
        GeneratorSampler,
        OneStepGenerator,
        TrainConfig,
        TrainData,
        VelocityRefiner,
        fit_bespoke,
        train_fgm,
        train_refiner,
    )

    model, cond = tiny_sd3
    field = DiffusersVelocity(model, **cond).requires_grad_(False)
    shape = (4, 8, 8)
    noise = torch.randn(8, *shape, generator=torch.Generator().manual_seed(3))
    quick = TrainConfig(steps=2, warmup=0, log_every=1, ckpt_every=2)
    bespoke = fit_bespoke(field, noise, nfe=4, grid=11, iterations=2, val_every=1, progress=False).ema_model
    refiner = train_refiner(field, VelocityRefiner(shape, {"arch": "mlp", "hidden": 16, "depth": 2}),
                            TrainData(lambda n, g: torch.randn(n, *shape, generator=g), 4), quick, delta_max=0.15,
                            progress=False).ema_model
    generator = OneStepGenerator(copy.deepcopy(field).requires_grad_(True), 0.0)
    generator = train_fgm(field, generator, TrainData(shape, 2), quick, progress=False).ema_model
    for sampler, nfe in ((BespokeSampler(field, bespoke), 4), (FlowTurboSampler(field, "H1P1R1", refiner), 3),
                         (GeneratorSampler(generator), 1)):
        out = sampler(noise[:2])
        assert out.shape == (2, *shape) and torch.isfinite(out).all() and sampler.nfe == nfe, sampler.name
