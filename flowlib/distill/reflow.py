"""The reflow baselines of BOSS (its Table 2): finetune on (noise, teacher sample) couplings.

Uniform-Reflow draws t ~ U(eps, 1); Distill-k-Reflow draws t from the k points eps + j (1 - eps) / k. Both
regress v(x_t, t) onto x1_hat - z with x_t = (1 - t) z + t x1_hat, under the same budget as straightening.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ArgumentError
from ..flow import TrainConfig, TrainResult, linear_path, train, trainable_copy


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
    t = reflow_times(batch_size, generator, k, eps).to(z.dtype)
    xt, target = linear_path(z[i], x1[i], t)
    return (net(xt, t) - target).pow(2).mean()


def reflow(teacher: nn.Module, z: Tensor, x1: Tensor, config: TrainConfig, batch_size: int, *,
           k: int | None = None, eps: float = 1e-3, start: nn.Module | None = None,
           progress: bool = True, validate: Callable[[nn.Module], float] | None = None) -> tuple[nn.Module, TrainResult]:
    """Finetune a copy of `teacher` (or of `start`) on the coupling; returns the EMA student and the training result.

    `validate(student) -> score` (lower is better) drives the trainer's stopping rule (`config.val_every`)."""
    student = trainable_copy(teacher, start)

    def loss_fn(net: nn.Module, generator: torch.Generator) -> Tensor:
        return reflow_loss(net, z, x1, batch_size, generator, k, eps)

    result = train(student, loss_fn, config, progress=progress, desc="uniform-reflow" if k is None else f"distill-{k}-reflow",
                   validate=validate)
    return result.ema_model.eval().requires_grad_(False), result
