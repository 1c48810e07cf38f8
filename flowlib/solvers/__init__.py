"""Solvers of the teacher ODE: fixed-grid RK family, adaptive reference, samplers."""
from .adaptive import solve_adaptive
from .bellman import EulerRollout, bellman_grid, bellman_values, euler_cost_matrix, euler_rollout, path_cost
from .fixed_grid import METHODS, TABLEAUS, ButcherTableau, rk_step, solve
from .grids import GridError, as_time_grid, uniform_grid
from .nfe import CountingVelocity
from .samplers import AdaptiveSampler, CountingSampler, ODESampler, Sampler

__all__ = [
    "solve", "solve_adaptive", "rk_step", "METHODS", "TABLEAUS", "ButcherTableau", "GridError", "as_time_grid",
    "uniform_grid", "CountingVelocity", "Sampler", "CountingSampler", "ODESampler", "AdaptiveSampler",
    "EulerRollout", "bellman_grid", "bellman_values", "euler_cost_matrix", "euler_rollout", "path_cost",
]
