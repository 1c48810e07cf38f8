"""The exact teacher: the closed-form velocity of the linear path to a Gaussian-mixture data distribution.

Data x1 ~ Σ_k π_k N(μ_k, diag(σ_k²)), noise x0 ~ N(0, I), path x_t = (1 − t) x0 + t x1. Given the component k,
x_t is Gaussian with mean t μ_k and per-coordinate variance s_k²(t) = (1 − t)² + t² σ_k², and the conditional
expectations are linear in x:

    E[x1 − x0 | x_t = x, k] = μ_k + (t σ_k² − (1 − t)) / s_k²(t) · (x − t μ_k).

The marginal velocity is their average under the posterior weights w_k(x, t) ∝ π_k N(x; t μ_k, s_k²(t) I), a
softmax of log-densities. No training error: every gap between a sampler and the ground truth is the sampler's.
The same object samples the data (`sample`) and gives the density of every marginal p_t (`log_prob`).
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Sequence

import torch
from pydantic import Field
from torch import Tensor, nn

from ..errors import FlowlibError, Positive, PositiveReal, checked_args


class MixtureError(FlowlibError, ValueError):
    """Mixture parameters that do not define a distribution."""


class GaussianMixtureVelocity(nn.Module):
    """v(x, t) of the linear path to a Gaussian mixture, in any dimension (a velocity net with no parameters).

    `weights` [K] (normalised here), `means` [K, D], `scales` [K] (isotropic) or [K, D] (per coordinate).
    Built by `build_model(shape, {"arch": "mixture", "weights": ..., "means": ..., "scales": ...})` like the
    trained nets, so it saves and loads through the same checkpoints.

    >>> ring = GaussianMixtureVelocity((2,), [1.0, 1.0], [[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5])
    >>> ring(torch.zeros(1, 2), torch.tensor([0.5]))   # midway, between the two modes: no net pull
    tensor([[0., 0.]])

    Args:
        shape: the data shape, (D,).
        weights: [K] mixture weights (normalised here); means: [K, D]; scales: [K] or [K, D] standard deviations.
    """

    def __init__(self, shape: Sequence[int], weights: Sequence[float], means: Sequence[Sequence[float]],
                 scales: Sequence[float] | Sequence[Sequence[float]]):
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float64)
        mu = torch.as_tensor(means, dtype=torch.float64)
        sd = torch.as_tensor(scales, dtype=torch.float64)
        if mu.dim() != 2 or w.shape != (mu.shape[0],):
            raise MixtureError(f"means must be [K, D] and weights [K]; got means {tuple(mu.shape)}, weights {tuple(w.shape)}.")
        if tuple(shape) != (mu.shape[1],):
            raise MixtureError(f"A mixture of {mu.shape[1]}-D components cannot model samples of shape {tuple(shape)}; "
                               "flatten images to vectors first.")
        if sd.dim() == 1:
            sd = sd[:, None].expand_as(mu)
        if sd.shape != mu.shape:
            raise MixtureError(f"scales must be [K] or [K, D] = {tuple(mu.shape)}, got {tuple(sd.shape)}.")
        if (w < 0).any() or w.sum() <= 0 or (sd <= 0).any() or not (torch.isfinite(mu).all() and torch.isfinite(sd).all()):
            raise MixtureError("weights must be non-negative with a positive sum, scales positive, means finite.")
        self.register_buffer("log_weights", (w / w.sum()).log().float())
        self.register_buffer("means", mu.float())
        self.register_buffer("scales", sd.contiguous().float())
        self.shape = tuple(shape)

    def config(self) -> dict[str, Any]:
        """The `build_model` config that rebuilds this field."""
        return {"arch": "mixture", "weights": self.log_weights.exp().tolist(), "means": self.means.tolist(),
                "scales": self.scales.tolist()}

    def _components(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Per component: log π_k + log N(x; t μ_k, s_k²), and the conditional velocities [B, K, D]."""
        tb = t.to(x.dtype).reshape(-1, 1, 1).expand(x.shape[0], 1, 1)
        mu, sd2 = self.means.to(x.dtype)[None], self.scales.to(x.dtype)[None] ** 2
        var = (1 - tb) ** 2 + tb**2 * sd2                        # [B, K, D]
        diff = x[:, None, :] - tb * mu
        log_n = -0.5 * (diff**2 / var + var.log() + math.log(2 * math.pi)).sum(-1)
        velocity = mu + (tb * sd2 - (1 - tb)) / var * diff
        return self.log_weights.to(x.dtype)[None] + log_n, velocity

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        logits, velocity = self._components(x, t)
        return (torch.softmax(logits, dim=1)[..., None] * velocity).sum(1)

    def log_prob(self, x: Tensor, t: Tensor | float = 1.0) -> Tensor:
        """log p_t(x), the density of the path's marginal at time t (t = 1: the data)."""
        t = torch.as_tensor(t, dtype=x.dtype)
        return torch.logsumexp(self._components(x, t)[0], dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws from the data distribution (t = 1)."""
        which = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator)
        return self.means[which] + self.scales[which] * noise


@checked_args
def ring_mixture(k: Positive = 8, radius: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 4 / 2**0.5,
                 scale: PositiveReal = 0.5 / 2**0.5) -> GaussianMixtureVelocity:
    """K equal Gaussians on a circle (the `8gaussians` dataset: radius 4/√2, std 0.5/√2).

    Args:
        k: number of Gaussians; radius: the circle's radius; scale: each Gaussian's standard deviation.

    Returns:
        The exact velocity field of the linear path from N(0, I) to the mixture (a `GaussianMixtureVelocity`).

    >>> v = ring_mixture()
    >>> v(torch.zeros(3, 2), torch.zeros(3)).shape
    torch.Size([3, 2])
    """
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixtureVelocity((2,), [1.0] * k, means.tolist(), [scale] * k)
