"""Ground truth: the teacher ODE solved by adaptive Dormand-Prince (torchdiffeq's dopri5) at tight tolerance."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import require_number
from .grids import GridError, as_time_grid
from .nfe import CountingVelocity, Velocity


def solve_adaptive(
    velocity: Velocity,
    x0: Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    times: Tensor | Sequence[float] | None = None,
) -> Tensor:
    """Solve from t = 0 to t = 1 with dopri5; returns x(1), or x at every entry of `times` (first axis).

    `times` must start at 0 (the time of `x0`), be increasing and end at most at 1. A plain field is called through
    flowlib's checking layer with a NaN/inf check on every call (dopri5 would otherwise stall on a NaN with
    torchdiffeq's "underflow in dt").

    Args:
        velocity: v(x, t); x0: the state at t = 0; rtol, atol: tolerances; times: where to return states (optional).

    Returns:
        x(1), or the states at `times` stacked on a new first axis.

    >>> round(float(solve_adaptive(lambda x, t: x, torch.ones(1, 1))), 4)   # e
    2.7183
    """
    from torchdiffeq import odeint

    require_number("rtol", rtol, 0, low_open=True)
    require_number("atol", atol, 0, low_open=True)
    t = as_time_grid([0.0, 1.0] if times is None else times).to(device=x0.device, dtype=torch.float64)
    if t[0] != 0:
        raise GridError(f"`times` must start at 0 (the time of x0), got {t[0].item()}.")
    batch = x0.shape[0]
    if not isinstance(velocity, CountingVelocity):
        velocity = CountingVelocity(velocity, name="the velocity field (adaptive dopri5 solve)")

    def rhs(t_scalar: Tensor, x: Tensor) -> Tensor:
        return velocity(x, t_scalar.to(x.dtype).expand(batch))

    out = odeint(rhs, x0, t, rtol=rtol, atol=atol, method="dopri5")
    return out[-1] if times is None else out
