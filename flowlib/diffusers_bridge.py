"""flowlib and diffusers, both ways: diffusers' flow-matching schedulers as flowlib samplers, flowlib time grids as
`sigmas` for diffusers' `FlowMatchEulerDiscreteScheduler`, and a diffusers flow transformer as a flowlib velocity field.

Conventions. flowlib integrates dx/dt = v(x, t) from noise at t = 0 to data at t = 1 (x_t = (1 − t) noise + t data,
v = data − noise). diffusers' flow schedulers run σ = 1 − t from 1 down to 0 (x_σ = σ noise + (1 − σ) data) and the
model predicts noise − data = −v at timestep σ · num_train_timesteps. Every conversion lives here, once.

`DiffusersSampler` counts the network calls at the call, like every flowlib sampler, never from `num_inference_steps`.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ArgumentError, FlowlibError
from .names import DIFFUSERS_SCHEDULERS
from .solvers.grids import full_time_grid
from .solvers.nfe import Velocity
from .solvers.samplers import CountingSampler

SCHEDULERS = DIFFUSERS_SCHEDULERS  # the names make_scheduler builds (listed in flowlib.names, which the config reads)


class DiffusersBridgeError(FlowlibError, ValueError):
    """A diffusers scheduler or model that cannot be used as asked (unknown name, a schedule it would change)."""


def _import_diffusers():
    try:
        import diffusers
    except ImportError as exc:  # pragma: no cover - diffusers is a pinned dependency
        raise DiffusersBridgeError("diffusers is not installed; `pip install -e .` installs the pinned version.") from exc
    return diffusers


def make_scheduler(name: str, num_train_timesteps: int = 1000) -> Any:
    """A diffusers scheduler in its flow-matching form, shift 1 (the flow as trained, no resolution shift).

    `flowmatch-euler`: `FlowMatchEulerDiscreteScheduler`; `dpmsolver++2m` / `dpmsolver++3m`: `DPMSolverMultistepScheduler`
    (`algorithm_type="dpmsolver++"`, order 2 or 3) with `prediction_type="flow_prediction"`, `use_flow_sigmas=True`,
    final σ = 0; `unipc`: `UniPCMultistepScheduler` (bh2, order 2) in the same flow form.
    """
    d = _import_diffusers()
    flow = dict(num_train_timesteps=num_train_timesteps, prediction_type="flow_prediction", use_flow_sigmas=True,
                flow_shift=1.0)
    if name == "flowmatch-euler":
        return d.FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=1.0)
    if name in ("dpmsolver++2m", "dpmsolver++3m"):
        return d.DPMSolverMultistepScheduler(**flow, algorithm_type="dpmsolver++", solver_order=int(name[-2]),
                                             final_sigmas_type="zero", lower_order_final=True)
    if name == "unipc":
        return d.UniPCMultistepScheduler(**flow, solver_order=2, solver_type="bh2", final_sigmas_type="zero",
                                         lower_order_final=True)
    raise DiffusersBridgeError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} (or pass a scheduler "
                               "object).")


class DiffusersSampler(CountingSampler):
    """A diffusers flow-matching scheduler run on a flowlib velocity field, as a flowlib sampler.

    Each scheduler step calls the field once at t = 1 − σ_i and hands the scheduler −v (diffusers' flow prediction);
    the NFE is counted at the call. As in diffusers' pipelines, the noise enters at the schedule's first σ: 1 for
    FlowMatch Euler on a flowlib grid, 1 − 1/T (T = 1000) for the multistep schedulers' own flow sigmas, a bias of
    about 1e-3 that bounds their error from below at many steps. The schedule is the scheduler's own for `steps` steps, or, for
    `FlowMatchEulerDiscreteScheduler`, an explicit flowlib time grid (`grid`), exported by `grid_to_sigmas`. (UniPC takes
    sigmas too but moves σ = 1 to 1 − 1e-6, where its log-SNR is finite: `set_sigmas` refuses the changed schedule.)

    Args:
        velocity: v(x, t) in flowlib's convention; scheduler: a name of `SCHEDULERS` or a configured scheduler;
        steps: scheduler steps (one network call each); grid: explicit times 0 = t_0 < ... < t_N = 1 instead of `steps`;
        check_finite, compiled: as for every flowlib sampler.

    >>> sampler = DiffusersSampler(lambda x, t: -x, "flowmatch-euler", steps=4)
    >>> sampler(torch.ones(2, 1)).shape, sampler.nfe
    (torch.Size([2, 1]), 4)
    """

    compile_whole = False  # the schedulers keep Python state between steps: compile the field, step eagerly

    def __init__(self, velocity: Velocity, scheduler: str | Any = "flowmatch-euler", steps: int | None = None,
                 grid: Sequence[float] | Tensor | None = None, check_finite: bool = True, compiled: bool = False):
        super().__init__(velocity, check_finite, compiled)
        if (steps is None) == (grid is None):
            raise ArgumentError("Give exactly one of steps= (the scheduler's own schedule) or grid= (explicit times).")
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ArgumentError(f"steps must be an integer ≥ 1, got {steps!r}.")
        self.scheduler = make_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
        config = getattr(self.scheduler, "config", {})
        if config.get("prediction_type", "flow_prediction") != "flow_prediction" or config.get("use_flow_sigmas") is False:
            raise DiffusersBridgeError(f"{type(self.scheduler).__name__} is not in flow-matching form (prediction_type="
                                       f"{config.get('prediction_type')!r}, use_flow_sigmas={config.get('use_flow_sigmas')}): "
                                       "build it with prediction_type='flow_prediction', use_flow_sigmas=True, or pass a "
                                       f"name of {SCHEDULERS}.")
        self.steps, self.sigmas = steps, grid_to_sigmas(grid) if grid is not None else None
        self.name = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
        self._nfe = steps if steps is not None else len(self.sigmas)

    def set_schedule(self, device: torch.device | None = None) -> None:
        """Set the scheduler's timesteps: its own for `steps`, or exactly the exported grid (checked)."""
        if self.sigmas is None:
            self.scheduler.set_timesteps(num_inference_steps=self.steps, device=device)
        else:
            set_sigmas(self.scheduler, self.sigmas, device)

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Callable[..., Tensor] | None = None) -> Tensor:
        self.set_schedule(noise.device)
        x = noise
        sigmas = self.scheduler.sigmas
        for i, timestep in enumerate(self.scheduler.timesteps):
            sigma = float(sigmas[i])
            t = torch.full((x.shape[0],), 1.0 - sigma, dtype=x.dtype, device=x.device)
            x = self.scheduler.step(-velocity(x, t), timestep, x, return_dict=False)[0]
        return x


