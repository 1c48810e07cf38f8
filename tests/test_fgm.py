"""Flow Generator Matching: the gradient identity, the generator, gradient bookkeeping, training and its failures."""
import copy

import pytest
import torch

from flowlib.artifacts import load_checkpoint
from flowlib.distill.fgm import (
    GeneratorSampler,
    OneStepGenerator,
    generator_loss,
    generator_step_loss,
    load_generator,
    online_loss,
    save_generator,
    train_fgm,
)
from flowlib.flow import TrainConfig, TrainData, train_teacher
from flowlib.models import MLPVelocity
from flowlib.solvers import ODESampler
from flowlib.solvers.nfe import NonFiniteError


def test_gradient_identity_on_gaussians(gaussian_field):
    """With the online field equal to the generator's exact implicit field (parameters detached), the gradient of
    L1 + L2 equals the gradient of the flow-matching objective E||v_θ - v_T||² (common random numbers, 1-D)."""
    from conftest import GaussianField

    n = 1_000_000
    gen = torch.Generator().manual_seed(0)
    z, eps, t = torch.randn(n, 1, generator=gen), torch.randn(n, 1, generator=gen), torch.rand(n, generator=gen)
    teacher = GaussianField(mu=1.0, sd=0.5)

    def grads(loss_of):
        a, b = torch.tensor(0.3, requires_grad=True), torch.tensor(0.8, requires_grad=True)
        loss_of(a, b).backward()
        return torch.stack([a.grad, b.grad])

    def surrogate(a, b):  # L1 + L2 with v_sg = the implicit field of g(z) = a + b z, parameters held fixed
        return generator_loss(a + b * z, eps, t, teacher, GaussianField(a.detach(), b.detach()), l1_weight=1.0)

    def objective(a, b):  # E_t E_{x ~ p_θ,t} ||v_θ(x) - v_T(x)||², θ everywhere attached
        xt = (1 - t[:, None]) * eps + t[:, None] * (a + b * z)
        return (GaussianField(a, b)(xt, t) - teacher(xt, t)).pow(2).mean()

    ours, exact = grads(surrogate), grads(objective)
    assert exact.abs().min() > 0.05  # a non-trivial gradient
    torch.testing.assert_close(ours, exact, rtol=0.02, atol=0.0)
    l2_only = grads(lambda a, b: generator_loss(a + b * z, eps, t, teacher, GaussianField(a.detach(), b.detach())))
    assert not torch.allclose(l2_only, exact, rtol=0.02)  # the paper's L2-only loss is not the exact gradient


def _tiny(seed=0):
    torch.manual_seed(seed)
    return MLPVelocity((2,), hidden=16, depth=3, time_dim=8).eval().requires_grad_(False)


def test_generator_at_t0_is_the_teachers_euler_step():
    teacher = _tiny()
    z = torch.randn(32, 2)
    with torch.no_grad():
        ours = OneStepGenerator.from_teacher(teacher, 0.0)(z)
    torch.testing.assert_close(ours, ODESampler(teacher, [0.0, 1.0], "euler")(z))
    assert OneStepGenerator.from_teacher(teacher, 0.2)(z).shape == z.shape
    with pytest.raises(ValueError, match="t_star"):
        OneStepGenerator(teacher, 1.0)


def test_one_step_sampling_is_deterministic(tmp_path):
    generator = OneStepGenerator.from_teacher(_tiny(), 0.1)
    sampler = GeneratorSampler(generator)
    z = torch.randn(16, 2)
    assert sampler.nfe == 1 and torch.equal(sampler(z), sampler(z))
    save_generator(tmp_path / "g.pt", generator, {"arch": "mlp", "hidden": 16, "depth": 3, "time_dim": 8}, (2,))
    loaded = load_generator(tmp_path / "g.pt")
    assert loaded.t_star == 0.1 and torch.equal(GeneratorSampler(loaded)(z), sampler(z))


def _step_gradients(detach_inputs: bool = False):
    teacher = _tiny(0)
    generator = OneStepGenerator.from_teacher(teacher, 0.0)
    online = copy.deepcopy(teacher).requires_grad_(True)
    optimizer, rng = torch.optim.Adam(online.parameters(), lr=1e-3), torch.Generator().manual_seed(0)
    online_loss(generator, online, rng, 64, (2,)).backward()  # the online step the loop takes first: online != teacher
    optimizer.step()
    online.zero_grad(set_to_none=True)  # its own gradients are gone before the generator's backward
    net = (lambda x, t: teacher(x.detach(), t)) if detach_inputs else teacher
    loss = generator_step_loss(generator, rng, teacher=net, online=online, batch_size=64,
                               shape=(2,))
    loss.backward()
    return teacher, online, generator


