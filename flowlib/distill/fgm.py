"""Flow Generator Matching: distil a flow teacher into a one-step generator, without data.

Convention (flowlib): t = 0 noise ε, t = 1 data. The paper puts data at t = 0; every FGM loss is built from
differences of velocities, whose global sign flip cancels, so the losses keep their form with t -> 1 - t.

- Generator: x1 = g(z) = z + (1 - t*) f(z, t*), f a velocity net initialised from the teacher; at t* = 0 and
  teacher weights, g is the teacher's one-step Euler sampler.
- The generator's samples define their own path x_t = (1 - t) ε + t x1 and an implicit velocity field v_θ. The goal
  is v_θ = v_T at every t. v_θ is intractable, so an *online* flow model v_ψ (initialised from the teacher) learns it
  by plain flow matching on detached generator samples.
- Generator loss (the flow-product identity; the paper trains on L₂ alone):
      L₂ = E 2 <v_T(x_t, t) - v_ψ(x_t, t), v_ψ(x_t, t) - (x1 - ε)>,   L₁ = E ||v_T(x_t, t) - v_ψ(x_t, t)||²,
  with x1 = g(z) and x_t keeping their gradient: it flows through the *inputs* of the frozen teacher and online
  model into θ, never into their weights. With v_ψ the exact implicit field, ∇(L₁ + L₂) = ∇ E||v_θ - v_T||².
- One iteration: an online step, then a generator step (separate optimisers, 1 : 1); the trainer's loop takes both,
  the online model as its `Partner`.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..artifacts import load_checkpoint
from ..device import device_of, shard
from ..errors import ArgumentError, describe, require_number, require_velocity
from ..flow import (
    Partner,
    PartnerLog,
    TrainConfig,
    TrainData,
    TrainResult,
    check_training_args,
    data_parallel,
    distributed,
    flow_matching_loss,
    identity,
    linear_path,
    model_shape,
    rebuild_net,
    require_data,
    save_velocity_model,
    train,
    trainable_copy,
)
from ..solvers.nfe import CountingVelocity, Velocity
from ..solvers.samplers import CountingSampler
from ..train_data import NoiseShape


class OneStepGenerator(nn.Module):
    """g(z) = z + (1 - t*) f(z, t*): one Euler step of the velocity net `f` from time `t_star` to 1.

    Args:
        f: a velocity network (the generator's body); t_star: the time its single Euler step starts from.

    >>> from flowlib.models import MLPVelocity
    >>> g = OneStepGenerator(MLPVelocity((2,), hidden=16, depth=2, time_dim=8), 0.1)
    >>> g(torch.randn(4, 2)).shape
    torch.Size([4, 2])
    """

    def __init__(self, f: nn.Module, t_star: float = 0.0):
        super().__init__()
        if not 0.0 <= t_star < 1.0:
            raise ArgumentError(f"t_star must lie in [0, 1), got {t_star}.")
        self.f, self.t_star = f, float(t_star)

    def forward(self, z: Tensor) -> Tensor:
        t = torch.full((z.shape[0],), self.t_star, dtype=z.dtype, device=z.device)
        return z + (1.0 - self.t_star) * self.f(z, t)

    @classmethod
    def from_teacher(cls, teacher: nn.Module, t_star: float = 0.0) -> "OneStepGenerator":
        """A trainable copy of the teacher as f (the paper's initialisation)."""
        return cls(trainable_copy(teacher), t_star)


class GeneratorField(nn.Module):
    """A one-step generator seen as a field g(z, t) = g(z) (t unused), so it runs through the sampler base."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        inner = getattr(generator, "f", generator)
        self.shape = getattr(inner, "shape", None)  # the data shape of a flowlib net, for the noise check

    def forward(self, z: Tensor, t: Tensor) -> Tensor:
        return self.generator(z)


class GeneratorSampler(CountingSampler):
    """A one-step generator as a `Sampler`: one generator call per batch (counted, like every sampler's NFE),
    deterministic for fixed noise. The noise is checked against the generator's network (dtype, data shape) and the
    samples for shape and NaN/inf (`check_finite`); the generator runs in eval mode during the call, and the caller's
    module is left in the mode it was in.

    Args:
        generator: a one-step generator network; name; check_finite; compiled: compile the generator call.

    >>> from flowlib.models import MLPVelocity
    >>> sampler = GeneratorSampler(OneStepGenerator(MLPVelocity((2,), hidden=16, depth=2, time_dim=8), 0.1))
    >>> sampler(torch.randn(4, 2)).shape, sampler.nfe
    (torch.Size([4, 2]), 1)
    """

    def __init__(self, generator: nn.Module, name: str = "fgm", check_finite: bool = True, compiled: bool = False):
        if not isinstance(generator, nn.Module):
            raise ArgumentError(f"generator must be a one-step generator network, e.g. OneStepGenerator(net, t_star) or "
                                f"load_generator(path), got {describe(generator)}.")
        super().__init__(GeneratorField(generator), check_finite, compiled)
        self.generator, self.name, self._nfe = generator, name, 1

    def __call__(self, noise: Tensor) -> Tensor:
        with evaluating(self.generator):
            return super().__call__(noise)

    def integrate(self, velocity: Velocity, noise: Tensor, refiner: Velocity | None = None) -> Tensor:
        return velocity(noise, torch.ones(len(noise), dtype=noise.dtype, device=noise.device))


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Put a module in eval mode for a block, restoring each submodule's own mode afterwards (free when the module is
    already in eval mode)."""
    if not module.training:
        yield module
        return
    modes = [m.training for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in zip(module.modules(), modes):
            m.training = mode


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Turn off `requires_grad` of a module's weights for a block (gradients still flow through its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def generator_loss(x1: Tensor, eps: Tensor, t: Tensor, teacher: Velocity, online: Velocity,
                   l1_weight: float = 0.0) -> Tensor:
    """λ L₁ + L₂ on generator samples `x1` (with their gradient), noise `eps` and times `t` (mean over dims and batch).

    Computed in float32 (the inner product of near-equal velocity differences cancels). The value is not progress
    (it can be negative); only its gradient is.
    """
    x1, eps = x1.float(), eps.float()
    xt, target = linear_path(eps, x1, t.float())
    v_teacher, v_online = teacher(xt, t.float()).float(), online(xt, t.float()).float()
    gap = v_teacher - v_online
    loss = 2 * (gap * (v_online - target)).mean()
    if l1_weight:
        loss = loss + l1_weight * gap.pow(2).mean()
    return loss


def online_loss(generator: nn.Module, online: nn.Module, rng: torch.Generator, batch_size: int,
                shape: tuple[int, ...]) -> Tensor:
    """The online model's flow-matching loss on detached generator samples (the whole global batch is drawn;
    `flow_matching_loss` keeps this process's share of it): the trainer's loop applies it before each generator step."""
    with torch.no_grad():
        x1 = generator(torch.randn(batch_size, *shape, generator=rng).to(device_of(online)))
    return flow_matching_loss(online, x1, rng)


def generator_step_loss(generator: nn.Module, rng: torch.Generator, *, teacher: Velocity, online: nn.Module,
                        batch_size: int, shape: tuple[int, ...], l1_weight: float = 0.0,
                        t_max: float = 1.0 - 1e-3) -> Tensor:
    """The generator's loss on fresh noise, data-side noise and times, with the online model frozen (its weights get
    no gradient; the gradient flows through its input into the generator)."""
    device = device_of(online)
    z, eps = torch.randn(batch_size, *shape, generator=rng), torch.randn(batch_size, *shape, generator=rng)
    t = t_max * torch.rand(batch_size, generator=rng)
    z, eps, t = shard(z.to(device), eps.to(device), t.to(device))
    with frozen(online):
        return generator_loss(generator(z), eps, t, teacher, online, l1_weight)


def train_fgm(teacher: Velocity, generator: OneStepGenerator, data: TrainData[NoiseShape], config: TrainConfig, *,
              online_lr: float | None = None, l1_weight: float = 0.0, online: nn.Module | None = None,
              ckpt_dir: Any = None, progress: bool = True, run_config: dict | None = None,
              callback: Callable[[int, nn.Module], None] | None = None,
              validate: Callable[[nn.Module], float] | None = None) -> TrainResult:
    """Train `generator` by FGM against the frozen `teacher` (a network or any velocity callable); the online model
    starts as a copy of the teacher, or of `online` (required when the teacher has no weights). Returns the trainer's
    result (generator, its EMA, loss history) with the online model's loss history in `extras["online_history"]`.

    Data-free: `data.source` is the data shape, and the only inputs are Gaussian noise draws of `data.batch_size`.
    Adam with β = (0, 0.999) for both players (as SiD and the public FGM-style code use), the generator's schedule and
    EMA from `config`. `validate(generator) -> score` (lower is better, e.g. the distance of its samples to the teacher's
    distribution) drives the trainer's stopping rule.

    Args:
        teacher: v(x, t); generator: a `OneStepGenerator`; data: a `TrainData` of the data shape; config: a
        `TrainConfig`; online_lr, l1_weight, online, callback, validate: as described above; ckpt_dir: resume folder.

    Returns:
        The `TrainResult` of the generator (`extras["online_history"]`: the online model's losses).

    >>> from flowlib import TrainConfig, TrainData, ring_mixture
    >>> from flowlib.models import MLPVelocity
    >>> g = OneStepGenerator(MLPVelocity((2,), hidden=16, depth=2, time_dim=8), 0.1)
    >>> result = train_fgm(ring_mixture(), g, TrainData((2,), 16), TrainConfig(steps=2, warmup=0),
    ...                    online=MLPVelocity((2,), hidden=16, depth=2, time_dim=8), progress=False)
    >>> result.steps, len(result.extras["online_history"]) >= 0
    (2, True)
    """
    check_training_args(generator, config, "generator")
    require_data(data, "train_fgm", NoiseShape)
    shape, batch_size = data.source.shape, data.batch_size
    if not isinstance(generator, OneStepGenerator):
        raise ArgumentError(f"generator must be a OneStepGenerator (e.g. OneStepGenerator.from_teacher(teacher, 0.1)), "
                            f"got {type(generator).__name__}.")
    require_velocity("teacher", teacher)
    for name, net in (("generator", generator.f), ("teacher", teacher), ("online", online)):
        if model_shape(net) not in (None, shape):
            raise ArgumentError(f"train_fgm: data.source is the data shape {shape} but the {name} models data of shape "
                                f"{model_shape(net)}; give the shape the networks were built for.")
    require_number("l1_weight", l1_weight, 0)
    if online_lr is not None:
        require_number("online_lr", online_lr, 0, low_open=True)
    if isinstance(teacher, nn.Module):
        teacher = teacher.eval().requires_grad_(False)
    online = trainable_copy(teacher, online)
    run = {"fgm": True, "l1_weight": l1_weight, "t_star": generator.t_star, "teacher": identity(teacher),
           "batch_size": batch_size, "shape": list(shape), "online_lr": online_lr, **(run_config or {})}
    teacher = CountingVelocity(teacher, name="the teacher (FGM training)")
    optimizer = torch.optim.Adam(online.parameters(), lr=online_lr or config.lr, betas=(0.0, 0.999))
    _, world = distributed(device_of(online))
    partner = Partner("online", online, optimizer, partial(online_loss, batch_size=batch_size, shape=shape),
                      PartnerLog(config, "fgm online model", world), data_parallel(online, world))
    loss_fn = partial(generator_step_loss, teacher=teacher, online=online, batch_size=batch_size, shape=shape,
                      l1_weight=l1_weight)
    result = train(generator, loss_fn, config, ckpt_dir, run_config=run, progress=progress, desc="fgm",
                   optimizer_betas=(0.0, 0.999), callback=callback, validate=validate, partner=partner)
    result.extras["online_history"] = partner.log.history
    return result


def save_generator(path: Any, generator: OneStepGenerator, model_config: dict[str, Any], shape: tuple[int, ...],
                   **meta: Any) -> None:
    """Save a generator's net and t* (checksummed, atomic); `model_config` rebuilds the net (the teacher's)."""
    if not isinstance(generator, OneStepGenerator):
        raise ArgumentError(f"generator must be a OneStepGenerator, got {describe(generator)}.")
    save_velocity_model(path, generator.f, model_config, shape, kind="generator", t_star=generator.t_star, **meta)


def load_generator(path: Any, rebuild_hint: str = "") -> OneStepGenerator:
    """Rebuild a generator saved by `save_generator`, in eval mode with gradients off."""
    state = load_checkpoint(path, rebuild_hint, kind="generator")
    return OneStepGenerator(rebuild_net(state, path, rebuild_hint), state["meta"]["t_star"]).eval().requires_grad_(False)
