"""flowlib: shared code to reproduce BOSS, Bespoke solvers, FlowTurbo and Flow Generator Matching.

Every method is a sampler (`sampler(noise) -> samples`, `.nfe`, `.name`) built on any velocity field v(x, t), a
network or a plain function. Convention: t = 0 is noise, t = 1 is data; linear path x_t = (1 - t) x0 + t x1.
The names below are the public API (the README's "Use flowlib on your own model" shows them at work). Everything
flowlib refuses raises a subclass of `flowlib.FlowlibError`, with a message that names the problem and the fix:

>>> import torch, flowlib
>>> v = flowlib.ring_mixture()                     # an exact velocity field (8 Gaussians on a ring)
>>> z = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
>>> flowlib.ODESampler(v, 4, "heun")(z).shape
torch.Size([128, 2])

Each name is imported from its module on first use (`PUBLIC` says which), so `import flowlib.config` reads the
configuration without loading the samplers and trainers.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it (relative to flowlib)
PUBLIC: dict[str, str] = {
    # velocity fields and samplers
    "GaussianMixtureVelocity": "models", "ring_mixture": "models", "MLPVelocity": "models",
    "UNetVelocity": "models", "build_model": "models",
    "Sampler": "solvers", "ODESampler": "solvers", "AdaptiveSampler": "solvers", "solve": "solvers",
    "solve_adaptive": "solvers", "uniform_grid": "solvers", "as_time_grid": "solvers",
    "CountingVelocity": "solvers.nfe", "compare_samplers": "evaluate",
    # the four methods
    "bellman_sampler": "solvers.bellman", "straighten": "distill.boss",
    "BespokeSolver": "solvers.bespoke", "BespokeSampler": "solvers.bespoke",
    "fit_bespoke": "distill.bespoke", "train_bespoke": "distill.bespoke",
    "VelocityRefiner": "models", "train_refiner": "distill.flowturbo",
    "FlowTurboSampler": "solvers.flowturbo", "Schedule": "solvers.flowturbo",
    "OneStepGenerator": "distill.fgm", "GeneratorSampler": "distill.fgm", "train_fgm": "distill.fgm",
    # training and checkpoints
    "TrainConfig": "flow", "TrainResult": "flow", "train_teacher": "flow",
    "TrainData": "train_data", "DataSampler": "train_data", "Coupling": "train_data", "NoiseShape": "train_data",
    "StraighteningPairs": "distill.boss", "DenseTrajectories": "distill.bespoke",
    "save_velocity_model": "flow", "load_velocity_model": "flow",
    # errors: every one is a FlowlibError
    "FlowlibError": "errors", "ArgumentError": "errors", "GridError": "solvers.grids",
    "VelocityShapeError": "solvers.nfe", "VelocityCallError": "solvers.nfe", "NonFiniteError": "solvers.nfe",
    "CheckpointError": "artifacts", "CheckpointKindError": "artifacts", "NoWeightsError": "flow",
}

__all__ = list(PUBLIC)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and keep the name here."""
    if name not in PUBLIC:
        raise AttributeError(f"module 'flowlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(PUBLIC))

