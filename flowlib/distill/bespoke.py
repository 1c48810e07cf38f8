"""Training Bespoke solvers on the teacher's own paths (notebook 03_bespoke, Method).

The target is the final RMSE to the ground truth, E ‖x(1) − x_n^θ‖ with the RMSE norm ‖v‖ = sqrt(mean_k v_k²). Its
parallel upper bound (the paper's loss) needs no backpropagation through the sampling chain:

    L(θ) = E Σ_i M_{i+1} ‖x^aux(t_{i+1}) − step_i^θ(x^aux(t_i))‖,   M_{i+1} = Π_{j>i} L_j,

with the local errors taken on ground-truth states at the *current* learned times, re-attached to first order
(x^aux(t) = x(t) + u_t(x(t)) (t − sg(t))) so that the times get gradients from the ground-truth side too.

Ground truth: `dense_ground_truth` solves a pool of noises once with dopri5 onto a fine time grid and stores the
states and the teacher's velocity there; `DenseTrajectories.at` reads any time by cubic Hermite interpolation
(fourth-order accurate, so the learned times can move freely without re-solving).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..artifacts import CheckpointError, load_checkpoint, save_checkpoint
from ..device import shard
from ..errors import (
    ArgumentError,
    FlowlibError,
    Fraction,
    checked_args,
    describe,
    require_int,
    require_number,
    require_velocity,
)
from ..flow import TrainConfig, TrainData, TrainingDivergedError, TrainResult, check_samples, require_data, train
from ..metrics import rmse
from ..solvers.adaptive import solve_adaptive
from ..solvers.bespoke import BASES, BespokeSolver
from ..solvers.nfe import CountingVelocity, Velocity, check_noise
from ..train_data import Source


class BespokeTrainingError(FlowlibError, RuntimeError):
    """Training produced a non-finite loss or parameters."""


@dataclass
class DenseTrajectories(Source):
    """Ground-truth trajectories of a pool of noises on a fine time grid: `states` and `velocities` [G, P, ...]; what
    `train_bespoke` trains on (`dense_ground_truth` solves them).

    Args:
        times: the grid [G] from 0 to 1; states, velocities: x and v(x, t) at every grid time [G, P, ...].

    >>> from flowlib.models import ring_mixture
    >>> gt = dense_ground_truth(ring_mixture(), torch.randn(6, 2), grid=11)
    >>> len(gt), gt.endpoints.shape
    (6, torch.Size([6, 2]))
    """

    what: ClassVar[str] = "the teacher's DenseTrajectories (flowlib.distill.bespoke.dense_ground_truth)"

    times: Tensor        # [G], float64, from 0 to 1
    states: Tensor
    velocities: Tensor

    def __len__(self) -> int:
        return self.states.shape[1]

    @property
    def endpoints(self) -> Tensor:
        return self.states[-1]

    def at(self, t: Tensor, idx: Tensor | None = None) -> Tensor:
        """x(t) for every time in `t` [K] and pool member in `idx` (all if None): [K, B, ...], cubic Hermite."""
        states = self.states if idx is None else self.states[:, idx]
        vel = self.velocities if idx is None else self.velocities[:, idx]
        t = t.detach().to(self.times.dtype).clamp(0.0, 1.0)
        k = (torch.searchsorted(self.times, t, right=True) - 1).clamp(0, len(self.times) - 2)
        h = self.times[k + 1] - self.times[k]
        tau = (t - self.times[k]) / h
        shape = (-1,) + (1,) * (states.dim() - 1)
        tau, h = tau.view(shape).to(states.dtype), h.view(shape).to(states.dtype)
        h00, h10 = 2 * tau**3 - 3 * tau**2 + 1, tau**3 - 2 * tau**2 + tau
        h01, h11 = -2 * tau**3 + 3 * tau**2, tau**3 - tau**2
        return h00 * states[k] + h10 * h * vel[k] + h01 * states[k + 1] + h11 * h * vel[k + 1]


@torch.no_grad()
def dense_ground_truth(velocity: Velocity, noise: Tensor, grid: int, rtol: float = 1e-5, atol: float = 1e-5) -> DenseTrajectories:
    """Solve from `noise` with dopri5 onto `grid` uniform times and record the teacher's velocity at each."""
    require_int("grid (dense ground-truth times)", grid, 2)
    check_noise(noise, velocity, "Bespoke's ground truth")
    velocity = CountingVelocity(velocity, name="the velocity field (Bespoke's dense ground truth)")
    times = torch.linspace(0.0, 1.0, grid, dtype=torch.float64, device=noise.device)
    states = solve_adaptive(velocity, noise, rtol=rtol, atol=atol, times=times)
    vel = torch.stack([velocity(x, t.to(x.dtype).expand(len(x))) for x, t in zip(states, times)])
    return DenseTrajectories(times, states, vel)


