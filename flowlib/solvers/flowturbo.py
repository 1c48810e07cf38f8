"""FlowTurbo's sampler: Heun (H), pseudo-corrector (P) and refiner (R) steps on a uniform grid, eager or compiled.

A schedule such as `H2P4R3` (or `HHPPPPRRR`, the same thing) runs its steps in the order written on the grid
t_i = i / N, N = the number of steps, passing a cached velocity c from step to step:

- H: d = v(x, t_i); x~ = x + h d; d~ = v(x~, t_i+1); x <- x + h/2 (d + d~); c <- d~        (2 teacher calls)
- P: as H with d = c, the previous step's corrector velocity (an H when no cache yet)     (1 teacher call)
- R: d = c + r(x, t_i, c); x~ = x + h d; d~ = d + r(x~, t_i+1, c); x <- x + h/2 (d + d~); c <- d   (2 refiner calls)

Reusing c costs an O(h^2) change of the point where d is evaluated, hence O(h^3) per step: P keeps second order.
Teacher and refiner calls are counted apart: `.nfe` is the teacher's count, `.refiner_calls` the refiner's.
With `compiled=True` each whole step (its network calls and the update) is one `torch.compile` unit; a compile
failure falls back to eager with a `CompileFallbackWarning`, never silently.
"""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, FlowlibError, describe, require_velocity
from .nfe import CountingVelocity, Velocity, check_noise, ensure_finite

Refiner = Callable[[Tensor, Tensor, Tensor], Tensor]
STEP_KINDS = "HPR"


class ScheduleError(FlowlibError, ValueError):
    """A FlowTurbo schedule string that cannot be run."""


@dataclass(frozen=True)
class Schedule:
    """A sequence of H/P/R steps; `parse` reads `H2P4R3`, `HHPPPPRRR` or interleaved `H1P1R1H1P1R1`."""

    steps: str

    @classmethod
    def parse(cls, text: str) -> "Schedule":
        spec = text.replace(" ", "").upper()
        if not spec:
            raise ScheduleError("Empty FlowTurbo schedule; write steps like 'H2P4R3' (2 Heun, 4 pseudo-corrector, 3 refiner).")
        if not re.fullmatch(r"([HPR]\d*)+", spec):
            raise ScheduleError(f"Malformed FlowTurbo schedule {text!r}: use the letters H, P, R, each optionally followed by "
                                "a count, e.g. 'H2P4R3' or 'HPPPPRRR'.")
        steps = ""
        for kind, count in re.findall(r"([HPR])(\d*)", spec):
            if count and int(count) == 0:
                raise ScheduleError(f"FlowTurbo schedule {text!r} has a zero count ({kind}0); leave the block out instead.")
            steps += kind * (int(count) if count else 1)
        if steps[0] == "R":
            raise ScheduleError(f"FlowTurbo schedule {text!r} starts with R: a refiner step corrects the cached velocity "
                                "of an earlier H or P step, so start with H or P.")
        return cls(steps)

    def __str__(self) -> str:
        """Run-length form, e.g. H2P4R3 (parses back to the same schedule)."""
        return "".join(f"{m.group(0)[0]}{len(m.group(0))}" for m in re.finditer(r"H+|P+|R+", self.steps))

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def count(self, kind: str) -> int:
        return self.steps.count(kind)

    @property
    def teacher_calls(self) -> int:
        """2 per H, 1 per P, plus 1 for a leading P (no cache yet)."""
        return 2 * self.count("H") + self.count("P") + (self.steps[0] == "P")

    @property
    def refiner_calls(self) -> int:
        return 2 * self.count("R")

    @property
    def ordered(self) -> bool:
        """H steps, then P steps, then R steps (the paper's order), as opposed to interleaved blocks."""
        return bool(re.fullmatch(r"H*P*R*", self.steps))


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


class CompileFallbackWarning(RuntimeWarning):
    """torch.compile failed for a step; the sampler runs that step eagerly."""


