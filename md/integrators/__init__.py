"""Integrators with a common ``step(state, forces_fn)`` interface, one ensemble per file."""

from mlpot.md.integrators.base import ForcesFn, Integrator
from mlpot.md.integrators.csvr import CSVR
from mlpot.md.integrators.langevin import Langevin
from mlpot.md.integrators.nose_hoover import NoseHooverChain
from mlpot.md.integrators.npt_scr import NPTStochasticCellRescaling
from mlpot.md.integrators.verlet import VelocityVerlet

__all__ = [
    "CSVR",
    "ForcesFn",
    "Integrator",
    "Langevin",
    "NPTStochasticCellRescaling",
    "NoseHooverChain",
    "VelocityVerlet",
]