def local_errors(solver: BespokeSolver, velocity: Velocity, gt: DenseTrajectories, idx: Tensor) -> Tensor:
    """d_i per sample [n, B]: the RMSE-norm error of step i from x^aux(t_i) to x^aux(t_{i+1}), all steps at once."""
    v = solver.values()
    t = v.t[:: solver.stages]                                  # the n + 1 step times, with grad
    x = gt.at(t, idx)                                          # [n + 1, B, ...], no grad
    with torch.no_grad():
        u = velocity(x.flatten(0, 1), t.detach().to(x.dtype).repeat_interleave(x.shape[1])).view_as(x)
    shift = (t - t.detach()).to(x.dtype).view((-1,) + (1,) * (x.dim() - 1))
    x_aux = x + u * shift                                      # same value; d x_aux / d t_i = u_{t_i}(x(t_i))
    n, batch = solver.n, x.shape[1]
    steps = torch.arange(n, device=x.device).repeat_interleave(batch)
    y = solver.step(velocity, x_aux[:-1].flatten(0, 1), steps, v).view_as(x_aux[1:])
    return ((x_aux[1:] - y).flatten(2).pow(2).mean(2) + 1e-20).sqrt()


def bespoke_loss(solver: BespokeSolver, velocity: Velocity, gt: DenseTrajectories, idx: Tensor,
                 l_tau: float = 1.0) -> Tensor:
    """The parallel RMSE bound: mean over the batch of Σ_i M_{i+1} d_i (see the module docstring)."""
    d = local_errors(solver, velocity, gt, idx)
    weights = solver.error_weights(l_tau).to(d.dtype)
    return (weights[:, None] * d).sum(0).mean()


def validation_rmse(solver: BespokeSolver, velocity: Velocity, noise: Tensor, target: Tensor) -> float:
    """The real objective, sequentially: RMSE of the solver's samples from `noise` to their ground truth."""
    with torch.no_grad():
        return rmse(solver.solve(velocity, noise), target)


def bespoke_config(iterations: int, lr: float, *, val_every: int = 25, patience: int = 5, rel_tol: float = 0.01,
                   seed: int = 0) -> TrainConfig:
    """The `TrainConfig` a Bespoke solver trains with: Adam (AdamW without decay), no warmup, no clipping, raw weights
    (no EMA), since the solver has a few dozen numbers; `iterations` is the cap of the stopping rule.

    Args:
        iterations: the cap on Adam steps; lr: the learning rate; val_every, patience, rel_tol: the stopping rule;
        seed: the minibatch seed.

    Returns:
        The `TrainConfig` for `train_bespoke`.

    >>> bespoke_config(200, 1e-2).ema_decay
    0.0
    """
    return TrainConfig(steps=iterations, lr=lr, warmup=0, grad_clip=None, ema_decay=0.0, seed=seed, log_every=1,
                       ckpt_every=iterations, val_every=val_every, patience=patience, rel_tol=rel_tol)