# -------------------------------------------------------------------------------------- flowlib -> diffusers
def grid_to_sigmas(grid: Sequence[float] | Tensor) -> list[float]:
    """A flowlib time grid (0 = t_0 < ... < t_N = 1: uniform, BOSS's Bellman grid, a Bespoke solver's times) as the N
    `sigmas` a diffusers flow scheduler takes: σ_i = 1 − t_i for i < N (the scheduler appends the terminal σ = 0).

    >>> grid_to_sigmas([0.0, 0.25, 1.0])
    [1.0, 0.75]
    """
    times = full_time_grid(grid)
    return [float(1.0 - t) for t in times[:-1].tolist()]


def set_sigmas(scheduler: Any, sigmas: Sequence[float], device: torch.device | None = None) -> None:
    """`scheduler.set_timesteps(sigmas=...)`, refusing a scheduler that would change them (a shift other than 1, dynamic
    shifting, Karras / exponential / beta sigmas) and checking afterwards that its sigmas are exactly `sigmas` and 0, so a
    schedule chosen by flowlib reaches the model unchanged."""
    config = scheduler.config
    changes = [key for key, neutral in (("use_dynamic_shifting", False), ("use_karras_sigmas", False),
                                        ("use_exponential_sigmas", False), ("use_beta_sigmas", False),
                                        ("invert_sigmas", False), ("shift_terminal", None))
               if config.get(key, neutral) != neutral]
    shift = config.get("shift", config.get("flow_shift", 1.0))
    if shift != 1.0:
        changes.append(f"shift={shift}")
    if changes:
        raise DiffusersBridgeError(f"{type(scheduler).__name__} would change the given sigmas ({', '.join(map(str, changes))}); "
                                   "build it with shift=1.0 and without dynamic shifting or sigma conversions "
                                   "(e.g. flowlib.diffusers_bridge.make_scheduler('flowmatch-euler')).")
    if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
        raise DiffusersBridgeError(f"{type(scheduler).__name__} takes no explicit sigmas; use "
                                   "FlowMatchEulerDiscreteScheduler (flowlib.diffusers_bridge.export_grid).")
    scheduler.set_timesteps(sigmas=np.asarray(sigmas, dtype=np.float64), device=device)
    expected = torch.tensor([*sigmas, 0.0], dtype=torch.float32)
    got = scheduler.sigmas.detach().cpu().to(torch.float32)
    if got.shape != expected.shape or not torch.equal(got, expected):
        raise DiffusersBridgeError(f"{type(scheduler).__name__} changed the given sigmas: asked {expected.tolist()}, "
                                   f"got {got.tolist()}.")


