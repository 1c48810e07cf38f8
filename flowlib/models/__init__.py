"""Velocity networks and the factory that builds one from a plain config dict (stored in checkpoints)."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ArgumentError
from .embeddings import SinusoidalTimeEmbedding
from .mixture import GaussianMixtureVelocity, ring_mixture
from .mlp import MLPVelocity
from .refiner import VelocityRefiner
from .unet import UNetVelocity

ARCHITECTURES = {"mlp": MLPVelocity, "unet": UNetVelocity, "mixture": GaussianMixtureVelocity}


def build_model(config: dict[str, Any], shape: tuple[int, ...]) -> nn.Module:
    """Build a velocity net from `{"arch": "mlp" | "unet" | "mixture", **kwargs}` for samples of `shape`."""
    config = dict(config)
    arch = config.pop("arch", None)
    if arch not in ARCHITECTURES:
        raise ArgumentError(f"Unknown model arch {arch!r}; choose one of {sorted(ARCHITECTURES)}.")
    for key in ("channel_mult", "attention_levels"):
        if key in config:
            config[key] = tuple(config[key])
    return ARCHITECTURES[arch](tuple(shape), **config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["GaussianMixtureVelocity", "ring_mixture",
           "MLPVelocity", "UNetVelocity", "VelocityRefiner", "SinusoidalTimeEmbedding", "build_model", "count_parameters",
           "ARCHITECTURES"]
