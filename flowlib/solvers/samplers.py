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


class CountingSampler:
    """Base of the ODE samplers: `__call__` integrates through a `CountingVelocity` (no grad) and stores the
    measured NFE, so `.nfe` is always counted, never computed by hand. Subclasses implement `integrate`.

    The wrapper checks the field's first output against the noise (shape, dtype) and, with `check_finite`
    (default True; set the attribute to False to save one sync per call), raises `NonFiniteError` naming the
    evaluation and time where NaN or inf first appeared."""

    name: str
    _nfe: int = 0

    def __init__(self, velocity: Velocity, check_finite: bool = True):
        self.velocity = velocity
        self.check_finite = check_finite

    @property
    def nfe(self) -> int:
        return self._nfe

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        counter = CountingVelocity(self.velocity, self.check_finite, name=f"the velocity field (sampler {self.name!r})")
        out = self.integrate(counter, noise)
        self._nfe = counter.nfe
        return out


class ODESampler(CountingSampler):
    """A fixed-grid RK solver of the teacher ODE as a sampler.

    Before any call `.nfe` is the count the tableau implies (stages x steps); the tests check that the
    measured count agrees. `time_grid`: a tensor, a list of times or an int number of uniform steps.

    >>> sampler = ODESampler(lambda x, t: -x, 4, "heun")
    >>> sampler(torch.ones(3, 2)).shape, sampler.nfe
    (torch.Size([3, 2]), 8)
    """

    def __init__(self, velocity: Velocity, time_grid: Tensor | Sequence[float] | int, method: str = "euler",
                 name: str | None = None, check_finite: bool = True):
        super().__init__(velocity, check_finite)
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

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        return solve(velocity, noise, self.time_grid, self.method)


class AdaptiveSampler(CountingSampler):
    """The ground truth (dopri5 at tight tolerance) as a sampler; `.nfe` is measured on the last call."""

    def __init__(self, velocity: Velocity, rtol: float = 1e-5, atol: float = 1e-5, name: str = "adaptive"):
        super().__init__(velocity)
        self.rtol, self.atol, self.name = rtol, atol, name

    def integrate(self, velocity: Velocity, noise: Tensor) -> Tensor:
        return solve_adaptive(velocity, noise, rtol=self.rtol, atol=self.atol)
