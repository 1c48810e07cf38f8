"""Sinusoidal embedding of flow time t in [0, 1]."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalTimeEmbedding(nn.Module):
    """Map t of shape [B] to [B, dim] features sin/cos(f t) with f spaced geometrically in [1, max_freq].

    The frequencies reach `max_freq` (default 1000) so that small step sizes near t = 0 or 1 stay resolvable.
    """

    def __init__(self, dim: int, max_freq: float = 1000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
