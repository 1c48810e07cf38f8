"""Counting network evaluations (NFE) by wrapping the velocity field, never by formula."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]


class CountingVelocity:
    """Wraps v(x, t) (or any net, e.g. a refiner r(x, t, v)) and counts its calls: one call on a batch is one NFE."""

    def __init__(self, velocity: Velocity):
        self.velocity = velocity
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        self.nfe += 1
        return self.velocity(x, t, *rest)
