"""The one shape every method shares: `sampler(noise) -> samples`, with `.nfe` and `.name`."""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor

from ..errors import ArgumentError, describe, require_number, require_velocity
from .adaptive import solve_adaptive
from .compiled import CallTally, CompiledFunction
from .fixed_grid import get_tableau, solve
from .grids import full_time_grid, uniform_grid
from .nfe import CountingVelocity, Velocity, check_noise, check_output, ensure_finite


@runtime_checkable
class Sampler(Protocol):
    """Maps Gaussian noise to samples at a known number of teacher evaluations.

    Any object with a `name`, an `nfe` and `__call__(noise) -> samples` is a sampler; every flowlib sampler is one.

    >>> from flowlib import ODESampler
    >>> isinstance(ODESampler(lambda x, t: -x, 2), Sampler)
    True
    """

    name: str

    @property
    def nfe(self) -> int: ...

    def __call__(self, noise: Tensor) -> Tensor: ...


class CountingSampler:
    """The base of every flowlib sampler (fixed grid, adaptive, Bellman, Bespoke, FlowTurbo, one-step generator).

    Subclasses implement `integrate(velocity, noise, refiner)`; the base calls it through counters, so `.nfe` (teacher
    calls) and `.refiner_calls` (calls of a second network, FlowTurbo's refiner) are always counted at the call, never
    computed by formula (before the first call `.nfe` is what the sampler expects to spend).

    Every call goes through flowlib's checking layer (`solvers.nfe`): the noise against the field (a floating tensor
    with a batch axis, the network's dtype and data shape), the outputs' shape and dtype, and with `check_finite`
    (default True) one NaN/inf check of the samples; only when it fails is the noise run again with every evaluation
    checked, to raise `NonFiniteError` naming the evaluation and time where NaN or inf first appeared.

    `compiled=True` runs `integrate` as one `torch.compile` unit (network calls and updates fused; samplers whose
    control flow depends on values, such as the adaptive one, compile the field instead: `compile_whole = False`).
    The calls are still counted inside the compiled code (`CallTally`); a compiler failure warns and runs eagerly.
    """

    name: str
    compile_whole = True
    _nfe: int = 0
    refiner_calls: int = 0

    def __init__(self, velocity: Velocity, check_finite: bool = True, compiled: bool = False,
                 refiner: Callable[..., Tensor] | None = None):
        require_velocity("velocity", velocity)
        for flag, value in (("check_finite", check_finite), ("compiled", compiled)):
            if not isinstance(value, bool):
                raise ArgumentError(f"{flag} must be True or False, got {describe(value)}.")
        if refiner is not None:
            require_velocity("refiner", refiner, arity=3)
        self.velocity, self.refiner = velocity, refiner
        self.check_finite, self.compiled = check_finite, compiled
        self._compiled_run: Callable[[Tensor], Tensor] | None = None

    @property
    def nfe(self) -> int:
        return self._nfe

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Callable[..., Tensor] | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        check_noise(noise, self.velocity, f"sampler {self.name!r}")
        out = self._run_compiled(noise) if self.compiled else self._run(noise, per_call=False)
        if type(out) is not Tensor or out.shape != noise.shape:
            check_output(out, noise, f"sampler {self.name!r}")
        ensure_finite(out, lambda: self._run(noise, per_call=True), f"sampler {self.name!r}", self.check_finite)
        return out

    def _run(self, noise: Tensor, per_call: bool, velocity: Velocity | None = None,
             refiner: Callable[..., Tensor] | None = None) -> Tensor:
        """`integrate` eagerly through checking counters (of `velocity` and `refiner`, by default the sampler's own)."""
        where = f"(sampler {self.name!r})"
        first = velocity if velocity is not None else self.velocity
        teacher = CountingVelocity(first, self.check_finite, f"the velocity field {where}", per_call)
        second = refiner if refiner is not None else self.refiner
        counted = CountingVelocity(second, self.check_finite, f"the refiner {where}", per_call) if second is not None else None
        out = self.integrate(teacher, noise, counted)
        self._nfe, self.refiner_calls = teacher.nfe, counted.nfe if counted is not None else 0
        return out

    def _run_compiled(self, noise: Tensor) -> Tensor:
        if self._compiled_run is None:
            self._compiled_run = self._compile()
        return self._compiled_run(noise)

    def _compile(self) -> Callable[[Tensor], Tensor]:
        """The compiled run: the whole integration through tallies, or (compile_whole False) the eager integration
        of compiled fields."""
        label = f"sampler {self.name!r}"
        if not self.compile_whole:
            fields = [CompiledFunction(f, f"{label}'s field") if f is not None else None for f in (self.velocity, self.refiner)]
            return lambda noise: self._run(noise, False, *fields)
        teacher = CallTally(self.velocity)
        refiner = CallTally(self.refiner) if self.refiner is not None else None

        def whole(noise: Tensor) -> Tensor:
            return self.integrate(teacher, noise, refiner)

        compiled = CompiledFunction(whole, label, fallback=lambda noise: self._run(noise, per_call=False))

        def run(noise: Tensor) -> Tensor:
            teacher.reset()
            if refiner is not None:
                refiner.reset()
            out = compiled(noise)
            if compiled.error is None:  # the fallback counted its own calls
                self._nfe, self.refiner_calls = teacher.nfe, refiner.nfe if refiner is not None else 0
            return out

        return run


