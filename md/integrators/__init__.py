"""Stateless integrators ``init(state)`` / ``step(state, forces_fn)``, one ensemble per file,
each with its typed state (the ensemble's dynamic variables)."""

from mlpot.md.integrators.base import ForcesFn, Integrator
from mlpot.md.integrators.csvr import CSVR, CSVRState
from mlpot.md.integrators.langevin import Langevin, LangevinState
from mlpot.md.integrators.nose_hoover import NoseHooverChain, NoseHooverState
from mlpot.md.integrators.npt_scr import NPTState, NPTStochasticCellRescaling
from mlpot.md.integrators.verlet import VelocityVerlet

__all__ = [
    "CSVR",
    "CSVRState",
    "ForcesFn",
    "Integrator",
    "Langevin",
    "LangevinState",
    "NPTState",
    "NPTStochasticCellRescaling",
    "NoseHooverChain",
    "NoseHooverState",
    "VelocityVerlet",
]
