"""The one shape every method shares: `sampler(noise) -> samples`, with `.nfe` and `.name`."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from ..errors import ArgumentError, describe, require_number, require_velocity
from .adaptive import solve_adaptive
from .fixed_grid import get_tableau, solve
from .grids import GridError, as_time_grid, uniform_grid
from .nfe import Velocity, check_noise, run_checked


@runtime_checkable
class Sampler(Protocol):
    """Maps Gaussian noise to samples at a known number of teacher evaluations."""

    name: str

    @property
    def nfe(self) -> int: ...

    def __call__(self, noise: Tensor) -> Tensor: ...


class CountingSampler:
    """Base of the ODE samplers: `__call__` integrates through a `CountingVelocity` (no grad) and stores the
    measured NFE, so `.nfe` is always counted, never computed by hand. Subclasses implement `integrate`.

    Every call goes through flowlib's checking layer (`solvers.nfe`): the noise against the field (a floating
    tensor with a batch axis, the network's dtype and data shape), every output's shape and dtype, and with
    `check_finite` (default True) one NaN/inf check of the samples; only when it fails is the noise run again to
    raise `NonFiniteError` naming the evaluation and time where NaN or inf first appeared."""

    name: str
    _nfe: int = 0

    def __init__(self, velocity: Velocity, check_finite: bool = True):
        require_velocity("velocity", velocity)
        if not isinstance(check_finite, bool):
            raise ArgumentError(f"check_finite must be True or False, got {describe(check_finite)}.")
        self.velocity = velocity
        self.check_finite = check_finite

    @property
    def nfe(self) -> int:
        return self._nfe

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        check_noise(noise, self.velocity, f"sampler {self.name!r}")
        out, self._nfe = run_checked(lambda v: self.integrate(v, noise), self.velocity,
                                     f"the velocity field (sampler {self.name!r})", self.check_finite)
        return out


class ODESampler(CountingSampler):
    """A fixed-grid RK solver of the teacher ODE as a sampler.

    Before any call `.nfe` is the count the tableau implies (stages x steps); the tests check that the
    measured count agrees. `time_grid`: a tensor, a list of times or an int number of uniform steps; it runs from
    exactly t = 0 (the noise) to t = 1 (the data). To integrate part of the way, call `flowlib.solve(v, x, grid)`,
    which integrates from grid[0] to grid[-1] by design.

    >>> sampler = ODESampler(lambda x, t: -x, 4, "heun")
    >>> sampler(torch.ones(3, 2)).shape, sampler.nfe
    (torch.Size([3, 2]), 8)
    """

    def __init__(self, velocity: Velocity, time_grid: Tensor | Sequence[float] | int, method: str = "euler",
                 name: str | None = None, check_finite: bool = True):
        super().__init__(velocity, check_finite)
        self.time_grid = full_time_grid(time_grid)
        get_tableau(method)
        self.method = method
        self.name = name or method
        self._nfe = get_tableau(method).stages * (self.time_grid.numel() - 1)

    @classmethod
    def uniform(cls, velocity: Velocity, nfe: int, method: str = "euler") -> "ODESampler":
        """The uniform grid whose step count spends exactly `nfe` evaluations (nfe divisible by the stages)."""
        stages = get_tableau(method).stages
        if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < stages or nfe % stages:
            raise ArgumentError(f"{method} needs a multiple of {stages} NFE, got nfe={nfe}.")
        return cls(velocity, uniform_grid(nfe // stages), method)

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        return solve(velocity, noise, self.time_grid, self.method)


def full_time_grid(time_grid: Tensor | Sequence[float] | int) -> Tensor:
    """`as_time_grid`, and the grid must start at exactly 0 (the noise) and end at exactly 1 (the data)."""
    grid = as_time_grid(time_grid)
    if grid[0] != 0 or grid[-1] != 1:
        raise GridError(f"A sampler's time grid must run from exactly t = 0 (noise) to t = 1 (data), got "
                        f"[{grid[0].item():.6g}, {grid[-1].item():.6g}]: a grid starting later treats the noise as the "
                        "state at that time, one ending earlier returns unfinished samples. For a partial solve call "
                        "flowlib.solve(v, x, grid), which integrates from grid[0] to grid[-1].")
    return grid


class AdaptiveSampler(CountingSampler):
    """The ground truth (dopri5 at tight tolerance) as a sampler; `.nfe` is measured on the last call."""

    def __init__(self, velocity: Velocity, rtol: float = 1e-5, atol: float = 1e-5, name: str = "adaptive"):
        super().__init__(velocity)
        self.rtol = require_number("rtol", rtol, 0, low_open=True)
        self.atol = require_number("atol", atol, 0, low_open=True)
        self.name = name

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        velocity.per_call = self.check_finite  # dopri5 stalls on a NaN before any output exists: check every call
        return solve_adaptive(velocity, noise, rtol=self.rtol, atol=self.atol)
