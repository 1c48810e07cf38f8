"""Time grids: 1-D strictly increasing tensors inside [0, 1] (t = 0 noise, t = 1 data).

Every solver takes its grid through `as_time_grid`, so a grid may be given as a tensor of any real dtype, a list
or tuple of numbers, or an int N (N uniform steps). The dtype rule: grids are always float64 (a float32 grid is
widened, its values unchanged), and each step's size is cast to the state's dtype when it is used.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import FlowlibError


class GridError(FlowlibError, ValueError):
    """A time grid that no solver can integrate over.

    >>> from flowlib import as_time_grid
    >>> try:
    ...     as_time_grid([0.5, 0.2])
    ... except GridError:
    ...     print("refused")
    refused
    """


def as_time_grid(time_grid: Tensor | Sequence[float] | int) -> Tensor:
    """Validate and return the grid as a float64 tensor: 1-D, at least 2 points, finite, strictly increasing.

    An int N means `uniform_grid(N)`; a tensor keeps its device and is widened to float64.

    >>> as_time_grid([0, 0.5, 1]).dtype
    torch.float64
    >>> as_time_grid(4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]

    Args:
        time_grid: a tensor, a list of times, or an int number of uniform steps.

    Returns:
        The grid as a float64 tensor, checked to increase strictly within [0, 1].
    """
    if isinstance(time_grid, bool):
        raise GridError("A time grid is a sequence of times or an int number of steps, got a bool.")
    if isinstance(time_grid, int):
        return uniform_grid(time_grid)
    if isinstance(time_grid, float):
        raise GridError(f"A time grid is a sequence of times or an int number of uniform steps, got the float "
                        f"{time_grid!r}; pass an int (e.g. {max(1, round(time_grid))}) or a list of times from 0 to 1.")
    if isinstance(time_grid, Tensor):
        if time_grid.is_complex() or time_grid.dtype == torch.bool:
            raise GridError(f"A time grid must hold real numbers, got dtype {time_grid.dtype}.")
        grid = time_grid.to(torch.float64)
    else:
        try:
            grid = torch.as_tensor(time_grid, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise GridError(f"A time grid must be a sequence of numbers, an int or a tensor, got {time_grid!r}.") from exc
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
    """`steps` equal intervals from 0 to 1 (steps + 1 points).

    Args:
        steps: the number of steps.

    Returns:
        A float64 tensor of `steps + 1` times from 0 to 1.

    >>> uniform_grid(4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise GridError(f"The number of steps must be a positive integer, got {steps!r}.")
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def full_time_grid(time_grid: Tensor | Sequence[float] | int) -> Tensor:
    """`as_time_grid`, and the grid must start at exactly 0 (the noise) and end at exactly 1 (the data): the one rule of
    every sampler's grid, the diffusers bridge's and `export_grid`'s included.

    >>> try:
    ...     full_time_grid([0, 0.3, 0.6])
    ... except GridError as exc:
    ...     print(str(exc)[:35])
    A sampler's time grid must run from
    """
    grid = as_time_grid(time_grid)
    if grid[0] != 0 or grid[-1] != 1:
        raise GridError(f"A sampler's time grid must run from exactly t = 0 (noise) to t = 1 (data), got "
                        f"[{grid[0].item():.6g}, {grid[-1].item():.6g}]: a grid starting later treats the noise as the "
                        "state at that time, one ending earlier returns unfinished samples. For a partial solve call "
                        "flowlib.solve(v, x, grid), which integrates from grid[0] to grid[-1].")
    return grid
