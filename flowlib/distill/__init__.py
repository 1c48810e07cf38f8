"""Distillers and trainers of the methods: BOSS straightening, the reflow baselines, FlowTurbo's refiner, FGM."""
from .boss import StraighteningPairs, straighten, straightening_loss, straightening_pairs
from .fgm import GeneratorSampler, OneStepGenerator, generator_loss, load_generator, save_generator, train_fgm
from .flowturbo import load_refiner, refiner_loss, save_refiner, train_refiner
from .reflow import reflow, reflow_loss, reflow_times

__all__ = [
    "StraighteningPairs", "straighten", "straightening_loss", "straightening_pairs", "reflow", "reflow_loss", "reflow_times",
    "GeneratorSampler", "OneStepGenerator", "generator_loss", "load_generator", "save_generator", "train_fgm",
    "load_refiner", "refiner_loss", "save_refiner", "train_refiner",
]
