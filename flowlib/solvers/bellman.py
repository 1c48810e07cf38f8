"""BOSS, phase 1: Bellman-optimal K-step Euler grids (Nguyen et al., ICLR 2024; notebook 02_boss, Method).

The teacher is rolled out with N-step uniform Euler; c[j, k] is the mean over samples of the squared error
(summed over dims) of one Euler jump from fine point j to k against that fine trajectory. `bellman_grid` finds
the path 0 -> N with exactly K jumps and minimal total cost by dynamic programming, returning **integer
indices** into the fine grid (never look times up by float equality: a recomputed grid or a dtype change breaks the match).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ArgumentError, require_int, require_velocity
from .grids import uniform_grid
from .nfe import CountingVelocity, Velocity, check_noise
from .samplers import ODESampler


@dataclass
class EulerRollout:
    """States x_0..x_N and velocities v_0..v_{N-1} of an N-step uniform Euler solve (first axis = time)."""

    times: Tensor       # [N + 1], float64
    states: Tensor      # [N + 1, B, ...]
    velocities: Tensor  # [N, B, ...]


@torch.no_grad()
def euler_rollout(velocity: Velocity, noise: Tensor, n_fine: int = 100) -> EulerRollout:
    """The teacher's N-step uniform Euler trajectory from `noise`, keeping every state and velocity (every call
    checked for shape and NaN/inf: a cost matrix built on a NaN would pick a meaningless grid)."""
    require_velocity("velocity", velocity)
    check_noise(noise, velocity, "the Bellman rollout")
    require_int("n_fine", n_fine)
    velocity = CountingVelocity(velocity, name="the velocity field (Bellman rollout)")
    times = uniform_grid(n_fine)
    xs, vs = [noise], []
    x = noise
    for j in range(n_fine):
        t = times[j].to(x.dtype).expand(len(x))
        v = velocity(x, t)
        x = x + (times[j + 1] - times[j]).to(x.dtype) * v
        xs.append(x)
        vs.append(v)
    return EulerRollout(times, torch.stack(xs), torch.stack(vs))


def euler_cost_matrix(rollout: EulerRollout) -> Tensor:
    """c[j, k] = mean_i ||x_j + (t_k - t_j) v_j - x_k||^2 for j < k, +inf elsewhere ([N + 1, N + 1], float64).

    The jump to k = j + 1 repeats the rollout's own arithmetic, so c[j, j + 1] is exactly 0.
    """
    times, xs, vs = rollout.times, rollout.states, rollout.velocities
    n = len(times) - 1
    cost = torch.full((n + 1, n + 1), float("inf"), dtype=torch.float64)
    for j in range(n):
        steps = (times[j + 1:] - times[j]).to(xs.dtype).view(-1, *([1] * (xs.dim() - 1)))
        pred = xs[j] + steps * vs[j]                      # [n - j, B, ...]
        err = (pred - xs[j + 1:]).double().flatten(2).pow(2).sum(dim=2).mean(dim=1)
        cost[j, j + 1:] = err
    return cost


def _check_cost_and_k(cost: Tensor, k: int) -> int:
    if cost.dim() != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] < 2:
        raise ArgumentError(f"The cost matrix must be square (N+1) x (N+1) with N >= 1, got shape {tuple(cost.shape)}.")
    n = cost.shape[0] - 1
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ArgumentError(f"K (the number of Euler steps) must be an integer in [1, {n}] for a fine grid of {n} intervals, "
                         f"got {k!r}.")
    return n


def bellman_values(cost: Tensor, k: int) -> Tensor:
    """V[m, j]: minimal cost of reaching N from node j in exactly m jumps (m = 0..k), +inf where impossible."""
    n = _check_cost_and_k(cost, k)
    c = cost.double().clone()
    c[torch.ones_like(c, dtype=torch.bool).tril()] = float("inf")  # only forward jumps j < l
    values = torch.full((k + 1, n + 1), float("inf"), dtype=torch.float64)
    values[0, n] = 0.0
    for m in range(1, k + 1):
        values[m] = (c + values[m - 1][None, :]).min(dim=1).values
    return values


def bellman_grid(cost: Tensor, k: int) -> Tensor:
    """Indices path[0] = 0 < ... < path[k] = N of the cheapest path with exactly k jumps through `cost`.

    Ties go to the first (smallest) next index, as in the official code. Returns a LongTensor of length k + 1.
    """
    n = _check_cost_and_k(cost, k)
    values = bellman_values(cost, k)
    c = cost.double()
    path, node = [0], 0
    for m in range(k, 0, -1):
        candidates = torch.arange(node + 1, n + 1)
        totals = c[node, candidates] + values[m - 1, candidates]
        node = int(candidates[torch.argmin(totals)])  # argmin returns the first minimum
        path.append(node)
    return torch.tensor(path, dtype=torch.long)


def path_cost(cost: Tensor, path: Tensor) -> float:
    """Total cost of a path of grid indices."""
    return float(sum(cost[int(a), int(b)] for a, b in zip(path[:-1], path[1:])))


def bellman_sampler(velocity: Velocity, noise: Tensor, k: int, n_fine: int = 100, **options: bool) -> ODESampler:
    """BOSS's training-free half in one call: Euler on the Bellman grid of `k` steps, chosen from the field's own
    `n_fine`-step rollout of `noise` (use noise that you will not evaluate on). `options`: check_finite, compiled.

    >>> from flowlib.models import ring_mixture
    >>> noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    >>> sampler = bellman_sampler(ring_mixture(), noise, k=4, n_fine=20)
    >>> sampler.nfe, sampler.time_grid[0].item(), sampler.time_grid[-1].item()
    (4, 0.0, 1.0)

    Args:
        velocity: v(x, t); noise: the noise the cost matrix is estimated on; k: steps (NFE); n_fine: the fine grid.

    Returns:
        An `ODESampler` (Euler) on the k-step Bellman grid.
    """
    require_int("k", k)
    rollout = euler_rollout(velocity, noise, n_fine)
    path = bellman_grid(euler_cost_matrix(rollout), k)
    return ODESampler(velocity, rollout.times[path], "euler", name=f"bellman-euler-k{k}", **options)
