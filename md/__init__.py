"""Batched molecular dynamics: state, integrators, relaxations, reporters, observables.

Units throughout: Å, fs, amu, eV, K; conversions live in :mod:`mlpot.md.units`.
"""

from mlpot.md.forces import ForceField
from mlpot.md.integrators import (
    CSVR,
    Integrator,
    Langevin,
    NoseHooverChain,
    NPTStochasticCellRescaling,
    VelocityVerlet,
)
from mlpot.md.relax import FIRE, RelaxResult
from mlpot.md.state import MDState, maxwell_boltzmann

__all__ = [
    "CSVR",
    "FIRE",
    "ForceField",
    "Integrator",
    "Langevin",
    "MDState",
    "NPTStochasticCellRescaling",
    "NoseHooverChain",
    "RelaxResult",
    "VelocityVerlet",
    "maxwell_boltzmann",
]
