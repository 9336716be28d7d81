"""Batched molecular dynamics: state, integrators, relaxations, reporters, observables.

Units throughout: Å, fs, amu, eV, K; conversions live in :mod:`mlpot.md.units`.
"""

from mlpot.md.forces import ForceField
from mlpot.md.integrators import (
    CSVR,
    CSVRState,
    Integrator,
    Langevin,
    LangevinState,
    NoseHooverChain,
    NoseHooverState,
    NPTState,
    NPTStochasticCellRescaling,
    VelocityVerlet,
)
from mlpot.md.relax import FIRE, RelaxResult
from mlpot.md.simulate import Reporter, RestartSchedule, RunSummary, SafetyLimits, run_md
from mlpot.md.state import MDState, maxwell_boltzmann

__all__ = [
    "CSVR",
    "FIRE",
    "CSVRState",
    "ForceField",
    "Integrator",
    "Langevin",
    "LangevinState",
    "MDState",
    "NPTState",
    "NPTStochasticCellRescaling",
    "NoseHooverChain",
    "NoseHooverState",
    "RelaxResult",
    "Reporter",
    "RestartSchedule",
    "RunSummary",
    "SafetyLimits",
    "VelocityVerlet",
    "maxwell_boltzmann",
    "run_md",
]
