"""Bespoke solvers (Shaul et al., ICLR 2024): a base RK1 (Euler) or RK2 (midpoint) solver run in a learned
scale-time coordinate system x̄(r) = s_r · x(t_r), r ∈ [0, 1] (notebook 03_bespoke, Method).

In the new coordinates the ODE is dx̄/dr = ū_r(x̄) = (ṡ_r / s_r) x̄ + ṫ_r s_r u_{t_r}(x̄ / s_r), and one base step
of size h = 1/n in r, mapped back to x, gives (RK1, n NFE)

    x_{i+1} = [(s_i + h ṡ_i) x_i + h ṫ_i s_i u_{t_i}(x_i)] / s_{i+1}

and (RK2 midpoint, 2n NFE, with z_i = x̄ at the half point i + ½)

    z_i     = (s_i + h/2 ṡ_i) x_i + h/2 s_i ṫ_i u_{t_i}(x_i)
    x_{i+1} = [s_i x_i + h (ṡ_{i+½} / s_{i+½} z_i + ṫ_{i+½} s_{i+½} u_{t_{i+½}}(z_i / s_{i+½}))] / s_{i+1}.

The parameters are the values t_j, ṫ_j, s_j, ṡ_j at the M + 1 points r_j = j / M of the r grid (M = n for RK1;
M = 2n for RK2, whose half points are grid points too). They are made admissible by construction:

- t: increments softplus(a_j), the last one fixed at 1, normalised by their sum: 0 = t_0 < t_1 < ... < t_M = 1
  exactly (M − 1 free numbers, since only the ratios of the increments matter);
- ṫ_j = softplus(b_j) > 0 at j = 0 … M − 1 (M numbers);
- s_0 = 1 fixed, s_j = softplus(c_j) > 0 at j = 1 … M (M numbers);
- ṡ_j = d_j free at j = 0 … M − 1 (M numbers).

So RK1 has 4n − 1 parameters and RK2 8n − 1. ṫ and ṡ are free, not finite differences of t and s. Raw values
of log(e − 1) (softplus⁻¹ 1) and d = 0 are the identity: the base solver on the uniform grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, describe
from ..layout import bespoke_name
from .nfe import Velocity
from .samplers import CountingSampler

BASES = {"rk1": 1, "rk2": 2}  # stages (network calls) per step
BESPOKE_BASE_METHOD = {"rk1": "euler", "rk2": "midpoint"}  # the flowlib RK method each base is
Transform = Callable[[Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]  # r -> (t_r, s_r, ṫ_r, ṡ_r)


def inverse_softplus(y: Tensor) -> Tensor:
    """softplus⁻¹(y) = y + log(1 − e^{−y}) for y > 0."""
    return y + torch.log(-torch.expm1(-y))


@dataclass
class ScaleTime:
    """The admissible values of a Bespoke solver on its r grid: t, s at the M + 1 points; ṫ, ṡ at the first M."""

    t: Tensor
    s: Tensor
    t_dot: Tensor
    s_dot: Tensor


def cosine_transform(r: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The scale-time map of a change of scheduler, linear path (α = t, σ = 1 − t) → cosine path (α = sin θ,
    σ = cos θ, θ = πr/2): t_r = sin θ / (sin θ + cos θ), s_r = sin θ + cos θ."""
    theta = 0.5 * math.pi * r
    sin, cos = torch.sin(theta), torch.cos(theta)
    return sin / (sin + cos), sin + cos, 0.5 * math.pi / (sin + cos) ** 2, 0.5 * math.pi * (cos - sin)