def test_generator_step_leaves_no_gradient_on_teacher_or_online():
    teacher, online, generator = _step_gradients()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is None for p in online.parameters())
    assert all(p.requires_grad for p in online.parameters())  # unfrozen again for its own step
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_gradient_flows_through_the_teachers_input():
    """Detaching x_t before the teacher (a DMD-like estimator) changes the generator's gradient: FGM needs it."""
    g_full = torch.cat([p.grad.flatten() for p in _step_gradients()[2].parameters()])
    g_detached = torch.cat([p.grad.flatten() for p in _step_gradients(detach_inputs=True)[2].parameters()])
    assert (g_full - g_detached).norm() > 1e-3 * g_full.norm()


def _gaussian_teacher():
    """A small MLP teacher of 2-D data N((1, -0.5), 0.5² I), trained briefly."""
    torch.manual_seed(0)
    model = MLPVelocity((2,), hidden=32, depth=3, time_dim=16)
    mean = torch.tensor([1.0, -0.5])
    result = train_teacher(model, TrainData(lambda n, g: mean + 0.5 * torch.randn(n, 2, generator=g), 256),
                           TrainConfig(steps=400, lr=3e-3, warmup=20, ema_decay=0.9), progress=False)
    return result.ema_model.eval().requires_grad_(False), mean


def _gaussian_distance(samples, mean, sd=0.5):
    """Squared W2 between the samples' per-dimension Gaussian fit and N(mean, sd²)."""
    return float((samples.mean(0) - mean).pow(2).sum() + (samples.std(0) - sd).pow(2).sum())


def test_fgm_moves_a_toy_generator_towards_the_data():
    teacher, mean = _gaussian_teacher()
    z = torch.randn(4000, 2, generator=torch.Generator().manual_seed(9))
    generator = OneStepGenerator.from_teacher(teacher, 0.0)
    before = _gaussian_distance(GeneratorSampler(generator)(z), mean)
    result = train_fgm(teacher, generator, TrainData((2,), 128),
                       TrainConfig(steps=300, lr=1e-3, warmup=20, ema_decay=0.9, log_every=50), progress=False)
    online = result.extras["online_history"]
    after = _gaussian_distance(GeneratorSampler(result.ema_model)(z), mean)
    assert before > 0.1 and after < 0.3 * before, (before, after)  # Euler-1 collapses towards the mean; FGM spreads it
    assert len(online) == 6 and all(torch.isfinite(torch.tensor(v)) for _, v in online)


class FailingTeacher(torch.nn.Module):
    """The teacher, until call `fail_at`: then NaN (or an exception, as a kill would)."""

    def __init__(self, teacher, fail_at, mode="nan"):
        super().__init__()
        self.teacher, self.fail_at, self.mode, self.calls = teacher, fail_at, mode, 0

    def forward(self, x, t):
        self.calls += 1
        if self.calls >= self.fail_at:
            if self.mode == "nan":
                return self.teacher(x, t) * float("nan")
            raise KeyboardInterrupt("killed")
        return self.teacher(x, t)


def _run(teacher, ckpt_dir, steps=6):
    generator = OneStepGenerator.from_teacher(_tiny(0), 0.0)
    config = TrainConfig(steps=steps, lr=1e-3, warmup=1, ckpt_every=2, log_every=1, seed=3)
    return train_fgm(teacher, generator, TrainData((2,), 16), config, online=_tiny(0), ckpt_dir=ckpt_dir, progress=False)


def test_nan_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    with pytest.raises(NonFiniteError, match=r"the teacher \(FGM training\) returned NaN or inf at evaluation 5 "):
        _run(FailingTeacher(_tiny(0), fail_at=5), tmp_path)  # one teacher call per generator step: step 4 fails
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path):
    reference = _run(_tiny(0), tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        _run(FailingTeacher(_tiny(0), fail_at=6, mode="raise"), tmp_path / "cut")
    resumed = _run(_tiny(0), tmp_path / "cut")
    online = resumed.extras["online_history"]
    assert resumed.resumed_from == 4 and [s for s, _ in online] == list(range(1, 7))
    for a, b in zip(resumed.ema_model.parameters(), reference.ema_model.parameters()):
        torch.testing.assert_close(a, b)
