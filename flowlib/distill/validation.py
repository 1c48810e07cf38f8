"""Validation scores for the trainer's stopping rule: how far a student's few-step samples are from the teacher's
ground truth on held-out noise (lower is better). The same objective the methods are judged on, never the
evaluation noise."""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from ..metrics import rmse
from ..solvers import ODESampler


def euler_rmse(grids: list[Tensor], noise: Tensor, target: Tensor) -> Callable[[nn.Module], float]:
    """A score for a velocity net: the mean over `grids` of the RMSE of Euler on that grid from `noise` to `target`
    (the teacher's ground truth from the same noise)."""

    def score(model: nn.Module) -> float:
        return sum(rmse(ODESampler(model, g, "euler", check_finite=False)(noise), target) for g in grids) / len(grids)

    return score
