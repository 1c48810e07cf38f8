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


def build_model(shape: tuple[int, ...], config: dict[str, Any]) -> nn.Module:
    """Build a velocity net for samples of `shape` from `{"arch": "mlp" | "unet" | "mixture", **kwargs}` (the same
    (shape, config) order as `VelocityRefiner`).

    Args:
        shape: the data shape of one sample, e.g. (2,) or (1, 8, 8).
        config: the architecture and its keyword arguments, as stored in checkpoints and params.yaml.

    Returns:
        The network, in training mode.

    >>> build_model((2,), {"arch": "mlp", "hidden": 32, "depth": 2}).shape
    (2,)
    """
    if isinstance(shape, dict) and not isinstance(config, dict):
        raise ArgumentError("build_model takes (shape, config), the order of every flowlib constructor; got the config "
                            "first. Write build_model(shape, config).")
    if not isinstance(config, dict):
        raise ArgumentError(f"config must be a dict such as {{'arch': 'mlp'}}, got {type(config).__name__}.")
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