def train_bespoke(teacher: Velocity, solver: BespokeSolver, data: TrainData[DenseTrajectories], config: TrainConfig, *,
                  l_tau: float = 1.0,
                  progress: bool = True) -> TrainResult:
    """Train `solver` (in place) on the parallel bound with minibatches of the teacher's dense ground truth
    `data.source`, on flowlib's shared trainer and its stopping rule: every `config.val_every` iterations the RMSE on
    the held-out `data.heldout = (val_noise, val_target)` is measured, the best solver so far kept (the paper's tables
    pick by FID), and training stops at the validation plateau or at the cap `config.steps` (`bespoke_config` gives
    the paper's optimiser settings).

    The teacher network is frozen: only the solver's parameters move (the net's own requires_grad flags are restored).

    Args:
        teacher: v(x, t); solver: the `BespokeSolver` to train; data: a `TrainData` of the `DenseTrajectories`, with
        (val_noise, val_target) as heldout; config: a `TrainConfig` (see `bespoke_config`); l_tau: the Lipschitz
        constant of the loss weights.

    Returns:
        A `TrainResult` whose `model` and `ema_model` are the trained solver (the best by validation RMSE).

    >>> from flowlib.models import ring_mixture
    >>> from flowlib.distill.bespoke import dense_ground_truth
    >>> from flowlib import TrainData
    >>> v, z = ring_mixture(), torch.randn(24, 2, generator=torch.Generator().manual_seed(0))
    >>> gt = dense_ground_truth(v, z[:16], grid=11)
    >>> target = dense_ground_truth(v, z[16:], grid=11).states[-1]
    >>> data = TrainData(gt, 8, heldout=(z[16:], target))
    >>> train_bespoke(v, BespokeSolver("rk1", 3), data, bespoke_config(3, 1e-2), progress=False).ema_model.nfe
    3
    """
    if not isinstance(solver, BespokeSolver):
        raise ArgumentError(f"solver must be a BespokeSolver, e.g. BespokeSolver('rk2', 4), got {describe(solver)}.")
    require_velocity("teacher", teacher)
    require_data(data, "train_bespoke", DenseTrajectories)
    if not (isinstance(data.heldout, tuple) and len(data.heldout) == 2):
        raise ArgumentError(f"train_bespoke: data.heldout must be (val_noise, val_target), the held-out noise and its "
                            f"exact samples, got {describe(data.heldout)}.")
    if not isinstance(config, TrainConfig):
        raise ArgumentError(f"config must be a flowlib.TrainConfig (e.g. bespoke_config(1000, 1e-2)), got "
                            f"{describe(config)}.")
    gt, batch_size, (val_noise, val_target) = data.source, data.batch_size, data.heldout
    require_number("l_tau", l_tau, 0, low_open=True)
    sample_shape = tuple(gt.states.shape[2:])
    val_noise, val_target = (check_samples(teacher, value, f"data.heldout's {name}", "train_bespoke", call=False)
                             for name, value in (("val_noise", val_noise), ("val_target", val_target)))
    for name, value in (("val_noise", val_noise), ("val_target", val_target)):
        if tuple(value.shape[1:]) != sample_shape or len(value) != len(val_noise):
            raise ArgumentError(f"train_bespoke: data.heldout's {name} has shape {tuple(value.shape)} but the dense "
                                f"ground truth's samples have shape {sample_shape} (and val_noise {len(val_noise)} rows); "
                                "solve both from noise of one shape.")
    weights = list(teacher.parameters()) if isinstance(teacher, nn.Module) else []  # any callable works
    field_ = CountingVelocity(teacher, name="the velocity field (Bespoke training)")
    flags = [p.requires_grad for p in weights]
    for p in weights:
        p.requires_grad_(False)

    def loss_fn(net: nn.Module, gen: torch.Generator) -> Tensor:
        idx, = shard(torch.randint(len(gt), (batch_size,), generator=gen))  # this process's share of the global batch
        return bespoke_loss(net, field_, gt, idx.to(gt.states.device), l_tau)

    desc = f"{solver.name} n={solver.n}"
    try:
        result = train(solver.to(gt.states.device), loss_fn, config, progress=progress, desc=desc, wrap=False,
                       validate=lambda s: validation_rmse(s, field_, val_noise, val_target))
    except TrainingDivergedError as exc:
        raise BespokeTrainingError(f"{exc} For Bespoke: lower bespoke.lr or check the teacher for NaNs.") from None
    finally:
        for p, flag in zip(weights, flags):
            p.requires_grad_(flag)
    solver.load_state_dict(result.ema_model.state_dict())
    result.model = result.ema_model = solver
    return result