class ODESampler(CountingSampler):
    """A fixed-grid RK solver of the teacher ODE as a sampler.

    Before any call `.nfe` is the count the tableau implies (stages x steps); the tests check that the
    measured count agrees. `time_grid`: a tensor, a list of times or an int number of uniform steps; it runs from
    exactly t = 0 (the noise) to t = 1 (the data). To integrate part of the way, call `flowlib.solve(v, x, grid)`,
    which integrates from grid[0] to grid[-1] by design.

    >>> sampler = ODESampler(lambda x, t: -x, 4, "heun")
    >>> sampler(torch.ones(3, 2)).shape, sampler.nfe
    (torch.Size([3, 2]), 8)

    Args:
        velocity: v(x, t), a network or any callable; time_grid: the times (or a number of uniform steps);
        method: euler | midpoint | heun | rk4; name: the sampler's name (default: the method);
        check_finite: check the samples for NaN/inf; compiled: run the integration as one torch.compile unit.
    """

    def __init__(self, velocity: Velocity, time_grid: Tensor | Sequence[float] | int, method: str = "euler",
                 name: str | None = None, check_finite: bool = True, compiled: bool = False):
        super().__init__(velocity, check_finite, compiled)
        self.time_grid = full_time_grid(time_grid)
        get_tableau(method)
        self.method = method
        self.name = name or method
        self._nfe = get_tableau(method).stages * (self.time_grid.numel() - 1)

    @classmethod
    def uniform(cls, velocity: Velocity, nfe: int, method: str = "euler", **options: bool) -> "ODESampler":
        """The uniform grid whose step count spends exactly `nfe` evaluations (nfe divisible by the stages);
        `options`: check_finite, compiled."""
        stages = get_tableau(method).stages
        if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < stages or nfe % stages:
            raise ArgumentError(f"{method} needs a multiple of {stages} NFE, got nfe={nfe}.")
        return cls(velocity, uniform_grid(nfe // stages), method, **options)

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Callable[..., Tensor] | None = None) -> Tensor:
        return solve(velocity, noise, self.time_grid, self.method)



class AdaptiveSampler(CountingSampler):
    """The ground truth (dopri5 at tight tolerance) as a sampler; `.nfe` is measured on the last call.

    Args:
        velocity: v(x, t); rtol, atol: dopri5's tolerances; name: the sampler's name;
        check_finite: check every evaluation for NaN/inf; compiled: compile the field (the solve stays eager).

    >>> sampler = AdaptiveSampler(lambda x, t: -x)
    >>> out = sampler(torch.ones(2, 1)); round(float(out[0, 0]), 4), sampler.nfe > 6   # exp(-1)
    (0.3679, True)
    """

    compile_whole = False  # step acceptance depends on values: compile the field, integrate eagerly

    def __init__(self, velocity: Velocity, rtol: float = 1e-5, atol: float = 1e-5, name: str = "adaptive",
                 check_finite: bool = True, compiled: bool = False):
        super().__init__(velocity, check_finite, compiled)
        self.rtol = require_number("rtol", rtol, 0, low_open=True)
        self.atol = require_number("atol", atol, 0, low_open=True)
        self.name = name

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Callable[..., Tensor] | None = None) -> Tensor:
        velocity.per_call = self.check_finite  # dopri5 stalls on a NaN before any output exists: check every call
        return solve_adaptive(velocity, noise, rtol=self.rtol, atol=self.atol)
