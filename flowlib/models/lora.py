"""LoRA on every Linear and Conv2d weight (BOSS's parameter-efficient straightening).

W' = W + (alpha / r) B A, with A Kaiming-uniform (a = sqrt 5) and B = 0, so the wrapped model's output equals
the original's exactly at initialisation. A conv weight is treated as an (out, in/groups * kh * kw) matrix.
Only A and B are trainable; `merge_lora` folds them back into a plain copy of the architecture.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentError


class LoRALayer(nn.Module):
    """A frozen Linear or Conv2d plus a trainable rank-`rank` update of its weight."""

    def __init__(self, base: nn.Linear | nn.Conv2d, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ArgumentError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        out_features = base.weight.shape[0]
        in_features = base.weight[0].numel()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def delta_weight(self) -> Tensor:
        return (self.scale * self.lora_b @ self.lora_a).view_as(self.base.weight)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.base.weight + self.delta_weight()
        if isinstance(self.base, nn.Linear):
            return F.linear(x, weight, self.base.bias)
        b = self.base
        return F.conv2d(x, weight, b.bias, b.stride, b.padding, b.dilation, b.groups)


def apply_lora(model: nn.Module, rank: int = 4, alpha: float = 1.0) -> nn.Module:
    """A copy of `model` with every Linear/Conv2d wrapped in `LoRALayer`; all other weights frozen."""
    model = copy.deepcopy(model).requires_grad_(False)

    def wrap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                setattr(module, name, LoRALayer(child, rank, alpha))
            else:
                wrap(child)

    wrap(model)
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """A plain copy of a LoRA-wrapped model with each update folded into its base weight."""
    model = copy.deepcopy(model)

    def unwrap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, LoRALayer):
                child.base.weight.add_(child.delta_weight())
                setattr(module, name, child.base)
            else:
                unwrap(child)

    unwrap(model)
    return model
