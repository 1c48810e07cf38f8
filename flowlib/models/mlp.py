"""MLP velocity net for vectors and (flattened) small images."""
from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field
from torch import Tensor, nn

from ..errors import Positive, Shape, checked_args
from .embeddings import SinusoidalTimeEmbedding, shared_time


class MLPVelocity(nn.Module):
    """v(x, t) for inputs of any fixed `shape`: flatten, concatenate a time embedding, `depth` SiLU layers.

    The time embedding is also added to every hidden layer, so deep nets keep seeing t. When every row of a batch
    has the same t (any fixed-grid or adaptive solver step), the time branch — half the multiply-adds — runs once
    and is broadcast: the same function, about twice as fast to sample (not when t needs per-row gradients).

    Args:
        shape: the data shape of one sample; hidden: layer width; depth: number of layers (at least 2);
        time_dim: size of the sinusoidal time embedding; out_shape: the output shape (default: `shape`).

    >>> import torch
    >>> net = MLPVelocity((2,), hidden=16, depth=2, time_dim=8)
    >>> net(torch.zeros(5, 2), torch.full((5,), 0.5)).shape
    torch.Size([5, 2])
    """

    @checked_args
    def __init__(self, shape: Shape, hidden: Positive = 512, depth: Annotated[int, Field(ge=2, strict=True)] = 4,
                 time_dim: Positive = 64, out_shape: Shape | None = None):
        super().__init__()
        self.shape = tuple(shape)
        self.out_shape = tuple(out_shape or shape)  # another output shape: the velocity refiner's body
        dim = math.prod(self.shape)
        self.time_embed = nn.Sequential(SinusoidalTimeEmbedding(time_dim), nn.Linear(time_dim, hidden), nn.SiLU())
        self.inp = nn.Linear(dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 2))
        self.time_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 2))
        self.out = nn.Linear(hidden, math.prod(self.out_shape))
        self.act = nn.SiLU()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if t.dim() == 1 and len(t) > 1 and shared_time(t):
            t = t[:1]  # one time for the whole batch: compute its features once, broadcast below
        temb = self.time_embed(t)
        h = self.act(self.inp(x.flatten(1)) + temb)
        for layer, proj in zip(self.hidden, self.time_proj):
            h = self.act(layer(h) + proj(temb))
        return self.out(h).view(x.shape[0], *self.out_shape)
