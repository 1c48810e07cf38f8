"""Sinusoidal embedding of flow time t in [0, 1]."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ArgumentError


class SinusoidalTimeEmbedding(nn.Module):
    """Map t of shape [B] to [B, dim] features sin/cos(f t) with f spaced geometrically in [1, max_freq].

    The frequencies reach `max_freq` (default 1000) so that small step sizes near t = 0 or 1 stay resolvable.
    """

    def __init__(self, dim: int, max_freq: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ArgumentError(f"time embedding dim must be even, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def shared_time(t: Tensor) -> bool:
    """Whether every row of a [batch] time tensor holds the same t, so a net may embed it once and broadcast.

    True for an expanded scalar (stride 0, as the solvers pass it: known without reading t, so `torch.compile`
    sees no data-dependent branch) and, outside compilation, for equal values. False when t needs gradients.
    """
    if t.requires_grad and torch.is_grad_enabled():
        return False
    if t.stride(0) == 0:
        return True
    return not torch.compiler.is_compiling() and bool((t == t[0]).all())