def export_grid(grid: Sequence[float] | Tensor, num_train_timesteps: int = 1000) -> Any:
    """A `FlowMatchEulerDiscreteScheduler` (shift 1, no dynamic shifting) set to exactly a flowlib time grid: plug it into
    a diffusers flow pipeline, or pass `grid_to_sigmas(grid)` as the pipeline's `sigmas=` with such a scheduler.

    >>> scheduler = export_grid([0.0, 0.5, 0.9, 1.0])
    >>> [round(s, 4) for s in scheduler.sigmas.tolist()], [round(t, 1) for t in scheduler.timesteps.tolist()]
    ([1.0, 0.5, 0.1, 0.0], [1000.0, 500.0, 100.0])
    """
    scheduler = make_scheduler("flowmatch-euler", num_train_timesteps)
    set_sigmas(scheduler, grid_to_sigmas(grid))
    return scheduler


# -------------------------------------------------------------------------------------- diffusers -> flowlib
def batched(conditioning: dict[str, Tensor], n: int) -> dict[str, Tensor]:
    """A model's conditioning for a batch of `n`: a one-row tensor repeated, an `n`-row one as it is, any other refused."""
    out = {}
    for key, value in conditioning.items():
        if value.shape[0] not in (1, n):
            raise ArgumentError(f"conditioning {key!r} has batch {value.shape[0]}, the samples {n}: give 1 or {n} rows.")
        out[key] = value.expand(n, *value.shape[1:]) if value.shape[0] == 1 else value
    return out


class DiffusersVelocity(nn.Module):
    """A diffusers flow-matching transformer (SD3's `SD3Transformer2DModel`, or any model called as
    `model(hidden_states=x, timestep=σ·T, **conditioning)` that predicts noise − data) as a flowlib velocity field
    v(x, t) = −model(x, (1 − t)·T, ...), its conditioning bound (prompt embeddings, pooled projections).

    Conditioning with one row is repeated over the batch; otherwise its batch must match x's.

    Args:
        model: the transformer; conditioning: keyword inputs of its forward (e.g. encoder_hidden_states,
        pooled_projections); num_train_timesteps: T, the scheduler's (1000 for SD3 and Flux).
    """

    def __init__(self, model: nn.Module, num_train_timesteps: int = 1000, **conditioning: Tensor):
        super().__init__()
        self.model, self.num_train_timesteps = model, num_train_timesteps
        self.conditioning = conditioning

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        n = x.shape[0]
        timestep = ((1.0 - t.reshape(-1).to(x.dtype)) * self.num_train_timesteps).expand(n)
        out = self.model(hidden_states=x, timestep=timestep, return_dict=False, **batched(self.conditioning, n))[0]
        return -out


@torch.no_grad()
def diffusers_loop(model: nn.Module, scheduler: Any, noise: Tensor, **conditioning: Tensor) -> Tensor:
    """A plain diffusers sampling loop, as a diffusers pipeline runs one after `set_timesteps`: at each of the scheduler's
    timesteps call `model(hidden_states=x, timestep=..., **conditioning)` and `scheduler.step`. flowlib's own samplers on a
    `DiffusersVelocity` of the same model and an exported grid give the same samples (the tests check it to 1e-5).

    Args:
        model: a diffusers flow transformer; scheduler: a scheduler after `set_timesteps` (e.g. `export_grid(grid)`);
        noise: the starting noise; conditioning: the model's keyword inputs (one row is repeated over the batch).

    Returns:
        The final samples.
    """
    n, x = noise.shape[0], noise
    cond = batched(conditioning, n)
    for timestep in scheduler.timesteps:
        out = model(hidden_states=x, timestep=timestep.expand(n), return_dict=False, **cond)[0]
        x = scheduler.step(out, timestep, x, return_dict=False)[0]
    return x
