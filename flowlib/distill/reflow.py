"""The reflow baselines of BOSS (its Table 2): finetune on (noise, teacher sample) couplings.

Uniform-Reflow draws t ~ U(eps, 1); Distill-k-Reflow draws t from the k points eps + j (1 - eps) / k. Both
regress v(x_t, t) onto x1_hat - z with x_t = (1 - t) z + t x1_hat, under the same budget as straightening.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..device import shard
from ..errors import ArgumentError
from ..flow import (
    TrainConfig,
    TrainData,
    TrainResult,
    check_samples,
    linear_path,
    require_data,
    train,
    trainable_copy,
)
from ..train_data import Coupling


def reflow_times(n: int, generator: torch.Generator, k: int | None = None, eps: float = 1e-3) -> Tensor:
    """n times: uniform in [eps, 1) (k None) or drawn from the k points eps + j (1 - eps) / k."""
    if k is None:
        return eps + (1 - eps) * torch.rand(n, generator=generator)
    if k < 1:
        raise ArgumentError(f"Distill-k-Reflow needs k >= 1, got {k}.")
    return eps + (1 - eps) * torch.randint(k, (n,), generator=generator).float() / k


def reflow_loss(net: nn.Module, z: Tensor, x1: Tensor, batch_size: int, generator: torch.Generator,
                k: int | None = None, eps: float = 1e-3) -> Tensor:
    """Flow matching on the fixed coupling (z, x1_hat) at reflow times."""
    i = torch.randint(len(z), (batch_size,), generator=generator)
    t = reflow_times(batch_size, generator, k, eps).to(z)
    xt, target = linear_path(z[i], x1[i], t)
    xt, target, t = shard(xt, target, t)  # this process's share of the global batch (all of it outside torchrun)
    return (net(xt, t) - target).pow(2).mean()


def reflow(teacher: nn.Module, student: nn.Module | None, data: TrainData[Coupling], config: TrainConfig, *,
           k: int | None = None, eps: float = 1e-3, progress: bool = True,
           validate: Callable[[nn.Module], float] | None = None) -> TrainResult:
    """Finetune a copy of `student` (None: of the teacher) on the coupling `data.source` (noise z, sample x1).

    `validate(student) -> score` (lower is better) drives the trainer's stopping rule (`config.val_every`).

    Args:
        teacher: the pretrained velocity net; student: the network to finetune (None: a copy of the teacher);
        data: a `TrainData` of the coupling (noise z, the teacher's samples x1 from it); config: a `TrainConfig`;
        k: Distill-k-Reflow's number of times (None: Uniform-Reflow); eps: the smallest time.

    Returns:
        A `TrainResult` whose `ema_model` is the student (eval mode, gradients off).

    >>> from flowlib import TrainConfig, TrainData, build_model
    >>> teacher = build_model((2,), {"arch": "mlp", "hidden": 16, "depth": 2}).eval()
    >>> z = torch.randn(32, 2)
    >>> reflow(teacher, None, TrainData((z, z + 1), 16), TrainConfig(steps=2, warmup=0), k=2, progress=False).steps
    2
    """
    require_data(data, "reflow", Coupling)
    z, x1, batch_size = data.source.noise, data.source.target, data.batch_size
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ArgumentError(f"reflow: k (Distill-k-Reflow's number of times) must be an integer ≥ 1 or None "
                            f"(Uniform-Reflow), got {k!r}.")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps < 1):
        raise ArgumentError(f"reflow: eps (the smallest training time) must be a number in [0, 1), got {eps!r}: the "
                            "times are drawn from [eps, 1).")
    student = trainable_copy(teacher, student)
    z = check_samples(student, z, "data.source.noise", "reflow")
    x1 = check_samples(student, x1, "data.source.target (the teacher's samples)", "reflow")

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return reflow_loss(net, z, x1, batch_size, generator, k, eps)

    result = train(student, loss_fn, config, progress=progress, desc="uniform-reflow" if k is None else f"distill-{k}-reflow",
                   validate=validate)
    result.ema_model = result.ema_model.eval().requires_grad_(False)
    return result
