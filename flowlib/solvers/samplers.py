"""The one shape every method shares: `sampler(noise) -> samples`, with `.nfe` and `.name`."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from .adaptive import solve_adaptive
from .fixed_grid import get_tableau, solve
from .grids import as_time_grid, uniform_grid
from .nfe import CountingVelocity, Velocity


@runtime_checkable
class Sampler(Protocol):
    """Maps Gaussian noise to samples at a known number of teacher evaluations."""

    name: str

    @property
    def nfe(self) -> int: ...

    def __call__(self, noise: Tensor) -> Tensor: ...


class ODESampler:
    """A fixed-grid RK solver of the teacher ODE as a sampler.

    `.nfe` is the count measured by `CountingVelocity` on the last call; before any call it is the count the
    tableau implies (stages x steps), which the tests check against the measured one.
    """

    def __init__(self, velocity: Velocity, time_grid: Tensor | Sequence[float], method: str = "euler", name: str | None = None):
        self.velocity = velocity
        self.time_grid = as_time_grid(time_grid)
        self.method = method
        self.name = name or method
        self._nfe = get_tableau(method).stages * (self.time_grid.numel() - 1)

    @classmethod
    def uniform(cls, velocity: Velocity, nfe: int, method: str = "euler") -> "ODESampler":
        """The uniform grid whose step count spends exactly `nfe` evaluations (nfe divisible by the stages)."""
        stages = get_tableau(method).stages
        if nfe < stages or nfe % stages:
            raise ValueError(f"{method} needs a multiple of {stages} NFE, got nfe={nfe}.")
        return cls(velocity, uniform_grid(nfe // stages), method)

    @property
    def nfe(self) -> int:
        return self._nfe

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        counter = CountingVelocity(self.velocity)
        out = solve(counter, noise, self.time_grid, self.method)
        self._nfe = counter.nfe
        return out


class AdaptiveSampler:
    """The ground truth (dopri5 at tight tolerance) as a sampler; `.nfe` is measured on the last call."""

    def __init__(self, velocity: Velocity, rtol: float = 1e-5, atol: float = 1e-5, name: str = "adaptive"):
        self.velocity, self.rtol, self.atol, self.name = velocity, rtol, atol, name
        self._nfe = 0

    @property
    def nfe(self) -> int:
        return self._nfe

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        counter = CountingVelocity(self.velocity)
        out = solve_adaptive(counter, noise, rtol=self.rtol, atol=self.atol)
        self._nfe = counter.nfe
        return out
