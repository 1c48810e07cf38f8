"""Explicit Runge-Kutta solvers (Euler, midpoint, Heun, RK4) over an arbitrary increasing time grid.

One Butcher tableau per method drives a single step function, so a Bellman grid or a learned grid needs
no new solver: `solve(v, x0, grid, method)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..errors import ArgumentError
from ..names import SOLVERS
from .grids import as_time_grid
from .nfe import Velocity


@dataclass(frozen=True)
class ButcherTableau:
    """c (nodes), a (strictly lower-triangular rows), b (weights) of an explicit RK method."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    @property
    def stages(self) -> int:
        return len(self.b)


TABLEAUS: dict[str, ButcherTableau] = {
    "euler": ButcherTableau(c=(0.0,), a=((),), b=(1.0,)),
    "midpoint": ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0)),
    "heun": ButcherTableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5)),
    "rk4": ButcherTableau(
        c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6)
    ),
}
METHODS = SOLVERS  # one tableau per name the configuration accepts (flowlib.names)
assert tuple(TABLEAUS) == METHODS, "flowlib.names.SOLVERS and TABLEAUS must list the same solvers"


def get_tableau(method: str) -> ButcherTableau:
    """The tableau of `method`, or a clear error listing the known methods."""
    try:
        return TABLEAUS[method]
    except KeyError:
        raise ArgumentError(f"Unknown solver method {method!r}; choose one of {', '.join(METHODS)}.") from None


def _combine(x: Tensor, h: Tensor | float, coeffs: Sequence[float], ks: Sequence[Tensor]) -> Tensor:
    """x + h * sum_j coeffs[j] k_j, skipping zero coefficients."""
    out = x
    for coef, k in zip(coeffs, ks):
        if coef != 0.0:
            out = out + (h * coef) * k
    return out


def rk_step(velocity: Velocity, x: Tensor, t0: Tensor, t1: Tensor, tableau: ButcherTableau) -> Tensor:
    """One explicit RK step from t0 to t1 (scalars); `velocity` sees t as a [batch] tensor."""
    h = (t1 - t0).to(x.dtype)
    t0 = t0.to(x.dtype)
    batch = x.shape[0]
    ks: list[Tensor] = []
    for c, a_row in zip(tableau.c, tableau.a):
        x_stage = _combine(x, h, a_row, ks)
        ks.append(velocity(x_stage, (t0 + c * h).expand(batch)))
    return _combine(x, h, tableau.b, ks)


def solve(
    velocity: Velocity,
    x0: Tensor,
    time_grid: Tensor | Sequence[float],
    method: str = "euler",
    return_trajectory: bool = False,
) -> Tensor:
    """Integrate dx/dt = v(x, t) from `time_grid[0]` to `time_grid[-1]` with a fixed-grid RK method.

    Returns the final state, or with `return_trajectory` the state at every grid point stacked on a new
    first axis (length len(time_grid)).

    Args:
        velocity: v(x, t); x0: the state at time_grid[0]; time_grid: increasing times; method: the RK tableau;
        return_trajectory: also return every intermediate state.

    Returns:
        x at time_grid[-1], or the states at every grid time stacked on a new first axis.

    >>> solve(lambda x, t: torch.ones_like(x), torch.zeros(1, 1), [0.0, 0.5, 1.0], "heun")
    tensor([[1.]])
    """
    tableau = get_tableau(method)
    grid = as_time_grid(time_grid).to(x0.device)
    x = x0
    trajectory = [x0] if return_trajectory else None
    for i in range(grid.numel() - 1):
        x = rk_step(velocity, x, grid[i], grid[i + 1], tableau)
        if trajectory is not None:
            trajectory.append(x)
    return torch.stack(trajectory) if trajectory is not None else x
