"""Linear (rectified / OT) probability path, the flow-matching loss, and a small generic trainer.

Convention: t = 0 is noise x0, t = 1 is data x1; x_t = (1 - t) x0 + t x1 with target velocity x1 - x0.
The trainer is shared by every learned component of every method (teacher, BOSS straightening and its reflow
baselines, Bespoke solvers, FlowTurbo's refiner, FGM's generator): it takes a `loss_fn(model, generator) -> scalar`
and handles AdamW, linear warmup, gradient clipping, EMA, tqdm progress, seeding, atomic checkpoints, resume, NaN
detection, DDP, the training cost in FLOPs, and one stopping rule (`TrainConfig.val_every`, `patience`, `rel_tol`):
every `val_every` steps a `validate(ema_model)` score on held-out data is taken, the best checkpoint kept, and the
run stops at its validation plateau or at its cap of `steps`, saying which (`TrainResult.converged`).
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from .artifacts import CheckpointError, config_hash, load_checkpoint, save_checkpoint, writable_dir
from .device import autocast, check_precision, device_of, shard, sharding
from .errors import ArgumentError, FlowlibError, describe, exception_line
from .train_data import DataSampler, TrainData, require_data


def linear_path(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """x_t = (1 - t) x0 + t x1 and its velocity x1 - x0; `t` has shape [batch]."""
    tb = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - tb) * x0 + tb * x1, x1 - x0


def flow_matching_loss(model: nn.Module, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Conditional flow-matching loss E_t,x0 ||v(x_t, t) - (x1 - x0)||^2, mean over dims and batch."""
    x0 = torch.randn(x1.shape, generator=generator).to(x1)
    t = torch.rand(x1.shape[0], generator=generator).to(x1)
    x0, x1, t = shard(x0, x1, t)  # this process's share of the global batch (all of it outside torchrun)
    xt, target = linear_path(x0, x1, t)
    return (model(xt, t) - target).pow(2).mean()


