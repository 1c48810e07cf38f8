"""FlowTurbo's sampler: Heun (H), pseudo-corrector (P) and refiner (R) steps on a uniform grid, eager or compiled.

A schedule such as `H2P4R3` (or `HHPPPPRRR`, the same thing) runs its steps in the order written on the grid
t_i = i / N, N = the number of steps, passing a cached velocity c from step to step:

- H: d = v(x, t_i); x~ = x + h d; d~ = v(x~, t_i+1); x <- x + h/2 (d + d~); c <- d~        (2 teacher calls)
- P: as H with d = c, the previous step's corrector velocity (an H when no cache yet)     (1 teacher call)
- R: d = c + r(x, t_i, c); x~ = x + h d; d~ = d + r(x~, t_i+1, c); x <- x + h/2 (d + d~); c <- d   (2 refiner calls)

Reusing c costs an O(h^2) change of the point where d is evaluated, hence O(h^3) per step: P keeps second order.
Teacher and refiner calls are counted apart: `.nfe` is the teacher's count, `.refiner_calls` the refiner's.
With `compiled=True` each whole step (its network calls and the update) is one `torch.compile` unit, its calls still
counted; a compile failure falls back to eager with a `CompileFallbackWarning`, never silently.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, describe
from ..names import Schedule, ScheduleError  # noqa: F401 - the grammar is data the config reads too
from .compiled import CallTally, CompiledFunction, CompileFallbackWarning  # noqa: F401 - re-exported
from .nfe import Velocity
from .samplers import CountingSampler

Refiner = Callable[[Tensor, Tensor, Tensor], Tensor]


def _heun_update(velocity: Velocity, x: Tensor, d: Tensor, t0: Tensor, t1: Tensor) -> tuple[Tensor, Tensor]:
    h = t1 - t0
    d2 = velocity(x + h * d, t1.expand(x.shape[0]))
    return x + h / 2 * (d + d2), d2


def heun_step(velocity: Velocity, x: Tensor, t0: Tensor, t1: Tensor) -> tuple[Tensor, Tensor]:
    """H: one Heun step; returns (x_next, cache = the corrector's velocity)."""
    return _heun_update(velocity, x, velocity(x, t0.expand(x.shape[0])), t0, t1)


def pseudo_step(velocity: Velocity, x: Tensor, cache: Tensor, t0: Tensor, t1: Tensor) -> tuple[Tensor, Tensor]:
    """P: a Heun step whose first velocity is the cache (one teacher call)."""
    return _heun_update(velocity, x, cache, t0, t1)


def refiner_step(refiner: Refiner, x: Tensor, cache: Tensor, t0: Tensor, t1: Tensor) -> tuple[Tensor, Tensor]:
    """R: a Heun-like step on refined cached velocities (no teacher call); the new cache is the first refined one."""
    h, n = t1 - t0, x.shape[0]
    d = cache + refiner(x, t0.expand(n), cache)
    d2 = d + refiner(x + h * d, t1.expand(n), cache)
    return x + h / 2 * (d + d2), d


class CompiledSteps(dict):
    """The compiled H, P (and R) steps of one teacher (and refiner), by kind, shared by its compiled samplers so that
    each step kind compiles once. The steps call the networks through `teacher` and `refiner` (`CallTally`), so a
    sampler running them still counts every call."""

    def __init__(self, steps: dict[str, CompiledFunction], teacher: CallTally, refiner: CallTally | None):
        super().__init__(steps)
        self.teacher, self.refiner = teacher, refiner


class FlowTurboSampler(CountingSampler):
    """Sample with a FlowTurbo schedule (a `Sampler`: `.nfe` teacher calls and `.refiner_calls`, both counted at the
    call; `.name` the schedule).

    `refiner` is required when the schedule has R steps. With `compiled=True` each step kind is one compiled unit;
    compiled samplers of one teacher share those steps through `steps` (see `compiled_steps`), so each kind compiles
    once.

    Args:
        velocity: the teacher v(x, t); schedule: e.g. "H1P4R2"; refiner: r(x, t, v) for R steps; compiled: one
        torch.compile unit per step kind; steps: shared compiled steps (`compiled_steps`); name; check_finite.

    >>> sampler = FlowTurboSampler(lambda x, t: -x, "H1P3")
    >>> sampler(torch.ones(2, 1)).shape, sampler.nfe
    (torch.Size([2, 1]), 5)
    """

    def __init__(self, velocity: nn.Module | Velocity, schedule: str | Schedule, refiner: Refiner | None = None, *,
                 compiled: bool = False, steps: CompiledSteps | None = None, name: str | None = None,
                 check_finite: bool = True):
        if not isinstance(schedule, (str, Schedule)):
            raise ArgumentError(f"schedule must be a FlowTurbo schedule such as 'H1P4R2' (or a Schedule), got "
                                f"{describe(schedule)}; the NFE follows from the schedule.")
        super().__init__(velocity, check_finite, compiled, refiner)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
        if self.schedule.count("R") and refiner is None:
            raise ScheduleError(f"Schedule {self.schedule} has refiner steps but no refiner was given; train one "
                                "(flowlib.distill.train_refiner) or drop the R steps.")
        if steps is not None and not isinstance(steps, CompiledSteps):
            raise ArgumentError(f"steps must come from flowlib.solvers.flowturbo.compiled_steps(velocity, refiner), got "
                                f"{describe(steps)}.")
        self.steps = steps if steps is not None else (compiled_steps(velocity, refiner) if compiled else None)
        self.name = name or str(self.schedule) + ("-compiled" if compiled else "")
        self._nfe, self.refiner_calls = self.schedule.teacher_calls, self.schedule.refiner_calls

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Refiner | None = None,
                  steps: CompiledSteps | None = None) -> Tensor:
        grid = torch.linspace(0.0, 1.0, self.schedule.n_steps + 1, dtype=noise.dtype, device=noise.device)
        x, cache = noise, None
        for i, kind in enumerate(self.schedule.steps):
            t0, t1 = grid[i], grid[i + 1]
            if kind == "H" or cache is None:
                x, cache = steps["H"](x, t0, t1) if steps else heun_step(velocity, x, t0, t1)
            elif kind == "P":
                x, cache = steps["P"](x, cache, t0, t1) if steps else pseudo_step(velocity, x, cache, t0, t1)
            else:
                x, cache = steps["R"](x, cache, t0, t1) if steps else refiner_step(refiner, x, cache, t0, t1)
        return x

    def _compile(self) -> Callable[[Tensor], Tensor]:
        """The shared compiled steps in the schedule's order, their calls counted by the steps' tallies."""
        steps = self.steps

        def run(noise: Tensor) -> Tensor:
            steps.teacher.reset()
            if steps.refiner is not None:
                steps.refiner.reset()
            out = self.integrate(self.velocity, noise, self.refiner, steps)
            self._nfe = steps.teacher.nfe
            self.refiner_calls = steps.refiner.nfe if steps.refiner is not None else 0
            return out

        return run


def compiled_steps(velocity: nn.Module | Velocity, refiner: Refiner | None = None) -> CompiledSteps:
    """The H, P (and R) steps of one teacher (and refiner), each a `CompiledFunction` (a compile failure warns and
    runs that step eagerly); share them between samplers. Their network calls are counted (`CallTally`)."""
    teacher = CallTally(velocity)
    counted = CallTally(refiner) if refiner is not None else None

    def h(x, t0, t1):
        return heun_step(teacher, x, t0, t1)

    def p(x, cache, t0, t1):
        return pseudo_step(teacher, x, cache, t0, t1)

    steps = {"H": CompiledFunction(h, "the FlowTurbo H step"), "P": CompiledFunction(p, "the FlowTurbo P step")}
    if counted is not None:
        def r(x, cache, t0, t1):
            return refiner_step(counted, x, cache, t0, t1)

        steps["R"] = CompiledFunction(r, "the FlowTurbo R step")
    return CompiledSteps(steps, teacher, counted)
