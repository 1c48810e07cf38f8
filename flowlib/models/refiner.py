"""FlowTurbo's velocity refiner: a small net that corrects a cached velocity instead of calling the teacher.

r(x, t, v) predicts an offset, so the refined velocity is v + r(x, t, v). Its body is a small network of the
teacher's kind (an MLP for vectors and flattened images, a thin UNet for images) fed with [x, v] stacked on the
channel axis; its last layer starts at zero, so an untrained refiner returns exactly v.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError
from .mlp import MLPVelocity
from .unet import UNetVelocity


class VelocityRefiner(nn.Module):
    """r(x, t, v) -> velocity offset for samples of `shape`; `config` is `{"arch": "mlp" | "unet", **kwargs}`.

    Args:
        shape: the data shape; config: {"arch": "mlp" | "unet", **kwargs} of its body (as build_model's).

    >>> r = VelocityRefiner((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    >>> x = torch.randn(3, 2)
    >>> bool((r(x, torch.zeros(3), x) == 0).all())   # zero-initialised: no correction before training
    True
    """

    def __init__(self, shape: tuple[int, ...], config: dict[str, Any]):
        super().__init__()
        config = dict(config)
        arch = config.pop("arch", "mlp")
        self.shape = tuple(shape)
        stacked = (2 * self.shape[0], *self.shape[1:])  # [x, v] on the channel (or feature) axis
        if arch == "mlp":
            self.body: nn.Module = MLPVelocity(stacked, out_shape=self.shape, **config)
            final = self.body.out
        elif arch == "unet":
            for key in ("channel_mult", "attention_levels"):
                if key in config:
                    config[key] = tuple(config[key])
            self.body = UNetVelocity(stacked, out_channels=self.shape[0], **config)
            final = self.body.out[-1]
        else:
            raise ArgumentError(f"Unknown refiner arch {arch!r}; choose 'mlp' or 'unet'.")
        nn.init.zeros_(final.weight)
        nn.init.zeros_(final.bias)

    def forward(self, x: Tensor, t: Tensor, v: Tensor) -> Tensor:
        return self.body(torch.cat([x, v], dim=1), t)