class TrainingDivergedError(FlowlibError, FloatingPointError):
    """The loss became NaN or infinite."""


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ArgumentError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One foreach lerp over every parameter (a single kernel launch per dtype on a GPU), buffers copied."""
        ema_params = list(self.model.parameters())
        if ema_params:
            torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


class TrainConfig(BaseModel):
    """Optimisation settings shared by every trainer in flowlib (validated on construction).

    The same model is the `train:` block of every stage in params.yaml, so a bad value fails with the key's name.

    Args:
        The fields below, by keyword; anything else, or a value out of range, raises `TrainConfigError`.

    >>> TrainConfig(steps=200, lr=2e-4).steps
    200
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    steps: int = Field(1000, ge=1, strict=True, description="optimiser steps: the cap (max_steps) when val_every is set")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0)
    warmup: int = Field(100, ge=0, strict=True, description="linear warmup steps (at most steps; by default 100, or "
                        "steps when fewer)")
    grad_clip: float | None = Field(1.0, gt=0, description="global gradient-norm clip; None: no clipping")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA decay in [0, 1); 0 keeps the raw weights")
    seed: int = Field(0, ge=0, strict=True)
    ckpt_every: int = Field(500, ge=1, strict=True, description="steps between resumable checkpoints")
    log_every: int = Field(50, ge=1, strict=True, description="steps per logged loss average")
    max_loss: float | None = Field(None, gt=0, description="stop when |loss| exceeds this (an exploding run); None: never")
    val_every: int | None = Field(None, ge=1, strict=True, description="steps between validation scores of the stopping "
                                  "rule; None: no validation, train all `steps`")
    patience: int = Field(5, ge=1, strict=True, description="stop after this many validations without a relative "
                          "improvement of rel_tol over the best so far (the plateau)")
    rel_tol: float = Field(0.01, ge=0, lt=1, description="relative improvement of the validation score that counts as progress")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 autocast of the loss (a GPU's fast path; "
                                                "refused where the device has no bf16)")
    compile: bool = Field(False, description="compile the network's forward with torch.compile (worth it on a GPU)")

    @model_validator(mode="before")
    @classmethod
    def _default_warmup(cls, values: Any) -> Any:
        """The default warmup (100) never outlasts a shorter run: it becomes `steps`."""
        steps = values.get("steps", 1000) if isinstance(values, dict) else None
        if isinstance(values, dict) and "warmup" not in values and isinstance(steps, int) and 0 < steps < 100:
            values = {**values, "warmup": steps}
        return values

    @field_validator("warmup")
    @classmethod
    def _warmup_within_steps(cls, warmup: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if isinstance(steps, int) and warmup > steps:
            raise ValueError(f"at most steps ({steps}): a warmup longer than the run never reaches the learning rate")
        return warmup

    @model_validator(mode="after")
    def _warmup_after_assignment(self) -> "TrainConfig":
        if self.warmup > self.steps:  # `config.steps = …` after construction
            raise ValueError(f"warmup ({self.warmup}) must be at most steps ({self.steps})")
        return self

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise TrainConfigError(exc.errors()) from None

    def __setattr__(self, name: str, value: Any) -> None:
        """`config.field = value` is checked like the constructor; a refused value leaves the config as it was."""
        old = self.__dict__.get(name)
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            if name in self.__dict__:
                self.__dict__[name] = old
            raise TrainConfigError([{**e, "loc": e["loc"] or (name,), "input": value} for e in exc.errors()]) from None


class TrainConfigError(ArgumentError):
    """A `TrainConfig` built with a wrong field; `errors` keeps pydantic's items, so params.yaml names each key."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'TrainConfig'}: {e['msg']} (got {e.get('input')!r})"
                             for e in errors)
        super().__init__(f"TrainConfig: {problems}. See help(flowlib.TrainConfig) for every field.")


@dataclass
class TrainResult:
    """What a training run returns: the raw and EMA models (the EMA one restored to the best validation checkpoint
    under the stopping rule), the loss history, the wall time, and how the run ended.

    `steps`: optimiser steps taken; `converged`: True when the validation plateau was reached before the cap, False
    when the cap stopped a run that was still improving, None without validation; `val_history`: (step, score);
    `flops`: the training cost in floating-point operations (forward and backward of every step and every validation,
    as run), machine-independent where `seconds` is not.

    One result type for every public trainer; what a method adds beyond these fields is in `extras` (BOSS's
    `trained_params`, FGM's `online_history`).

    Args:
        model, ema_model: the trained network (or solver) and its EMA; the other fields as above, by keyword.

    >>> from torch import nn
    >>> TrainResult(nn.Linear(1, 1), nn.Linear(1, 1), steps=10, converged=True, best_step=6).describe()
    'plateau at step 6 (stopped at 10)'
    """

    model: nn.Module
    ema_model: nn.Module
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0
    steps: int = 0
    converged: bool | None = None
    best_step: int = 0
    best_value: float = math.nan
    val_history: list[tuple[int, float]] = field(default_factory=list)
    flops: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)  # what one method adds (e.g. FGM's online loss history)

    def describe(self) -> str:
        """One phrase for claims and tables: how the run ended."""
        if self.converged is None:
            return f"{self.steps} steps (no validation rule)"
        if self.converged:
            return f"plateau at step {self.best_step} (stopped at {self.steps})"
        return f"stopped at its cap of {self.steps} steps, still improving"


class StoppingRule:
    """Early stopping on a validation score (lower is better), with the best checkpoint kept.

    `update(step, value, state)` records a score: a value below the best so far keeps `state` as the best
    checkpoint; a value below (1 - rel_tol) x the last *significant* best resets the patience counter, anything else
    counts one evaluation without progress. `plateau` is True once `patience` such evaluations follow each other.
    Its whole state (history, best, counter, checkpoint) goes into the trainer's checkpoint, so a resumed run
    continues the rule where it stopped.
    """

    def __init__(self, patience: int, rel_tol: float):
        self.patience, self.rel_tol = patience, rel_tol
        self.history: list[tuple[int, float]] = []
        self.best, self.best_step, self.best_state = math.inf, 0, None
        self.significant, self.stale = math.inf, 0

    def update(self, step: int, value: float, state: dict[str, Tensor]) -> None:
        if not math.isfinite(value):
            raise TrainingDivergedError(f"the validation score became {value} at step {step}; the last checkpoint holds "
                                        "the last good state. Lower the learning rate or check the inputs for NaNs.")
        self.history.append((step, value))
        if value < self.best:
            self.best, self.best_step = value, step
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
        if value < self.significant - self.rel_tol * abs(self.significant) or not math.isfinite(self.significant):
            self.significant, self.stale = value, 0
        else:
            self.stale += 1

    @property
    def plateau(self) -> bool:
        return self.stale >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "best": self.best, "best_step": self.best_step,
                "best_state": self.best_state, "significant": self.significant, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [tuple(h) for h in state["history"]]
        self.best, self.best_step, self.best_state = state["best"], state["best_step"], state["best_state"]
        self.significant, self.stale = state["significant"], state["stale"]


def count_flops(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fn()` once and return its result and the floating-point operations it ran (matrix products and
    convolutions, forward and backward, as counted by torch's FlopCounterMode): a machine-independent cost."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, float(counter.get_total_flops())


def architecture(model: nn.Module) -> dict[str, Any]:
    """What a resume must match in a network: its class and the name and shape of every weight and buffer."""
    return {"class": type(model).__name__, "weights": {k: list(v.shape) for k, v in model.state_dict().items()}}


def identity(obj: Any) -> str:
    """A short hash that changes when `obj` does: a tensor's values (all of them, streamed without a copy), a
    network's weights (in order), a callable's name with what it carries (a bound method's object, a closure's
    cells, a partial's arguments: tensors and networks in full, plain values and tuples by repr; lists and dicts,
    often counters, by type), or else the type's name with the object's tensors and networks.
    What a resume fingerprint records of a teacher, a dataset, a data source or a validator."""
    h = hashlib.sha256()
    _hash_into(h, obj, depth=0)
    return h.hexdigest()[:16]


_PLAIN = (int, float, str, bool, type(None), bytes)
_HASH_CHUNK = 1 << 24  # bytes per update when a tensor is copied off the GPU


def _hash_into(h: Any, obj: Any, depth: int) -> None:
    """Feed `obj` into the running hash `h` (see `identity`); `depth` bounds how far into objects it looks."""
    if isinstance(obj, Tensor):
        h.update(str((obj.dtype, tuple(obj.shape))).encode())
        flat = obj.detach().reshape(-1)
        if flat.device.type == "cpu":
            if flat.numel():
                h.update(flat.contiguous().view(torch.uint8).numpy())  # the buffer itself: no copy of the data
            return
        rows = max(1, _HASH_CHUNK // max(flat.element_size(), 1))
        for start in range(0, flat.numel(), rows):
            h.update(flat[start:start + rows].contiguous().view(torch.uint8).cpu().numpy())
    elif isinstance(obj, nn.Module):  # its weights decide what it computes (a wrapper around the same net is the same)
        for value in obj.state_dict().values():
            _hash_into(h, value, depth)
    elif isinstance(obj, _PLAIN):
        h.update(repr(obj).encode())
    elif isinstance(obj, tuple) and depth < 3:  # (lists and dicts are mutable state, such as counters: not hashed)
        for item in obj:
            _hash_into(h, item, depth + 1)
    elif isinstance(obj, partial):
        _hash_into(h, (obj.func, obj.args, tuple(sorted(obj.keywords.items()))), depth)
    elif callable(obj) and hasattr(obj, "__qualname__"):
        h.update(f"{getattr(obj, '__module__', '')}.{obj.__qualname__}".encode())
        if depth < 3 and getattr(obj, "__self__", None) is not None:   # a bound method: its object's state
            _hash_into(h, obj.__self__, depth + 1)
        for cell in (getattr(obj, "__closure__", None) or ()) if depth < 3 else ():
            try:
                _hash_into(h, cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                continue
    else:
        h.update(f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
        fields = getattr(obj, "__dict__", None)
        if isinstance(fields, dict) and depth < 2:   # an object's data and networks (not its bookkeeping numbers)
            for key, value in fields.items():
                if isinstance(value, (Tensor, nn.Module)):
                    h.update(key.encode())
                    _hash_into(h, value, depth + 1)


def model_shape(model: Any) -> tuple[int, ...] | None:
    """The sample shape a flowlib network declares (`.shape`), or None for a network or field that declares none."""
    shape = getattr(model, "shape", None)
    return tuple(shape) if isinstance(shape, (tuple, list)) else None


def check_samples(model: Any, x: Any, what: str, trainer: str, call: bool = True) -> Tensor:
    """One check of training data against the network it trains, before step one: a finite floating tensor
    [n, *shape] with the network's sample shape and its weights' dtype (a floating numpy array is converted). A
    batch of another shape would not fail: the losses would broadcast every prediction against every target. A
    network that declares no `.shape` is called once on two samples (`call`, for a `v(x, t)` network) and must
    return their shape.

    >>> from flowlib.models import MLPVelocity
    >>> try:
    ...     check_samples(MLPVelocity((2,), hidden=8, depth=2), torch.zeros(4, 1, 2), "data", "train_teacher")
    ... except ArgumentError as exc:
    ...     print(str(exc)[:60])
    train_teacher: data has samples of shape (1, 2) but the netw
    """
    if type(x).__module__ == "numpy" and hasattr(x, "dtype"):
        if x.dtype.kind != "f":
            raise ArgumentError(f"{trainer}: {what} is a numpy array of dtype {x.dtype}; pass floating data "
                                "(x.astype('float32')).")
        x, was_numpy = torch.from_numpy(x), True
    else:
        was_numpy = False
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else describe(x)
        raise ArgumentError(f"{trainer}: {what} must be a floating tensor [n, ...] with a batch axis and at least one "
                            f"sample, got {got}.")
    shape = model_shape(model)
    if shape is not None and tuple(x.shape[1:]) != shape:
        raise ArgumentError(f"{trainer}: {what} has samples of shape {tuple(x.shape[1:])} but the network models data of "
                            f"shape {shape}; reshape the data (x.reshape(len(x), *{shape})) or build the network for "
                            f"shape {tuple(x.shape[1:])}. (The loss would broadcast, not fail.)")
    weights = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    if weights is not None and weights.is_floating_point() and x.dtype != weights.dtype:
        raise ArgumentError(f"{trainer}: {what} has dtype {x.dtype} but the network's weights are {weights.dtype}; "
                            "pass the data in the weights' dtype (" + (f"x.astype('{str(weights.dtype)[6:]}')" if was_numpy
                                                                        else f"x.to({weights.dtype})") +
                            ") or convert the network.")
    if shape is None and call and isinstance(model, nn.Module):
        probe = x[:2].to(device_of(model))
        with torch.no_grad():
            out = model(probe, torch.full((len(probe),), 0.5, dtype=probe.dtype, device=probe.device))
        if not isinstance(out, Tensor) or out.shape != probe.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else describe(out)
            raise ArgumentError(f"{trainer}: the network returns {got} for {what} of shape {tuple(probe.shape)}; a "
                                "velocity must be shaped like its input (the loss would broadcast, not fail). Reshape the "
                                "data to the network's sample shape.")
    if not torch.isfinite(x).all():
        raise ArgumentError(f"{trainer}: {what} contains NaN or inf; clean the data before training.")
    return x


def data_identity(sample_batch: Callable[[int, torch.Generator], Tensor], n: int = 64, model: Any = None,
                  trainer: str = "train", call: bool = True) -> str:
    """The identity of a data source `sample_batch(n, generator)`: the hash of a probe batch drawn with a fixed seed
    and of the whole data the source draws from (a `Dataset`'s tensors, a closure's: `identity`), so a corrected row
    anywhere restarts a resumed run. Also checks the source's contract, and with `model` its samples against the
    network (`check_samples`)."""
    if not callable(sample_batch):
        raise ArgumentError(f"data.source must be a callable source(n, generator) -> Tensor [n, ...], got "
                            f"{type(sample_batch).__name__}.")
    try:
        probe = sample_batch(n, torch.Generator().manual_seed(20240601))
    except (TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise ArgumentError(f"data.source(n, generator) failed on a probe call (n={n}): {exception_line(exc)}. "
                            "It must take (n, torch.Generator) and return n data points.") from exc
    if not isinstance(probe, Tensor) or not probe.is_floating_point() or probe.dim() < 2 or len(probe) != n:
        got = f"shape {tuple(probe.shape)}, dtype {probe.dtype}" if isinstance(probe, Tensor) else type(probe).__name__
        raise ArgumentError(f"data.source({n}, generator) must return a floating tensor [{n}, ...]; got {got}.")
    if not torch.isfinite(probe).all():
        raise ArgumentError("data.source returned NaN or inf data; clean the dataset before training.")
    if model is not None:
        check_samples(model, probe, "data.source's batch", trainer, call)
    return identity(probe) + identity(sample_batch)


def distributed(device: torch.device | None = None) -> tuple[int, int]:
    """(rank, world_size) of this process: (0, 1) unless launched by torchrun with WORLD_SIZE > 1, in which case the
    process group is initialised once (NCCL for a CUDA model, gloo otherwise) and a CUDA process is pinned to its
    `LOCAL_RANK` GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def data_parallel(module: nn.Module, world: int) -> nn.Module:
    """`module` wrapped in DistributedDataParallel (it broadcasts rank 0's weights now and averages gradients in every
    backward), or `module` itself in a single process."""
    if world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = device_of(module)
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def average_gradients(module: nn.Module, world: int) -> None:
    """All-reduce and average the gradients of a module that is not used through `forward` (a Bespoke solver), which
    DDP cannot wrap: the same gradient DDP would give."""
    if world == 1:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def _fast_kernels(model: nn.Module, device: torch.device) -> None:
    """On a GPU: TF32 matrix products and channels_last memory for convolutional nets (no effect on the CPU)."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)


class LossMonitor:
    """The training loss kept on the device between reads, so a step never waits for the host: the running sum since
    the last read, and the first step whose loss was NaN, infinite or (with `max_loss`) exploding. `read()` and
    `check()` synchronise (every `log_every` steps, before a validation and before a checkpoint) and raise
    `TrainingDivergedError` for a bad step, so nothing is written after one. Under torchrun both are reduced over the
    ranks: the logged loss is the global batch's, and every rank stops together when any one diverged."""

    def __init__(self, config: TrainConfig, desc: str, world: int = 1):
        self.config, self.desc, self.world = config, desc, world
        self.total: Tensor | None = None
        self.count = 0
        self.bad_step: Tensor | None = None   # +inf while every loss was good
        self.bad_value: Tensor | None = None  # the first bad loss (0 while none)

    def add(self, loss: Tensor, step: int) -> None:
        value = loss.detach().double()
        bad = ~torch.isfinite(value)
        if self.config.max_loss is not None:
            bad = bad | (value.abs() > self.config.max_loss)
        if self.bad_step is None:
            self.bad_step, self.bad_value = torch.full_like(value, math.inf), torch.zeros_like(value)
        first = bad & torch.isinf(self.bad_step)
        self.bad_step = torch.where(first, torch.full_like(value, step), self.bad_step)
        self.bad_value = torch.where(first, value, self.bad_value)
        self.total = value if self.total is None else self.total + value
        self.count += 1

    def _reduce(self, tensor: Tensor, op: str) -> Tensor:
        if self.world == 1:
            return tensor
        import torch.distributed as dist

        tensor = tensor.clone()
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
        return tensor

    def check(self) -> None:
        """Raise `TrainingDivergedError` if any loss since the start was bad, on any rank (one host sync)."""
        if self.bad_step is None:
            return
        bad_step = self._reduce(self.bad_step, "MIN")
        if math.isinf(float(bad_step)):
            return
        step, value, config = int(bad_step), float(self._reduce(self.bad_value, "SUM")), self.config
        what = ("NaN" if math.isnan(value) else "infinite" if math.isinf(value)
                else f"{value:.3g}, beyond max_loss={config.max_loss:g} (exploding)")
        clip = f"tighten grad_clip (={config.grad_clip})" if config.grad_clip is not None else "set grad_clip"
        raise TrainingDivergedError(
            f"{self.desc}: loss became {what} at step {step}. Lower the learning rate (lr={config.lr}), {clip}, or "
            "check the inputs for NaNs; the last checkpoint (if any) holds the last good state.")

    def read(self) -> float:
        """The mean loss since the last read (after `check`), and a fresh start."""
        self.check()
        mean = float(self._reduce(self.total, "SUM") / (self.count * self.world))
        self.total, self.count = None, 0
        return mean


class PartnerLog:
    """A partner model's loss history and step count, kept in the checkpoints (so a resumed run continues both). Its
    losses stay on the device (`LossMonitor`): read, and checked for NaN, inf or an explosion beyond `max_loss`, every
    `log_every` steps, so the partner's step never waits for the host either."""

    def __init__(self, config: TrainConfig, desc: str, world: int = 1):
        self.log_every, self.step, self.history = config.log_every, 0, []
        self.monitor = LossMonitor(config, desc, world)

    def add(self, loss: Tensor) -> None:
        self.monitor.add(loss, self.step)
        self.step += 1
        if self.monitor.count == self.log_every:
            self.history.append((self.step, self.monitor.read()))

    def state_dict(self) -> dict[str, Any]:
        total = self.monitor.total  # (no collective here: only rank 0 saves; a diverged partner shows first in the
        # model's loss, which the trainer checks before every checkpoint)
        return {"step": self.step, "history": list(self.history), "window_count": self.monitor.count,
                "window_total": float(total) if total is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.history = state["step"], [tuple(h) for h in state["history"]]
        total = state["window_total"]
        self.monitor.count = state["window_count"]
        self.monitor.total = None if total is None else torch.tensor(total, dtype=torch.float64)


@dataclass
class Partner:
    """A second network the loop trains beside the model, one step of its own before each step of the model's (FGM's
    online model). The loop evaluates `loss_fn(model_net, partner_net, generator)`, applies it with `optimizer`
    (clipped at `config.grad_clip`), records it in `log`, and checkpoints all three under `name`; `net` is the
    partner as its loss calls it (DistributedDataParallel under torchrun; by default `model`)."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[nn.Module, nn.Module, torch.Generator], Tensor]
    log: PartnerLog
    net: nn.Module | None = None

    def parts(self) -> dict[str, Any]:
        """What a checkpoint saves and a resume restores of the partner."""
        return {self.name: self.model, f"{self.name}_optimizer": self.optimizer, f"{self.name}_log": self.log}

    def step(self, model_net: nn.Module, generator: torch.Generator, grad_clip: float | None) -> None:
        """One optimiser step of the partner on its loss against the model as it is now."""
        self.model.train()
        loss = self.loss_fn(model_net, self.net or self.model, generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
        self.optimizer.step()
        self.log.add(loss.detach())


@dataclass
class _Progress:
    """What a run has done so far: all of it goes into the checkpoint, and a resume restores it."""

    step: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    costs: dict[str, float] = field(default_factory=lambda: {"step": 0.0, "val": 0.0})
    done: bool = False


def run_fingerprint(config: TrainConfig, model: nn.Module, world: int, validate: Callable | None, stop_at_plateau: bool,
                    companions: dict[str, Any], run_config: dict | None) -> tuple[str, dict[str, str]]:
    """The hash of everything that decides a run's result, and the hash of each part (to say what changed): the
    config, the world size, the validator (`identity`: its code and the data it scores on), the networks'
    architectures and `run_config` (the trainers put the whole data and the teacher's weights there)."""
    parts = {"train": config.model_dump(), "world": world, "stop": stop_at_plateau,
             "validator": identity(validate) if validate is not None else None,
             "model": architecture(model),
             "companions": {key: architecture(obj) for key, obj in companions.items() if isinstance(obj, nn.Module)},
             **{f"run.{key}": value for key, value in (run_config or {}).items()}}
    return config_hash(parts), {key: config_hash(value) for key, value in parts.items()}


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Generator], Tensor],
    config: TrainConfig,
    ckpt_dir: str | Path | None = None,
    *,
    run_config: dict | None = None,
    progress: bool = True,
    desc: str = "train",
    optimizer_betas: tuple[float, float] = (0.9, 0.999),
    callback: Callable[[int, nn.Module], None] | None = None,
    validate: Callable[[nn.Module], float] | None = None,
    stop_at_plateau: bool = True,
    wrap: bool = True,
    partner: Partner | None = None,
) -> TrainResult:
    """Minimise `loss_fn(model, generator)` with AdamW for at most `config.steps` steps, on the device of `model`.

    **Stopping rule.** With `validate` and `config.val_every`, the EMA model is scored by `validate(ema_model)` (lower
    is better, on held-out data) at step 0 and every `val_every` steps; the best-scoring EMA weights are kept, and the
    run stops once `config.patience` scores in a row improve on the best by less than `config.rel_tol` (relative), or
    at the cap `config.steps`. The returned EMA model holds the best weights; `converged` says whether the plateau came
    before the cap. `stop_at_plateau=False` only measures (the teacher: trained to its cap, the last EMA kept,
    `converged` = its validation score had plateaued by the end).

    **Resume.** With `ckpt_dir`, the full training state (the rule's included) is saved atomically to
    `ckpt_dir/last.pt` every `config.ckpt_every` steps and at the end; a later call whose `run_fingerprint` matches
    resumes from it (a different one starts afresh and says which part changed).

    **Speed.** The loss stays on the device and is read every `config.log_every` steps (`LossMonitor`); the EMA is one
    foreach update; `config.precision: bf16` autocasts the loss; on a GPU, TF32 and channels_last (convolutional
    nets); `config.compile` compiles the network's forward.

    **Several processes.** Under torchrun (WORLD_SIZE > 1) the network is wrapped in DistributedDataParallel (`wrap`;
    a module not used through `forward`, such as a Bespoke solver, has its gradients averaged by hand instead). Every
    rank draws the same global batch from the same seed and `loss_fn` keeps its share through `flowlib.device.shard`,
    so N processes follow the single-process run on the same global batch; only rank 0 writes.

    `partner`: a second network the loop steps before each step of the model (FGM's online model, `Partner`), saved
    and restored with the checkpoint. A NaN, infinite or (with `config.max_loss`) exploding loss raises
    `TrainingDivergedError` before anything more is written, so the last checkpoint stays the last good state.
    `callback(step, ema_model)` runs at every logged step (monitoring).
    The cost in FLOPs is counted on the first step and the first validation of the call and scaled by their counts.
    """
    companions = partner.parts() if partner is not None else {}   # what the checkpoint carries beside the model
    device = device_of(model)
    check_precision(config.precision, device)
    rank, world = distributed(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # one stream on every rank: the global batch
    _fast_kernels(model, device)
    net = data_parallel(model, world) if wrap else model   # DDP broadcasts rank 0's weights: before the EMA copy
    if config.compile:
        net = torch.compile(net)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=optimizer_betas)
    warmup = max(config.warmup, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    rule = StoppingRule(config.patience, config.rel_tol) if validate is not None and config.val_every else None
    fingerprint, part_hashes = run_fingerprint(config, model, world, validate, stop_at_plateau, companions,
                                               run_config)
    ckpt_path = writable_dir(ckpt_dir, "checkpoint folder (ckpt_dir)") / "last.pt" if ckpt_dir is not None else None
    trainables = {"model": model, "ema": ema.model, "optimizer": optimizer, "scheduler": scheduler}
    run = _resume(ckpt_path, fingerprint, part_hashes, trainables, companions, generator, rule, rank)
    resumed_from = run.step

    def checkpoint() -> None:
        if ckpt_path is not None and rank == 0:
            save_checkpoint({"fingerprint": fingerprint, "fingerprint_parts": part_hashes, "step": run.step,
                             **{key: obj.state_dict() for key, obj in trainables.items()},
                             "companions": {key: obj.state_dict() for key, obj in companions.items()},
                             "generator": [generator.get_state()], "history": run.history, "seconds": run.seconds,
                             "costs": run.costs, "done": run.done, "rule": rule.state_dict() if rule is not None else None},
                            ckpt_path, kind="trainer")

    def score() -> None:
        """One validation of the EMA model under the stopping rule (its cost counted once per call)."""
        ema.model.eval()
        with torch.no_grad():
            if not run.costs["val"]:
                value, run.costs["val"] = count_flops(lambda: float(validate(ema.model)))
            else:
                value = float(validate(ema.model))
        rule.update(run.step, value, ema.model.state_dict())
        run.done = run.done or (stop_at_plateau and rule.plateau)

    if rule is not None and not rule.history:
        score()
    model.train()
    step_fn = partial(_step, net, model, loss_fn, generator, optimizer, config, device, rank, world, wrap, partner)
    monitor = LossMonitor(config, desc, world)
    bar = tqdm(total=config.steps, initial=run.step, desc=desc, disable=not progress or rank != 0, mininterval=1.0)
    while run.step < config.steps and not run.done:
        start = time.perf_counter()
        if not run.costs["step"]:
            loss, run.costs["step"] = count_flops(step_fn)
        else:
            loss = step_fn()
        scheduler.step()
        ema.update(model)
        monitor.add(loss, run.step)
        run.seconds += time.perf_counter() - start
        run.step += 1
        last = run.step == config.steps
        if run.step % config.log_every == 0 or last:
            run.history.append((run.step, monitor.read()))
            bar.set_postfix(loss=f"{run.history[-1][1]:.4f}")
            if callback is not None and rank == 0:
                callback(run.step, ema.model)
        if rule is not None and (run.step % config.val_every == 0 or last):
            monitor.check()
            score()
            bar.set_postfix(loss=f"{run.history[-1][1]:.4f}" if run.history else "-", val=f"{rule.best:.4g}")
        bar.update(1)
        if run.step % config.ckpt_every == 0 or last or run.done:
            monitor.check()
            checkpoint()
    bar.close()
    monitor.check()
    model.eval()
    result = TrainResult(model, ema.model, run.history, run.seconds, resumed_from, steps=run.step)
    result.flops = run.costs["step"] * run.step + run.costs["val"] * (len(rule.history) if rule is not None else 0)
    if rule is not None:
        result.val_history, result.best_step, result.best_value = list(rule.history), rule.best_step, rule.best
        result.converged = rule.plateau
        if stop_at_plateau and rule.best_state is not None:
            ema.model.load_state_dict(rule.best_state)
    return result


def _resume(ckpt_path: Path | None, fingerprint: str, part_hashes: dict[str, str], trainables: dict[str, Any],
            companions: dict[str, Any], generator: torch.Generator, rule: StoppingRule | None, rank: int) -> _Progress:
    """The progress saved in `ckpt_path` with every trainable restored, when its fingerprint is this run's; else a
    fresh start (saying which part of the fingerprint changed)."""
    if ckpt_path is None or not ckpt_path.exists():
        return _Progress()
    state = load_checkpoint(ckpt_path, kind="trainer")
    if state.get("fingerprint") != fingerprint:
        if rank == 0:
            saved = state.get("fingerprint_parts", {})
            changed = sorted(k.removeprefix("run.") for k in set(saved) | set(part_hashes) if saved.get(k) != part_hashes.get(k))
            print(f"[flowlib] {ckpt_path} belongs to a different configuration ({', '.join(changed) or 'older format'} "
                  "changed); training from scratch.")
        return _Progress()
    try:
        for key, obj in trainables.items():
            obj.load_state_dict(state[key])
        for key, obj in companions.items():
            obj.load_state_dict(state["companions"][key])
        generator.set_state(state["generator"][0])
        if rule is not None:
            rule.load_state_dict(state["rule"])
        return _Progress(state["step"], state["history"], state["seconds"], dict(state["costs"]), state["done"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt_path} matches this run's configuration but cannot be resumed "
                              f"({exception_line(exc)}); delete it to train from scratch.") from None


def _step(net: nn.Module, model: nn.Module, loss_fn: Callable[[nn.Module, torch.Generator], Tensor],
          generator: torch.Generator, optimizer: torch.optim.Optimizer, config: TrainConfig, device: torch.device,
          rank: int, world: int, wrapped: bool, partner: Partner | None = None) -> Tensor:
    """One optimiser step on this rank's share of the global batch: the partner's step first (if any), then the
    model's loss (autocast), backward, gradient averaging where DDP does not do it, clipping, update. Returns the
    model's loss, still on the device."""
    with sharding(rank, world), autocast(device, config.precision):
        if partner is not None:
            partner.step(net, generator, config.grad_clip)
        loss = loss_fn(net, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if not wrapped:
        average_gradients(model, world)
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss


def train_teacher(
    model: nn.Module,
    data: TrainData[DataSampler],
    config: TrainConfig,
    *,
    ckpt_dir: str | Path | None = None,
    progress: bool = True,
    run_config: dict | None = None,
) -> TrainResult:
    """Train a velocity net by flow matching on minibatches of `data.source(n, generator)`. The teacher has no teacher
    of its own, so its signature is the shared one without that first argument.

    With `data.heldout` and `config.val_every`, the flow-matching loss on the held-out data (fixed noise and times, so
    scores are comparable across steps) is tracked: the teacher is the object under study, so it trains to its cap
    and the result only *reports* whether that loss had plateaued (`converged`).

    A resume from `ckpt_dir` happens only when everything that decides the result matches: `config`, the network's
    architecture, the whole data the sampler draws from (`data_identity`), the held-out data, the batch size
    and `run_config`.

    Args:
        model: the network to train; data: a `TrainData` of a data sampler (and held-out data);
        config: a `TrainConfig`; ckpt_dir: resume folder; run_config: what else decides the result.

    Returns:
        A `TrainResult` (`ema_model` is the teacher to sample from).

    >>> from flowlib import TrainConfig, TrainData, build_model
    >>> from flowlib.data import load_dataset
    >>> ring = load_dataset("8gaussians", n_toy=256)
    >>> net = build_model((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    >>> train_teacher(net, TrainData(ring.sample_batch, 32), TrainConfig(steps=3, warmup=0), progress=False).steps
    3
    """
    check_training_args(model, config)
    require_data(data, "train_teacher", DataSampler)
    sample_batch, batch_size, heldout = data.source.sample, data.batch_size, data.heldout
    run = {"data": data_identity(sample_batch, model=model, trainer="train_teacher"), "batch_size": batch_size,
           **(run_config or {})}
    if heldout is not None:
        heldout = check_samples(model, heldout, "data.heldout", "train_teacher")
        run["heldout"] = identity(heldout)

    device = device_of(model)

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return flow_matching_loss(net, sample_batch(batch_size, generator).to(device), generator)

    validate = None if heldout is None else partial(heldout_flow_matching_loss, x1=heldout.to(device))
    return train(model, loss_fn, config, ckpt_dir, run_config=run, progress=progress, desc="teacher",
                 validate=validate, stop_at_plateau=False)


def check_training_args(model: Any, config: Any, name: str = "model") -> None:
    """The arguments every public trainer shares: a network with weights and a `TrainConfig` (the batch size is
    checked by `TrainData`)."""
    if not isinstance(model, nn.Module) or not any(True for _ in model.parameters()):
        raise ArgumentError(f"{name} must be a network with weights to train (an nn.Module, e.g. "
                            f"flowlib.build_model(shape, {{'arch': 'mlp'}})), got {type(model).__name__}.")
    if not isinstance(config, TrainConfig):
        raise ArgumentError(f"config must be a flowlib.TrainConfig (e.g. TrainConfig(steps=1000, lr=1e-3)), got "
                            f"{type(config).__name__}.")


def heldout_flow_matching_loss(model: nn.Module, x1: Tensor, seed: int = 0) -> float:
    """The flow-matching loss on held-out data `x1` with noise and times drawn from `seed` (a validation score)."""
    return float(flow_matching_loss(model, x1, torch.Generator().manual_seed(seed)))


class NoWeightsError(FlowlibError, ValueError):
    """A method that finetunes the teacher's weights was given a velocity field without any.

    >>> from flowlib import ring_mixture
    >>> from flowlib.flow import trainable_copy
    >>> try:
    ...     trainable_copy(ring_mixture())
    ... except NoWeightsError:
    ...     print("refused")
    refused
    """


def trainable_copy(teacher: nn.Module | Callable, start: nn.Module | None = None) -> nn.Module:
    """A trainable deep copy of `start` (default: the teacher), the student a distiller finetunes.

    An exact or hand-written velocity field has no weights to start from; then `start` must be a network."""
    source = start if start is not None else teacher
    if not isinstance(source, nn.Module) or not any(True for _ in source.parameters()):
        raise NoWeightsError(
            f"{type(source).__name__} has no parameters to finetune (an exact or hand-written velocity field?). "
            "Pass a network to start from, e.g. flowlib.build_model(shape, {'arch': 'mlp'}).")
    return copy.deepcopy(source).requires_grad_(True).train()


def save_velocity_model(path: str | Path, model: nn.Module, model_config: dict, shape: tuple[int, ...], *,
                        kind: str = "velocity", **meta) -> None:
    """Save weights plus the config needed to rebuild the net (checksummed, atomic; `kind` recorded).

    Args:
        path: the .pt file; model: the network; model_config: what `build_model` rebuilds it from; shape: the data
        shape; kind: the checkpoint kind; meta: anything else to store.

    Returns:
        None; the file is written atomically with a checksum, and `load_velocity_model` rebuilds the network.

    >>> import tempfile, pathlib
    >>> from flowlib import build_model, load_velocity_model
    >>> net = build_model((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.pt"
    >>> save_velocity_model(path, net, {"arch": "mlp", "hidden": 16, "depth": 2}, (2,))
    >>> type(load_velocity_model(path)).__name__
    'MLPVelocity'
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be an nn.Module to save, got {type(model).__name__}.")
    save_checkpoint(
        {"model_config": dict(model_config), "shape": list(shape), "state_dict": model.state_dict(), "meta": meta}, path,
        kind=kind,
    )


def rebuild_net(state: dict, path: str | Path, rebuild_hint: str = "",
                build: Callable[[], nn.Module] | None = None) -> nn.Module:
    """The network a checkpoint describes, with its weights: `build()` (default: `build_model` from the velocity-model
    and generator format's `model_config` and `shape`) loaded with `state["state_dict"]`. A file whose config or weights
    do not fit each other is a `CheckpointError`, never a raw traceback."""
    from .models import build_model

    try:
        model = build() if build is not None else build_model(tuple(state["shape"]), state["model_config"])
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        fix = f" Rebuild it with: {rebuild_hint}" if rebuild_hint else " Rebuild it with the step that wrote it."
        raise CheckpointError(f"{path} does not rebuild into its network ({exception_line(exc)}).{fix}") from None
    return model


def load_velocity_model(path: str | Path, rebuild_hint: str = "") -> nn.Module:
    """Rebuild a net saved by `save_velocity_model`, in eval mode with gradients off (any other kind of
    checkpoint is refused, naming its kind and loader).

    Args:
        path: a checkpoint written by `save_velocity_model`; rebuild_hint: how to remake it, quoted in errors.

    Returns:
        The network, in eval mode with gradients off.

    >>> try:
    ...     load_velocity_model("no/such/file.pt")
    ... except CheckpointError as err:
    ...     print(type(err).__name__)
    CheckpointError
    """
    state = load_checkpoint(path, rebuild_hint, kind="velocity")
    return rebuild_net(state, path, rebuild_hint).eval().requires_grad_(False)
