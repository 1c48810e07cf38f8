"""The exact teacher: the closed-form velocity of the linear path to a Gaussian mixture."""
import math

import pytest
import torch

from conftest import GaussianField
from flowlib.data import exact_mixture, sample_8gaussians
from flowlib.models import GaussianMixtureVelocity, build_model, ring_mixture
from flowlib.models.mixture import MixtureError
from flowlib.solvers import AdaptiveSampler


def three_d() -> GaussianMixtureVelocity:
    return GaussianMixtureVelocity((3,), [0.2, 0.5, 0.3], [[2.0, 0.0, -1.0], [-1.5, 1.0, 0.5], [0.0, -2.0, 1.5]],
                                   [[0.3, 0.6, 0.4], [0.5, 0.2, 0.7], [0.8, 0.4, 0.3]])


def test_one_component_is_the_single_gaussian_field():
    mix = GaussianMixtureVelocity((2,), [1.0], [[1.0, 1.0]], [0.5])
    field = GaussianField(mu=1.0, sd=0.5)
    x, t = torch.randn(64, 2, dtype=torch.float64), torch.rand(64, dtype=torch.float64)
    assert torch.allclose(mix(x, t), field(x, t), atol=1e-6)


def test_continuity_equation_by_finite_differences():
    """∂p_t/∂t + ∇·(p_t v) = 0 at a few points, with central differences in t and in each coordinate."""
    mix = three_d().double()
    torch.manual_seed(0)
    h = 1e-4

    def density(y, s):
        return mix.log_prob(y[None], s).exp()[0]

    def flux(y, s, i):
        return density(y, s) * mix(y[None], torch.tensor([s], dtype=torch.float64))[0, i]

    for x, t in zip(torch.randn(6, 3, dtype=torch.float64), [0.1, 0.3, 0.45, 0.6, 0.8, 0.95]):
        dp_dt = (density(x, t + h) - density(x, t - h)) / (2 * h)
        div = sum((flux(x + e, t, i) - flux(x - e, t, i)) / (2 * h) for i, e in enumerate(torch.eye(3, dtype=torch.float64) * h))
        scale = abs(float(dp_dt)) + abs(float(div)) + 1e-12
        assert abs(float(dp_dt + div)) < 1e-5 * scale + 1e-10, (t, float(dp_dt), float(div))


def test_matches_a_monte_carlo_conditional_expectation():
    """v(x, t) = E[x1 − x0 | x_t = x], estimated without the formula: draw x1 from the data; the noise that puts x_t at x
    is x0 = (x − t x1) / (1 − t), so weighting each draw by the noise density N(x0; 0, I) gives the posterior. The
    self-normalised estimate agrees within 4 standard errors (from its effective sample size)."""
    mix = three_d().double()
    x1 = mix.sample(1_000_000, torch.Generator().manual_seed(1)).double()
    for t in (0.3, 0.7):
        for query in (torch.tensor([0.5, 0.2, -0.2], dtype=torch.float64), torch.tensor([-0.5, 0.4, 0.3], dtype=torch.float64)):
            x0 = (query - t * x1) / (1 - t)
            logw = -0.5 * (x0**2).sum(1)
            w = (logw - logw.max()).exp()
            target = x1 - x0
            estimate = (w[:, None] * target).sum(0) / w.sum()
            n_eff = w.sum() ** 2 / (w**2).sum()
            se = ((w[:, None] * (target - estimate) ** 2).sum(0) / w.sum()).sqrt() / n_eff.sqrt()
            exact = mix(query[None], torch.tensor([t], dtype=torch.float64))[0]
            assert n_eff > 1000 and (se < 0.05).all()
            assert ((estimate - exact).abs() < 4 * se).all(), (t, estimate, exact, se)


def test_ode_endpoint_has_the_mixtures_mean_and_covariance():
    mix = three_d()
    noise = torch.randn(20_000, 3, generator=torch.Generator().manual_seed(2))
    out = AdaptiveSampler(mix, 1e-6, 1e-6)(noise).double()
    w, mu, sd = mix.log_weights.exp().double(), mix.means.double(), mix.scales.double()
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (torch.diag_embed(sd**2) + mu[:, :, None] * mu[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None, :]
    assert torch.allclose(out.mean(0), mean, atol=0.04)
    assert torch.allclose(torch.cov(out.T), cov, atol=0.08)


def test_ring_is_the_8gaussians_dataset_and_rebuilds_from_its_config():
    ring = exact_mixture("8gaussians")
    gen = torch.Generator().manual_seed(3)
    a, b = ring.sample(100_000, gen), sample_8gaussians(100_000, gen)
    assert torch.allclose(a.mean(0), b.mean(0), atol=0.03)
    assert torch.allclose(torch.cov(a.T), torch.cov(b.T), atol=0.06)
    rebuilt = build_model((2,), ring.config())
    x, t = torch.randn(16, 2), torch.rand(16)
    assert torch.equal(rebuilt(x, t), ring(x, t))
    assert sum(p.numel() for p in ring.parameters()) == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": [1.0], "means": [[0.0, 0.0]], "scales": [0.0]}, "scales positive"),
    ({"weights": [1.0, 1.0], "means": [[0.0, 0.0]], "scales": [1.0]}, "means must be"),
    ({"weights": [1.0], "means": [[0.0, 0.0, 0.0]], "scales": [1.0]}, "cannot model samples of shape"),
])
def test_bad_mixtures_are_refused(kwargs, match):
    with pytest.raises(MixtureError, match=match):
        GaussianMixtureVelocity((2,), **kwargs)


def test_density_integrates_to_one():
    ring = ring_mixture().double()
    grid = torch.linspace(-6, 6, 241, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    for t in (0.0, 0.5, 1.0):
        mass = ring.log_prob(points, t).exp().sum() * (grid[1] - grid[0]) ** 2
        assert math.isclose(float(mass), 1.0, abs_tol=1e-3)
