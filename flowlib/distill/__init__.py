"""Distillers: BOSS straightening and the reflow baselines (more methods arrive with their issues)."""
from .boss import StraighteningPairs, straighten, straightening_loss, straightening_pairs
from .reflow import reflow, reflow_loss, reflow_times

__all__ = ["StraighteningPairs", "straighten", "straightening_loss", "straightening_pairs", "reflow", "reflow_loss",
           "reflow_times"]