class CompiledStep:
    """A step function compiled on first use (dynamic batch size), falling back to eager with a warning."""

    def __init__(self, fn: Callable[..., tuple[Tensor, Tensor]], name: str):
        self.eager, self.name = fn, name
        self.compiled = torch.compile(fn, dynamic=True)
        self.error: Exception | None = None
        self.compile_seconds = 0.0
        self._shapes: set[tuple[int, ...]] = set()

    def __call__(self, *args: Tensor) -> tuple[Tensor, Tensor]:
        if self.error is None:
            shape = tuple(args[0].shape)
            first = shape not in self._shapes
            start = time.perf_counter()
            try:
                out = self.compiled(*args)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: warn and run eagerly
                self.error = exc
                warnings.warn(f"torch.compile failed for the FlowTurbo {self.name} step ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); running it eagerly.", CompileFallbackWarning, stacklevel=2)
                return self.eager(*args)
            if first:  # the first call at a batch size compiles (or looks up) its graph
                self.compile_seconds += time.perf_counter() - start
                self._shapes.add(shape)
            return out
        return self.eager(*args)


class FlowTurboSampler:
    """Sample with a FlowTurbo schedule (a `Sampler`: `.nfe` teacher calls, `.name` the schedule).

    `refiner` is required when the schedule has R steps. Compiled samplers of one teacher share their compiled
    steps through `steps`, so each step kind compiles once (see `compiled_steps`).
    """

    def __init__(self, velocity: nn.Module | Velocity, schedule: str | Schedule, refiner: Refiner | None = None, *,
                 compiled: bool = False, steps: dict[str, Callable] | None = None, name: str | None = None,
                 check_finite: bool = True):
        require_velocity("velocity", velocity)
        if not isinstance(schedule, (str, Schedule)):
            raise ArgumentError(f"schedule must be a FlowTurbo schedule such as 'H1P4R2' (or a Schedule), got "
                                f"{describe(schedule)}; the NFE follows from the schedule.")
        if refiner is not None:
            require_velocity("refiner", refiner, arity=3)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule.parse(schedule)
        if self.schedule.count("R") and refiner is None:
            raise ScheduleError(f"Schedule {self.schedule} has refiner steps but no refiner was given; train one "
                                "(flowlib.distill.train_refiner) or drop the R steps.")
        self.velocity, self.refiner, self.compiled = velocity, refiner, compiled
        self.steps = steps if steps is not None else (compiled_steps(velocity, refiner) if compiled else None)
        self.name = name or str(self.schedule) + ("-compiled" if compiled else "")
        self._nfe, self.refiner_calls = self.schedule.teacher_calls, self.schedule.refiner_calls
        self.check_finite = check_finite

    @property
    def nfe(self) -> int:
        return self._nfe

    @torch.no_grad()
    def __call__(self, noise: Tensor) -> Tensor:
        check_noise(noise, self.velocity, f"sampler {self.name!r}")
        if self.compiled:
            out = self._run(noise, self.steps, self.velocity, self.refiner)
            self._nfe, self.refiner_calls = self.schedule.teacher_calls, self.schedule.refiner_calls  # = the eager count
        else:
            teacher, refiner = self._counters(per_call=False)
            out = self._run(noise, None, teacher, refiner)
            self._nfe, self.refiner_calls = teacher.nfe, refiner.nfe if refiner is not None else 0
        ensure_finite(out, lambda: self._run(noise, None, *self._counters(per_call=True)), f"sampler {self.name!r}",
                      self.check_finite)
        return out

    def _counters(self, per_call: bool) -> tuple[CountingVelocity, CountingVelocity | None]:
        teacher = CountingVelocity(self.velocity, self.check_finite, f"the velocity field (sampler {self.name!r})", per_call)
        refiner = (CountingVelocity(self.refiner, self.check_finite, f"the refiner (sampler {self.name!r})", per_call)
                   if self.refiner is not None else None)
        return teacher, refiner

    def _run(self, noise: Tensor, steps: dict[str, Callable] | None, velocity: Velocity, refiner: Refiner | None) -> Tensor:
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


def compiled_steps(velocity: nn.Module | Velocity, refiner: Refiner | None = None) -> dict[str, CompiledStep]:
    """The H, P (and R) steps of one teacher (and refiner), each a `CompiledStep`; share them between samplers."""
    def h(x, t0, t1):
        return heun_step(velocity, x, t0, t1)

    def p(x, cache, t0, t1):
        return pseudo_step(velocity, x, cache, t0, t1)

    steps = {"H": CompiledStep(h, "H"), "P": CompiledStep(p, "P")}
    if refiner is not None:
        def r(x, cache, t0, t1):
            return refiner_step(refiner, x, cache, t0, t1)

        steps["R"] = CompiledStep(r, "R")
    return steps
