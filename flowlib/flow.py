"""Linear (rectified / OT) probability path, the flow-matching loss, and a small generic trainer.

Convention: t = 0 is noise x0, t = 1 is data x1; x_t = (1 - t) x0 + t x1 with target velocity x1 - x0.
The trainer is shared by every method that regresses a network (teacher training, BOSS straightening,
refiner training): it takes a `loss_fn(model, generator) -> scalar` and handles AdamW, linear warmup,
gradient clipping, EMA, tqdm progress, seeding, atomic checkpoints, resume, NaN detection and DDP.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from tqdm.auto import tqdm

from .artifacts import config_hash, load_checkpoint, save_checkpoint


def linear_path(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """x_t = (1 - t) x0 + t x1 and its velocity x1 - x0; `t` has shape [batch]."""
    tb = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - tb) * x0 + tb * x1, x1 - x0


def flow_matching_loss(model: nn.Module, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Conditional flow-matching loss E_t,x0 ||v(x_t, t) - (x1 - x0)||^2, mean over dims and batch."""
    x0 = torch.randn(x1.shape, generator=generator).to(x1)
    t = torch.rand(x1.shape[0], generator=generator).to(x1)
    xt, target = linear_path(x0, x1, t)
    return (model(xt, t) - target).pow(2).mean()


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


