"""BOSS, phase 2: straightening finetune at the Bellman steps (notebook 02_boss, Method).

Pairs are consecutive Bellman points (x_{tau_k}, x_{tau_k+1}) of the teacher's fine Euler trajectories, stored
with their **integer** fine-grid indices; the loss regresses v(x_{tau_k}, tau_k) onto the chord
(x_{tau_k+1} - x_{tau_k}) / (tau_k+1 - tau_k), mean over dims and batch, with minibatches drawn uniformly
from all (sample, interval) pairs. Inputs are teacher states, not the student's own rollout: by design, so each K
gets its own finetune.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import Tensor, nn

from ..device import shard
from ..errors import ArgumentError
from ..flow import TrainConfig, TrainData, TrainResult, check_samples, require_data, train, trainable_copy
from ..models import count_parameters
from ..models.lora import apply_lora, merge_lora
from ..solvers.bellman import EulerRollout
from ..train_data import Source


@dataclass
class StraighteningPairs(Source):
    """Start and end states of every Bellman interval of every trajectory, with fine-grid indices: what `straighten`
    trains on (`straightening_pairs` builds them from the teacher's rollout).

    Args:
        x_a, x_b: the states at each interval's start and end; idx_a, idx_b: their indices into `times`; times: the
        rollout's fine grid.

    >>> from flowlib.solvers import euler_rollout
    >>> rollout = euler_rollout(lambda x, t: -x, torch.randn(8, 2), 10)
    >>> len(straightening_pairs(rollout, torch.tensor([0, 4, 10])))  # 8 trajectories x 2 intervals
    16
    """

    what: ClassVar[str] = "the StraighteningPairs of flowlib.distill.boss.straightening_pairs"

    x_a: Tensor
    x_b: Tensor
    idx_a: Tensor   # LongTensor into `times`
    idx_b: Tensor
    times: Tensor   # the fine grid, float64

    def __len__(self) -> int:
        return len(self.x_a)


def straightening_pairs(rollout: EulerRollout, path: Tensor) -> StraighteningPairs:
    """One pair per (trajectory, interval) of the Bellman `path` (integer indices into the rollout's grid)."""
    path = path.long()
    if path[0] != 0 or path[-1] != len(rollout.times) - 1 or (path.diff() <= 0).any():
        raise ArgumentError(f"A Bellman path must increase from 0 to {len(rollout.times) - 1}, got {path.tolist()}.")
    batch = rollout.states.shape[1]
    a, b = path[:-1], path[1:]
    return StraighteningPairs(
        x_a=rollout.states[a].flatten(0, 1),
        x_b=rollout.states[b].flatten(0, 1),
        idx_a=a.repeat_interleave(batch),
        idx_b=b.repeat_interleave(batch),
        times=rollout.times,
    )


def straightening_loss(net: nn.Module, pairs: StraighteningPairs, batch_size: int, generator: torch.Generator) -> Tensor:
    """mean || v(x_a, t_a) - (x_b - x_a) / (t_b - t_a) ||^2 over a uniform minibatch of pairs."""
    i = torch.randint(len(pairs), (batch_size,), generator=generator)
    x_a, x_b = pairs.x_a[i], pairs.x_b[i]
    t_a, t_b = pairs.times[pairs.idx_a[i]].to(x_a.device), pairs.times[pairs.idx_b[i]].to(x_a.device)
    chord = (x_b - x_a) / (t_b - t_a).to(x_a.dtype).view(-1, *([1] * (x_a.dim() - 1)))
    x_a, chord, t_a = shard(x_a, chord, t_a)  # this process's share of the global batch (all of it outside torchrun)
    return (net(x_a, t_a.to(x_a.dtype)) - chord).pow(2).mean()


def straighten(
    teacher: nn.Module,
    student: nn.Module | None,
    data: TrainData[StraighteningPairs],
    config: TrainConfig,
    *,
    lora_rank: int | None = None,
    lora_alpha: float = 1.0,
    progress: bool = True,
    validate: Callable[[nn.Module], float] | None = None,
) -> TrainResult:
    """Finetune a copy of `student` (None: of the teacher; all weights, or rank-`lora_rank` LoRA) on the straightening
    pairs `data.source`.

    The student starts from the given teacher weights (flowlib passes the EMA teacher; the official code starts
    from the raw weights); pass a `student` network when the teacher is a field without weights. `validate(student)
    -> score` (lower is better, e.g. the RMSE of Euler on the Bellman grid to the ground truth of held-out noise)
    drives the trainer's stopping rule (`config.val_every`).

    Args:
        teacher: the pretrained velocity net; student: the network to finetune (None: a copy of the teacher);
        data: a `TrainData` of the `straightening_pairs` of the teacher's rollout on a Bellman path; config: a
        `TrainConfig`; lora_rank, lora_alpha, validate: as described above.

    Returns:
        A `TrainResult` whose `ema_model` is the straightened student as a plain network (LoRA merged, eval mode);
        `extras["trained_params"]`: the number of parameters trained.

    >>> from flowlib import TrainConfig, TrainData, build_model
    >>> from flowlib.solvers import euler_rollout
    >>> teacher = build_model((2,), {"arch": "mlp", "hidden": 16, "depth": 2}).eval()
    >>> rollout = euler_rollout(teacher, torch.randn(32, 2), 10)
    >>> pairs = straightening_pairs(rollout, torch.tensor([0, 3, 7, 10]))
    >>> result = straighten(teacher, None, TrainData(pairs, 16), TrainConfig(steps=3, warmup=0), progress=False)
    >>> result.steps, result.extras["trained_params"] == sum(p.numel() for p in teacher.parameters())
    (3, True)
    """
    require_data(data, "straighten", StraighteningPairs)
    pairs, batch_size = data.source, data.batch_size
    student = trainable_copy(teacher, student)
    for name in ("x_a", "x_b"):
        check_samples(student, getattr(pairs, name), f"data.source.{name} (the pairs' states)", "straighten")
    if lora_rank is not None:
        torch.manual_seed(config.seed)  # LoRA's A is random: seed it, or reruns differ
        student = apply_lora(student, lora_rank, lora_alpha)
    trained = count_parameters(student, trainable_only=True)

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return straightening_loss(net, pairs, batch_size, generator)

    desc = f"boss-{'lora' + str(lora_rank) if lora_rank else 'full'}"
    result = train(student, loss_fn, config, progress=progress, desc=desc, validate=validate)
    final = merge_lora(result.ema_model) if lora_rank is not None else result.ema_model
    result.ema_model = final.eval().requires_grad_(False)
    result.extras["trained_params"] = trained
    return result
