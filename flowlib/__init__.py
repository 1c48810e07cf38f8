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
"""
from .artifacts import CheckpointError, CheckpointKindError
from .distill.bespoke import fit_bespoke, train_bespoke
from .distill.boss import straighten
from .distill.fgm import GeneratorSampler, OneStepGenerator, train_fgm
from .distill.flowturbo import train_refiner
from .errors import ArgumentError, FlowlibError
from .evaluate import compare_samplers
from .flow import NoWeightsError, TrainConfig, TrainData, TrainResult, load_velocity_model, save_velocity_model, train_teacher
from .models import GaussianMixtureVelocity, MLPVelocity, UNetVelocity, VelocityRefiner, build_model, ring_mixture
from .solvers import AdaptiveSampler, ODESampler, Sampler, as_time_grid, solve, solve_adaptive, uniform_grid
from .solvers.bellman import bellman_sampler
from .solvers.bespoke import BespokeSampler, BespokeSolver
from .solvers.flowturbo import FlowTurboSampler, Schedule
from .solvers.grids import GridError
from .solvers.nfe import CountingVelocity, NonFiniteError, VelocityCallError, VelocityShapeError

__version__ = "0.1.0"

__all__ = [
    # velocity fields and samplers
    "GaussianMixtureVelocity", "ring_mixture", "MLPVelocity", "UNetVelocity", "build_model",
    "Sampler", "ODESampler", "AdaptiveSampler", "solve", "solve_adaptive", "uniform_grid", "as_time_grid",
    "CountingVelocity", "compare_samplers",
    # the four methods
    "bellman_sampler", "straighten", "BespokeSolver", "BespokeSampler", "fit_bespoke", "train_bespoke",
    "VelocityRefiner", "train_refiner", "FlowTurboSampler", "Schedule",
    "OneStepGenerator", "GeneratorSampler", "train_fgm",
    # training and checkpoints
    "TrainConfig", "TrainData", "TrainResult", "train_teacher", "save_velocity_model", "load_velocity_model",
    # errors: every one is a FlowlibError
    "FlowlibError", "ArgumentError", "GridError", "VelocityShapeError", "VelocityCallError", "NonFiniteError",
    "CheckpointError", "CheckpointKindError", "NoWeightsError",
]
