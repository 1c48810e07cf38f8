"""Time grids: 1-D strictly increasing tensors inside [0, 1] (t = 0 noise, t = 1 data)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class GridError(ValueError):
    """A time grid that no solver can integrate over."""


def as_time_grid(time_grid: Tensor | Sequence[float]) -> Tensor:
    """Validate and return the grid as a float64 tensor: 1-D, at least 2 points, finite, strictly increasing."""
    grid = time_grid if isinstance(time_grid, Tensor) else torch.as_tensor(time_grid, dtype=torch.float64)
    if grid.dim() != 1 or grid.numel() < 2:
        raise GridError(f"A time grid must be 1-D with at least 2 points, got shape {tuple(grid.shape)}.")
    if not torch.isfinite(grid).all():
        raise GridError("The time grid contains NaN or inf.")
    steps = grid[1:] - grid[:-1]
    if (steps <= 0).any():
        bad = int(torch.nonzero(steps <= 0)[0])
        raise GridError(
            f"The time grid must be strictly increasing (t=0 is noise, t=1 is data); "
            f"t[{bad}]={grid[bad].item():.6g} >= t[{bad + 1}]={grid[bad + 1].item():.6g}."
        )
    if grid[0] < 0 or grid[-1] > 1:
        raise GridError(f"The time grid must lie in [0, 1], got [{grid[0].item():.6g}, {grid[-1].item():.6g}].")
    return grid


def uniform_grid(steps: int) -> Tensor:
    """`steps` equal intervals from 0 to 1 (steps + 1 points)."""
    if not isinstance(steps, int) or steps < 1:
        raise GridError(f"The number of steps must be a positive integer, got {steps!r}.")
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