def piecewise_linear_transform(solver: "BespokeSolver") -> Transform:
    """The scale-time map through a solver's t and s, linear between its grid points (ṫ, ṡ: the segment's slope).

    It is smooth inside each segment, so a solver refined m-fold (m ≥ 2 for RK2, whose steps then never straddle a
    segment) is a smooth-transform solver and must converge at the base order: the consistency check on a teacher.
    """
    with torch.no_grad():
        v = solver.values()
    m = solver.points
    t, s = v.t.detach(), v.s.detach()

    def transform(r: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        seg = torch.clamp(torch.floor(r * m + 1e-9).long(), 0, m - 1)
        frac = r * m - seg
        dt, ds = t[seg + 1] - t[seg], s[seg + 1] - s[seg]
        return t[seg] + frac * dt, s[seg] + frac * ds, dt * m, ds * m

    return transform


class BespokeSolver(nn.Module):
    """The learnable part of a Bespoke solver: base ("rk1" or "rk2") and n steps; see the module docstring.

    Args:
        base: rk1 | rk2, the base solver; n: the number of steps (NFE = n for rk1, 2n for rk2).

    >>> solver = BespokeSolver("rk2", 4)   # starts as the identity transform: plain RK2 (midpoint)
    >>> solver.nfe, solver.name
    (8, 'bespoke-rk2')
    """

    def __init__(self, base: str, n: int):
        super().__init__()
        if base not in BASES:
            raise ArgumentError(f"Unknown Bespoke base solver {base!r}; choose one of {', '.join(BASES)}.")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ArgumentError(f"A Bespoke solver needs a positive integer number of steps, got n={n!r}.")
        self.base, self.n = base, n
        m = self.points
        one = float(inverse_softplus(torch.tensor(1.0, dtype=torch.float64)))
        self.t_raw = nn.Parameter(torch.full((m - 1,), one, dtype=torch.float64))
        self.t_dot_raw = nn.Parameter(torch.full((m,), one, dtype=torch.float64))
        self.s_raw = nn.Parameter(torch.full((m,), one, dtype=torch.float64))
        self.s_dot = nn.Parameter(torch.zeros(m, dtype=torch.float64))

    # ---------------------------------------------------------------------------------------- structure
    @property
    def stages(self) -> int:
        return BASES[self.base]

    @property
    def points(self) -> int:
        """M, the number of intervals of the r grid (n for RK1, 2n for RK2)."""
        return self.n * self.stages

    @property
    def nfe(self) -> int:
        return self.n * self.stages

    @property
    def name(self) -> str:
        return bespoke_name(self.base)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def values(self) -> ScaleTime:
        """t, s, ṫ, ṡ from the raw parameters (differentiable; admissible for any raw values)."""
        fixed = torch.ones(1, dtype=self.t_raw.dtype, device=self.t_raw.device)
        inc = torch.cat([nn.functional.softplus(self.t_raw), fixed])
        inner = torch.cumsum(inc, 0)[:-1] / inc.sum()
        t = torch.cat([inc.new_zeros(1), inner, inc.new_ones(1)])
        s = torch.cat([fixed, nn.functional.softplus(self.s_raw)])
        return ScaleTime(t=t, s=s, t_dot=nn.functional.softplus(self.t_dot_raw), s_dot=self.s_dot)

    @classmethod
    def from_transform(cls, base: str, n: int, transform: Transform) -> "BespokeSolver":
        """The solver whose values are a smooth scale-time map sampled at the grid points (e.g.
        `cosine_transform`): a training-free solver, and the family's consistency check."""
        solver = cls(base, n)
        r = torch.linspace(0.0, 1.0, solver.points + 1, dtype=torch.float64)
        t, s, t_dot, s_dot = transform(r)
        inc = t.diff()
        if (inc <= 0).any() or (t_dot[:-1] <= 0).any() or (s <= 0).any() or abs(float(s[0]) - 1) > 1e-12:
            raise ArgumentError("A scale-time transform needs t increasing, ṫ > 0, s > 0 and s_0 = 1.")
        with torch.no_grad():
            solver.t_raw.copy_(inverse_softplus(inc[:-1] / inc[-1]))
            solver.t_dot_raw.copy_(inverse_softplus(t_dot[:-1]))
            solver.s_raw.copy_(inverse_softplus(s[1:]))
            solver.s_dot.copy_(s_dot[:-1])
        return solver

    # -------------------------------------------------------------------------------------------- steps
    def step(self, velocity: Velocity, x: Tensor, i: Tensor | int, v: ScaleTime | None = None) -> Tensor:
        """Step i from x ≈ x(t_i) to x(t_{i+1}); `i` is an int or one step index per row of `x` (so every step of
        every trajectory can run in one batch, as the training loss does)."""
        v = v or self.values()
        batch = x.shape[0]
        i = torch.as_tensor(i, device=x.device).long().expand(batch) if not torch.is_tensor(i) or i.dim() == 0 else i
        h = 1.0 / self.n
        j = i * self.stages

        def at(values: Tensor, index: Tensor) -> Tensor:
            return values[index].to(x.dtype).view(batch, *([1] * (x.dim() - 1)))

        s0, s1 = at(v.s, j), at(v.s, j + self.stages)
        u0 = velocity(x, v.t[j].to(x.dtype))
        if self.base == "rk1":
            return ((s0 + h * at(v.s_dot, j)) * x + (h * s0 * at(v.t_dot, j)) * u0) / s1
        half = j + 1
        s_half = at(v.s, half)
        z = (s0 + 0.5 * h * at(v.s_dot, j)) * x + (0.5 * h * s0 * at(v.t_dot, j)) * u0
        u_half = velocity(z / s_half, v.t[half].to(x.dtype))
        return (s0 * x + h * (at(v.s_dot, half) / s_half * z + at(v.t_dot, half) * s_half * u_half)) / s1

    def solve(self, velocity: Velocity, noise: Tensor) -> Tensor:
        """All n steps from x(0) = noise; differentiable in the parameters (the sampler runs it without grad)."""
        v, x = self.values(), noise
        for i in range(self.n):
            x = self.step(velocity, x, i, v)
        return x

    def lipschitz(self, l_tau: float = 1.0, v: ScaleTime | None = None) -> Tensor:
        """Per-step Lipschitz bounds L_i, with L_ū(r) = |ṡ_r| / s_r + ṫ_r L_τ (L_τ replaces the network's bound):
        RK1 L_i = s_i / s_{i+1} (1 + h L_ū,i); RK2 L_i = s_i / s_{i+1} (1 + h L_ū,i+½ (1 + h/2 L_ū,i))."""
        v = v or self.values()
        h = 1.0 / self.n
        l_bar = v.s_dot.abs() / v.s[:-1] + v.t_dot * l_tau
        ratio = v.s[:-1:self.stages] / v.s[self.stages::self.stages]
        if self.base == "rk1":
            return ratio * (1 + h * l_bar)
        return ratio * (1 + h * l_bar[1::2] * (1 + 0.5 * h * l_bar[0::2]))

    def error_weights(self, l_tau: float = 1.0, v: ScaleTime | None = None) -> Tensor:
        """M_{i+1} = Π_{j > i} L_j, so the final error is at most Σ_i M_{i+1} d_i (M_n = 1: the last step)."""
        lips = self.lipschitz(l_tau, v)
        tail = torch.flip(torch.cumprod(torch.flip(lips, [0]), 0), [0])  # Π_{j ≥ i} L_j
        return torch.cat([tail[1:], tail.new_ones(1)])

    def describe(self) -> dict[str, list[float]]:
        """The values as plain lists (r, t, s at every grid point), for tables and plots."""
        with torch.no_grad():
            v = self.values()
        r = torch.linspace(0.0, 1.0, self.points + 1, dtype=torch.float64)
        return {"r": r.tolist(), "t": v.t.tolist(), "s": v.s.tolist()}


class BespokeSampler(CountingSampler):
    """A Bespoke solver on a velocity field as a `Sampler` (`.nfe` counted, `.name` like `bespoke-rk2`).

    Args:
        velocity: v(x, t); solver: a (trained) `BespokeSolver`; name: default the solver's name;
        check_finite: check the samples for NaN/inf; compiled: run the solve as one torch.compile unit.

    >>> sampler = BespokeSampler(lambda x, t: -x, BespokeSolver("rk1", 4))
    >>> sampler(torch.ones(2, 1)).shape, sampler.nfe
    (torch.Size([2, 1]), 4)
    """

    def __init__(self, velocity: Velocity, solver: BespokeSolver, name: str | None = None, check_finite: bool = True,
                 compiled: bool = False):
        super().__init__(velocity, check_finite, compiled)
        if not isinstance(solver, BespokeSolver):
            raise ArgumentError(f"solver must be a trained BespokeSolver (flowlib.fit_bespoke(...).solver, or "
                                f"flowlib.distill.bespoke.load_bespoke(path)), got {describe(solver)}.")
        self.solver = solver
        self.name = name or solver.name
        self._nfe = solver.nfe

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Velocity | None = None) -> Tensor:
        return self.solver.solve(velocity, noise)
