"""Training FlowTurbo's velocity refiner on the teacher's own velocities, a small time step apart.

Per minibatch: data x1, noise x0 and t ~ U(0, 1) per sample give x_t on the linear path; one Δ ~ U(0, Δ_max) for
the whole batch; v = v_T(x_t, t); one teacher Euler step x' = x_t + Δ v. The refiner sees (x', t + Δ, v) and must
turn the stale velocity into the teacher's new one:

    loss = mean || v + r(x', t + Δ, v) - v_T(x', t + Δ) ||²

Two teacher calls (no gradient) and one refiner forward/backward per step; t + Δ may pass 1 (up to 1 + Δ_max),
as in the paper. The shared trainer adds AdamW, warmup, clipping, EMA, NaN checks and resumable checkpoints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..artifacts import load_checkpoint, save_checkpoint
from ..device import device_of, shard
from ..errors import ArgumentError, require_number, require_velocity
from ..flow import (
    TrainConfig,
    TrainData,
    TrainResult,
    check_samples,
    check_training_args,
    data_identity,
    identity,
    linear_path,
    model_shape,
    rebuild_net,
    require_data,
    train,
)
from ..models import VelocityRefiner
from ..solvers.nfe import CountingVelocity, Velocity
from ..train_data import DataSampler


def refiner_loss(refiner: nn.Module, teacher: Velocity, x1: Tensor, delta_max: float,
                 generator: torch.Generator | None = None) -> Tensor:
    """The refiner's regression loss on one minibatch of data `x1` (teacher frozen, no gradient through it)."""
    x0 = torch.randn(x1.shape, generator=generator).to(x1)
    t = torch.rand(x1.shape[0], generator=generator).to(x1)
    delta = float(torch.rand((), generator=generator)) * delta_max
    x0, x1, t = shard(x0, x1, t)  # this process's share of the global batch (all of it outside torchrun)
    xt, _ = linear_path(x0, x1, t)
    with torch.no_grad():
        v = teacher(xt, t)
        x_next = xt + delta * v
        target = teacher(x_next, t + delta)
    return (v + refiner(x_next, t + delta, v) - target).pow(2).mean()


def refiner_val_loss(refiner: nn.Module, teacher: Velocity, x1: Tensor, delta_max: float, seed: int = 0,
                     chunks: int = 8) -> float:
    """The refiner's loss on held-out data `x1`, split into `chunks` batches each with its own Δ, all noise, times and
    Δ drawn from `seed`: the same draws at every call, so scores are comparable across training steps."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        losses = [float(refiner_loss(refiner, teacher, part, delta_max, generator)) for part in x1.chunk(chunks)]
    return sum(losses) / len(losses)


def train_refiner(teacher: Velocity, refiner: nn.Module, data: TrainData[DataSampler], config: TrainConfig, *,
                  delta_max: float,
                  ckpt_dir: str | Path | None = None, progress: bool = True, run_config: dict | None = None) -> TrainResult:
    """Fit `refiner` (zero-initialised) to `teacher` on data minibatches from `data.source(n, generator)`.

    With `data.heldout` and `config.val_every`, training stops at the plateau of `refiner_val_loss` on the held-out
    data (or at the cap `config.steps`) and the best EMA refiner is returned.

    Args:
        teacher: v(x, t); refiner: a `VelocityRefiner`; data: a `TrainData` of a data sampler (and held-out data);
        config: a `TrainConfig`; delta_max: the largest time step it is trained for; ckpt_dir: resume folder;
        run_config: what else decides the result (part of the resume fingerprint).

    Returns:
        A `TrainResult` (its `ema_model` is the refiner to sample with).

    >>> from flowlib import TrainConfig, TrainData, VelocityRefiner, ring_mixture
    >>> from flowlib.data import load_dataset
    >>> ring = load_dataset("8gaussians", n_toy=256)
    >>> r = VelocityRefiner((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    >>> train_refiner(ring_mixture(), r, TrainData(ring.sample_batch, 32), TrainConfig(steps=3, warmup=0),
    ...               delta_max=0.5, progress=False).steps
    3
    """
    check_training_args(refiner, config, "refiner")
    require_velocity("teacher", teacher)
    require_data(data, "train_refiner", DataSampler)
    require_number("delta_max", delta_max, 0, 1, low_open=True)
    sample_batch, batch_size, heldout = data.source.sample, data.batch_size, data.heldout
    if model_shape(teacher) is not None and model_shape(refiner) not in (None, model_shape(teacher)):
        raise ArgumentError(f"train_refiner: the refiner models data of shape {model_shape(refiner)} but the teacher "
                            f"{model_shape(teacher)}; build the refiner for the teacher's shape.")
    checked = teacher if model_shape(teacher) is not None else refiner
    heldout = None if heldout is None else check_samples(checked, heldout, "data.heldout", "train_refiner", call=False)
    run = {"delta_max": delta_max, "batch": batch_size, "teacher": identity(teacher),
           "data": data_identity(sample_batch, model=checked, trainer="train_refiner", call=False),
           "heldout": identity(heldout) if heldout is not None else None, **(run_config or {})}
    teacher_field = CountingVelocity(teacher, name="the teacher (refiner training)")
    device = device_of(refiner)
    heldout = heldout.to(device) if isinstance(heldout, Tensor) else heldout

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return refiner_loss(net, teacher_field, sample_batch(batch_size, generator).to(device), delta_max, generator)

    validate = None if heldout is None else (lambda r: refiner_val_loss(r, teacher_field, heldout, delta_max))
    return train(refiner, loss_fn, config, ckpt_dir, run_config=run, progress=progress, desc="refiner",
                 validate=validate)


def save_refiner(path: str | Path, refiner: VelocityRefiner, config: dict[str, Any], **meta: Any) -> None:
    """Save the refiner's (EMA) weights with the config that rebuilds it (checksummed, atomic)."""
    save_checkpoint({"config": dict(config), "shape": list(refiner.shape), "state_dict": refiner.state_dict(),
                     "meta": meta}, path, kind="refiner")


def load_refiner(path: str | Path, rebuild_hint: str = "") -> VelocityRefiner:
    """Rebuild a refiner saved by `save_refiner`, in eval mode with gradients off."""
    state = load_checkpoint(path, rebuild_hint, kind="refiner")
    refiner = rebuild_net(state, path, rebuild_hint, build=lambda: VelocityRefiner(tuple(state["shape"]), state["config"]))
    return refiner.eval().requires_grad_(False)
