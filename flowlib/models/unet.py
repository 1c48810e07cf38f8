"""A compact UNet velocity net (time-conditioned residual blocks, optional self-attention), 8x8 to 32x32."""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..errors import ArgumentError, NonNegative, Positive, checked_args
from .embeddings import SinusoidalTimeEmbedding


def _norm(channels: int) -> nn.GroupNorm:
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice, with the time embedding added in between (DDPM style)."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over spatial positions, residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNetVelocity(nn.Module):
    """v(x, t) for images [B, C, H, W]; H and W must be divisible by 2**(len(channel_mult) - 1).

    `out_channels` defaults to C (another count: the velocity refiner's body). `width` is the base channel count,
    `channel_mult` the multiplier per level, `attention_levels` the level
    indices (0 = full resolution) that get self-attention after each residual block.

    Args:
        shape: (C, H, W) of one image; width: base channel count; channel_mult: channel multiplier per level;
        num_res_blocks: residual blocks per level; attention_levels: levels with self-attention; the remaining
        keywords (dropout, out_channels, ...) as in the signature.

    >>> net = UNetVelocity((1, 8, 8), width=8, channel_mult=(1, 2), attention_levels=())
    >>> net(torch.zeros(2, 1, 8, 8), torch.zeros(2)).shape
    torch.Size([2, 1, 8, 8])
    """

    @checked_args
    def __init__(
        self,
        shape: tuple[Positive, Positive, Positive],
        width: Positive = 32,
        channel_mult: Annotated[tuple[Positive, ...], Field(min_length=1)] = (1, 2),
        num_res_blocks: Positive = 1,
        attention_levels: tuple[NonNegative, ...] = (),
        dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        time_dim: Positive = 64,
        out_channels: Positive | None = None,
    ):
        super().__init__()
        c, h, w = shape
        factor = 2 ** (len(channel_mult) - 1)
        if h % factor or w % factor:
            raise ArgumentError(f"UNetVelocity: image size {h}x{w} is not divisible by {factor} ({len(channel_mult)} levels)")
        self.shape = tuple(shape)
        temb_dim = 4 * width
        self.time_embed = nn.Sequential(
            SinusoidalTimeEmbedding(time_dim), nn.Linear(time_dim, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        self.inp = nn.Conv2d(c, width, 3, padding=1)
        chans = [width * m for m in channel_mult]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, ch = [width], width
        for level, c_level in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(self._block(ch, c_level, temb_dim, dropout, level in attention_levels))
                ch = c_level
                skips.append(ch)
            self.down.append(blocks)
            last = level == len(chans) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skips.append(ch)
        self.mid = nn.ModuleList([self._block(ch, ch, temb_dim, dropout, True), self._block(ch, ch, temb_dim, dropout, False)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(chans))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(self._block(ch + skips.pop(), chans[level], temb_dim, dropout, level in attention_levels))
                ch = chans[level]
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1) if level > 0 else nn.Identity())
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels or c, 3, padding=1))

    @staticmethod
    def _block(c_in: int, c_out: int, temb_dim: int, dropout: float, attention: bool) -> nn.ModuleList:
        layers = [ResBlock(c_in, c_out, temb_dim, dropout)]
        if attention:
            layers.append(SelfAttention(c_out))
        return nn.ModuleList(layers)

    @staticmethod
    def _run(block: nn.ModuleList, h: Tensor, temb: Tensor) -> Tensor:
        h = block[0](h, temb)
        return block[1](h) if len(block) > 1 else h

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time_embed(t)
        h = self.inp(x)
        hs = [h]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = self._run(block, h, temb)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        for block in self.mid:
            h = self._run(block, h, temb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = self._run(block, torch.cat([h, hs.pop()], dim=1), temb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(h)