@checked_args
def fit_bespoke(velocity: Velocity, noise: Tensor, nfe: int, base: str = "rk2", *, val_fraction: Fraction = 0.25,
                grid: int = 101, iterations: int = 1000, batch_size: int = 16, lr: float = 1e-2, val_every: int = 25,
                patience: int = 4, rel_tol: float = 0.01, seed: int = 0, progress: bool = True) -> TrainResult:
    """A Bespoke solver for any velocity field in one call: solve the field's ground truth densely from `noise`
    (the last `val_fraction` of it held out for choosing the checkpoint and for the stopping rule), then train the
    solver on it until its validation RMSE plateaus (`patience` checks, every `val_every` iterations, without a
    relative gain of `rel_tol`) or `iterations` run out.

    Args:
        velocity: v(x, t); noise: noise to build the ground-truth trajectories from; nfe: the solver's NFE;
        base: rk1 | rk2; the keywords as described above.

    Returns:
        A `TrainResult` whose `ema_model` is the trained solver.

    >>> from flowlib.models import ring_mixture
    >>> noise = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    >>> fit_bespoke(ring_mixture(), noise, nfe=4, iterations=5, grid=11, progress=False).ema_model.nfe
    4
    """
    require_velocity("velocity", velocity)
    check_noise(noise, velocity, "fit_bespoke")
    require_int("nfe", nfe)
    if base not in BASES or nfe % BASES[base]:
        raise ArgumentError(f"base {base!r} with nfe={nfe}: choose base in {sorted(BASES)} and an nfe divisible by its "
                         "stages (rk2: even).")
    for name, value in (("iterations", iterations), ("batch_size", batch_size), ("val_every", val_every),
                        ("patience", patience)):
        require_int(name, value)
    require_number("lr", lr, 0, low_open=True)
    n_val = max(1, int(len(noise) * val_fraction))
    if len(noise) - n_val < 1:
        raise ArgumentError(f"fit_bespoke needs at least 2 noises (training and validation), got {len(noise)}.")
    pool = dense_ground_truth(velocity, noise[:-n_val], grid)
    target = dense_ground_truth(velocity, noise[-n_val:], 2).endpoints
    data = TrainData(pool, min(batch_size, len(pool)), heldout=(noise[-n_val:], target))
    config = bespoke_config(iterations, lr, val_every=min(val_every, iterations), patience=patience, rel_tol=rel_tol,
                            seed=seed)
    return train_bespoke(velocity, BespokeSolver(base, nfe // BASES[base]), data, config, progress=progress)


# ------------------------------------------------------------------------------------------ persistence
def save_bespoke(path: str | Path, solver: BespokeSolver, **meta: Any) -> None:
    """Save a solver (its base, n and raw parameters) as a checksummed, weights-only checkpoint."""
    save_checkpoint({"base": solver.base, "n": solver.n, "state_dict": solver.state_dict(), "meta": meta}, path,
                    kind="bespoke")


def load_bespoke(path: str | Path, rebuild_hint: str = "") -> BespokeSolver:
    """Load a solver saved by `save_bespoke`; a file that is not one, or holds impossible values, is rejected."""
    state = load_checkpoint(path, rebuild_hint, kind="bespoke")
    fix = f" Rebuild it: {rebuild_hint}" if rebuild_hint else ""
    try:
        base, n, weights = state["base"], state["n"], state["state_dict"]
        if base not in BASES or not isinstance(n, int):
            raise KeyError("base/n")
        solver = BespokeSolver(base, n)
        solver.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path} is not a saved Bespoke solver ({reason}).{fix}") from None
    if not all(torch.isfinite(p).all() for p in solver.parameters()):
        raise CheckpointError(f"{path} holds non-finite Bespoke parameters.{fix}")
    return solver
