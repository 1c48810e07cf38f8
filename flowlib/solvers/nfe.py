"""Counting network evaluations (NFE) by wrapping the velocity field, never by formula.

The wrapper is also where a user's velocity field is checked: the first call's output must match `x` in shape
and be floating point, and (unless `check_finite=False`) every output must be finite, so a wrong field fails
at the call that went wrong instead of producing silently wrong samples.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]


class VelocityShapeError(ValueError):
    """A velocity field returned an output that cannot be a velocity for its input."""


class NonFiniteError(FloatingPointError):
    """A velocity field (or a sampler step) produced NaN or inf."""


class CountingVelocity:
    """Wraps v(x, t) (or any net, e.g. a refiner r(x, t, v)) and counts its calls: one call on a batch is one NFE.

    The first output is checked against `x` (same shape, a floating dtype); with `check_finite` (the default)
    every output is checked for NaN/inf, and the error names the call and its time. Turn it off for speed
    (one device sync per call) once a field is trusted.

    >>> v = CountingVelocity(lambda x, t: -x)
    >>> _ = v(torch.ones(4, 2), torch.zeros(4)); v.nfe
    1
    >>> try:
    ...     CountingVelocity(lambda x, t: x[:, :1])(torch.ones(4, 2), torch.zeros(4))
    ... except VelocityShapeError as err:
    ...     print(str(err)[:53])
    velocity returned shape (4, 1) for x of shape (4, 2);
    """

    def __init__(self, velocity: Velocity, check_finite: bool = True, name: str = "velocity"):
        self.velocity = velocity
        self.check_finite = check_finite
        self.name = name
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        self.nfe += 1
        out = self.velocity(x, t, *rest)
        if self.nfe == 1:
            check_output(out, x, self.name)
        if self.check_finite and not torch.isfinite(out).all():
            when = float(t.reshape(-1)[0]) if isinstance(t, Tensor) and t.numel() else float(t)
            raise NonFiniteError(
                f"{self.name} returned NaN or inf at evaluation {self.nfe} (t = {when:.4g}) on an input that was "
                f"{'finite' if torch.isfinite(x).all() else 'already non-finite'}. Check the field near that time "
                "(a division by 1 - t or t?), or pass check_finite=False to skip this check.")
        return out


def check_output(out: object, x: Tensor, name: str = "velocity") -> None:
    """Raise `VelocityShapeError` unless `out` is a floating tensor of x's shape (no silent broadcasting)."""
    if not isinstance(out, Tensor):
        raise VelocityShapeError(f"{name} returned {type(out).__name__}, expected a tensor shaped like x {tuple(x.shape)}.")
    if tuple(out.shape) != tuple(x.shape):
        raise VelocityShapeError(f"{name} returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}; a velocity "
                                 "field must return one value per coordinate of x (the same shape).")
    if not out.is_floating_point():
        raise VelocityShapeError(f"{name} returned dtype {out.dtype}; a velocity must be floating point like x ({x.dtype}).")