class TrainConfig(BaseModel):
    """Optimisation settings shared by every trainer in flowlib (validated on construction).

    The same model is the `train:` block of every stage in params.yaml, so a bad value fails with the key's name.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    steps: int = Field(1000, ge=1, strict=True, description="optimiser steps")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0)
    warmup: int = Field(100, ge=0, strict=True, description="linear warmup steps")
    grad_clip: float = Field(1.0, gt=0, description="global gradient-norm clip")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA decay in [0, 1); 0 keeps the raw weights")
    seed: int = Field(0, ge=0, strict=True)
    ckpt_every: int = Field(500, ge=1, strict=True, description="steps between resumable checkpoints")
    log_every: int = Field(50, ge=1, strict=True, description="steps per logged loss average")
    max_loss: float | None = Field(None, gt=0, description="stop when |loss| exceeds this (an exploding run); None: never")


@dataclass
class TrainResult:
    """What a training run returns: the raw and EMA models, the loss history and the wall time."""

    model: nn.Module
    ema_model: nn.Module
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def _distributed() -> tuple[int, int]:
    """(rank, world_size), initialising the process group when launched by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Generator], Tensor],
    config: TrainConfig,
    ckpt_dir: str | Path | None = None,
    *,
    run_config: dict | None = None,
    progress: bool = True,
    desc: str = "train",
    companions: dict[str, Any] | None = None,
    optimizer_betas: tuple[float, float] = (0.9, 0.999),
    callback: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Minimise `loss_fn(model, generator)` for `config.steps` AdamW steps.

    With `ckpt_dir`, the full training state is saved atomically to `ckpt_dir/last.pt` every
    `config.ckpt_every` steps and at the end; a later call with the same `config` and `run_config` resumes
    from it (a different config starts afresh, so a stale checkpoint is never silently continued).
    Under torchrun (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each rank draws its
    own minibatches and only rank 0 writes checkpoints.

    `companions`: objects that `loss_fn` updates itself (e.g. FGM's online model and its optimiser), saved and
    restored with the checkpoint through their `state_dict` / `load_state_dict`. A NaN, infinite or (with
    `config.max_loss`) exploding loss raises `TrainingDivergedError` before anything is written, so the last
    checkpoint stays the last good state. `callback(step, ema_model)` runs at every logged step (monitoring).
    """
    companions = companions or {}
    rank, world = _distributed()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed + 1000 * rank)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=optimizer_betas)
    warmup = max(config.warmup, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    fingerprint = config_hash({"train": config.model_dump(), "run": run_config or {}, "world": world})
    ckpt_path = Path(ckpt_dir) / "last.pt" if ckpt_dir is not None else None
    step, history, seconds = 0, [], 0.0
    if ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            ema.model.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"][rank] if rank < len(state["generator"]) else state["generator"][0])
            for key, obj in companions.items():
                obj.load_state_dict(state["companions"][key])
            step, history, seconds = state["step"], state["history"], state["seconds"]
        elif rank == 0:
            print(f"[flowlib] {ckpt_path} belongs to a different configuration; training from scratch.")
    resumed_from = step

    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)

    def checkpoint() -> None:
        if ckpt_path is None:
            return
        gen_states = [generator.get_state()]
        if world > 1:
            import torch.distributed as dist

            gathered: list = [None] * world
            dist.all_gather_object(gathered, generator.get_state())
            gen_states = gathered
        if rank == 0:
            save_checkpoint(
                {
                    "fingerprint": fingerprint,
                    "step": step,
                    "model": model.state_dict(),
                    "ema": ema.model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": gen_states,
                    "history": history,
                    "seconds": seconds,
                    "companions": {key: obj.state_dict() for key, obj in companions.items()},
                },
                ckpt_path,
            )

    model.train()
    bar = tqdm(total=config.steps, initial=step, desc=desc, disable=not progress or rank != 0, mininterval=1.0)
    running, count = 0.0, 0
    while step < config.steps:
        start = time.perf_counter()
        loss = loss_fn(net, generator)
        check_loss(loss, step, config, desc)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        seconds += time.perf_counter() - start
        step += 1
        running, count = running + loss.item(), count + 1
        if step % config.log_every == 0 or step == config.steps:
            history.append((step, running / count))
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
            if callback is not None and rank == 0:
                callback(step, ema.model)
        bar.update(1)
        if step % config.ckpt_every == 0 or step == config.steps:
            checkpoint()
    bar.close()
    model.eval()
    return TrainResult(model, ema.model, history, seconds, resumed_from)



def check_loss(loss: Tensor, step: int, config: TrainConfig, desc: str) -> None:
    """Raise `TrainingDivergedError` for a NaN or infinite loss, or one beyond `config.max_loss` (exploding)."""
    if not torch.isfinite(loss):
        what = "NaN" if torch.isnan(loss) else "infinite"
    elif config.max_loss is not None and abs(loss.item()) > config.max_loss:
        what = f"{loss.item():.3g}, beyond max_loss={config.max_loss:g} (exploding)"
    else:
        return
    raise TrainingDivergedError(
        f"{desc}: loss became {what} at step {step}. Lower the learning rate (lr={config.lr}), tighten grad_clip "
        f"(={config.grad_clip}), or check the inputs for NaNs; the last checkpoint (if any) holds the last good state."
    )


def train_teacher(
    model: nn.Module,
    sample_batch: Callable[[int, torch.Generator], Tensor],
    batch_size: int,
    config: TrainConfig,
    ckpt_dir: str | Path | None = None,
    *,
    run_config: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a velocity net by flow matching on minibatches from `sample_batch(n, generator)`."""

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return flow_matching_loss(net, sample_batch(batch_size, generator), generator)

    return train(model, loss_fn, config, ckpt_dir, run_config=run_config, progress=progress, desc="teacher")


class NoWeightsError(ValueError):
    """A method that finetunes the teacher's weights was given a velocity field without any."""


def trainable_copy(teacher: nn.Module | Callable, start: nn.Module | None = None) -> nn.Module:
    """A trainable deep copy of `start` (default: the teacher), the student a distiller finetunes.

    An exact or hand-written velocity field has no weights to start from; then `start` must be a network."""
    source = start if start is not None else teacher
    if not isinstance(source, nn.Module) or not any(True for _ in source.parameters()):
        raise NoWeightsError(
            f"{type(source).__name__} has no parameters to finetune (an exact or hand-written velocity field?). "
            "Pass a network to start from, e.g. flowlib.build_model({'arch': 'mlp'}, shape).")
    return copy.deepcopy(source).requires_grad_(True).train()


def save_velocity_model(path: str | Path, model: nn.Module, model_config: dict, shape: tuple[int, ...], **meta) -> None:
    """Save weights plus the config needed to rebuild the net (checksummed, atomic)."""
    save_checkpoint(
        {"model_config": dict(model_config), "shape": list(shape), "state_dict": model.state_dict(), "meta": meta}, path
    )


def load_velocity_model(path: str | Path, rebuild_hint: str = "") -> nn.Module:
    """Rebuild a net saved by `save_velocity_model`, in eval mode with gradients off."""
    from .models import build_model

    state = load_checkpoint(path, rebuild_hint)
    model = build_model(state["model_config"], tuple(state["shape"]))
    model.load_state_dict(state["state_dict"])
    return model.eval().requires_grad_(False)
