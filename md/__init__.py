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
from mlpot.md.simulate import RunSummary, SafetyLimits, run_md
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
    "RunSummary",
    "SafetyLimits",
    "VelocityVerlet",
    "maxwell_boltzmann",
    "run_md",
]
