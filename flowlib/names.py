"""What params.yaml may name, as plain data: the fixed-grid solvers, diffusers' schedulers and the FlowTurbo schedule
grammar. The configuration checks names against this module without importing the algorithms; the algorithms take
their names from here too, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import FlowlibError

SOLVERS = ("euler", "midpoint", "heun", "rk4")  # flowlib.solvers.fixed_grid.TABLEAUS holds one tableau per name
DIFFUSERS_SCHEDULERS = ("flowmatch-euler", "dpmsolver++2m", "dpmsolver++3m", "unipc")  # flowlib.diffusers_bridge


class ScheduleError(FlowlibError, ValueError):
    """A FlowTurbo schedule string that cannot be run."""


@dataclass(frozen=True)
class Schedule:
    """A sequence of H/P/R steps; `parse` reads `H2P4R3`, `HHPPPPRRR` or interleaved `H1P1R1H1P1R1`.

    Args:
        steps: the step letters, e.g. "HPPP" (use `Schedule.parse` for run-length text).

    >>> s = Schedule.parse("H1P4R2")
    >>> str(s), s.teacher_calls, s.refiner_calls
    ('H1P4R2', 6, 4)
    """

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
