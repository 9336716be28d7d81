"""Relax a strained, rattled Cu crystal and a Cu(111) slab with ASE, through mlpot.

The shipped ML model ``mlpot-metals-small`` (trained on ASE EMT labels) drives ASE's FIRE
through :class:`mlpot.MLPotCalculator`. The bulk cell relaxes positions and cell together
(``FrechetCellFilter``); the slab relaxes its atoms at the bulk lattice constant (its
cell is fixed: vacuum along z). Energy, volume and pressure are printed per step, then
the same relaxations under EMT, the method the model was trained on, for comparison::

    python examples/relax_with_ase.py            # 3x3x3 supercell (108 atoms), fmax 1e-3
    MLPOT_EXAMPLE_QUICK=1 python examples/relax_with_ase.py   # 2x2x2, fmax 1e-2 (seconds)

Units: energies eV, lengths Å, stress and pressure GPa in the printout (ASE's internal
stress unit is eV/Å³; positive pressure = compressed).
"""

from __future__ import annotations

import os

import ase.build
import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE

from mlpot import MLPotCalculator

QUICK = os.environ.get("MLPOT_EXAMPLE_QUICK") == "1"
REPEAT = 2 if QUICK else 3
FMAX = 1e-2 if QUICK else 1e-3  # eV/Å (and the cell filter's stress equivalent)
MAX_STEPS = 200 if QUICK else 1000


def strained_bulk() -> Atoms:
    """fcc Cu at +4 % lattice strain with 0.05 Å random displacements."""
    atoms = ase.build.bulk("Cu", "fcc", a=3.61 * 1.04, cubic=True).repeat(REPEAT)
    atoms.rattle(0.05, seed=0)
    return atoms


def relax_bulk(calc: Calculator, label: str, verbose: bool) -> float:
    """Relax positions and cell; print E, V, P per step; return the lattice constant, Å."""
    atoms = strained_bulk()
    atoms.calc = calc
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)

    def report() -> None:
        pressure = -np.trace(atoms.get_stress(voigt=False)) / 3 / units.GPa
        print(
            f"  {label} bulk step {opt.nsteps:4d}  E = {atoms.get_potential_energy():10.4f}"
            f" eV  V = {atoms.get_volume():8.3f} Å³  P = {pressure:7.3f} GPa"
        )

    if verbose:
        opt.attach(report, interval=10)
    opt.run(fmax=FMAX, steps=MAX_STEPS)
    report()
    # four atoms per conventional fcc cell
    return float((4 * atoms.get_volume() / len(atoms)) ** (1 / 3))


def relax_slab(calc: Calculator, a: float, label: str) -> tuple[float, float]:
    """Relax a 4-layer Cu(111) slab at lattice constant ``a``; return (surface energy
    J/m², largest displacement Å) with the bulk energy per atom from the same calculator."""
    slab = ase.build.fcc111("Cu", size=(REPEAT, REPEAT, 4), a=a, vacuum=8.0)
    slab.rattle(0.02, seed=1)
    start = slab.positions.copy()
    slab.calc = calc
    opt = FIRE(slab, logfile=None)
    opt.run(fmax=FMAX, steps=MAX_STEPS)
    bulk = ase.build.bulk("Cu", "fcc", a=a)
    bulk.calc = calc
    e_bulk = bulk.get_potential_energy() / len(bulk)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gamma = (slab.get_potential_energy() - len(slab) * e_bulk) / (2 * area)
    moved = float(np.linalg.norm(slab.positions - start, axis=1).max())
    print(
        f"  {label} slab: {opt.nsteps} FIRE steps, max |F| = "
        f"{np.abs(slab.get_forces()).max():.1e} eV/Å, largest displacement {moved:.3f} Å"
    )
    return float(gamma * 16.021766), moved  # eV/Å² -> J/m²


def main() -> None:
    ml = MLPotCalculator("mlpot-metals-small")
    print(f"mlpot-metals-small, bulk {4 * REPEAT**3} atoms, fmax {FMAX} eV/Å")
    a_ml = relax_bulk(ml, "mlpot", verbose=True)
    a_emt = relax_bulk(EMT(), "EMT  ", verbose=False)
    gamma_ml, _ = relax_slab(ml, a_ml, "mlpot")
    gamma_emt, _ = relax_slab(EMT(), a_emt, "EMT  ")
    print(
        f"lattice constant: mlpot {a_ml:.4f} Å, EMT {a_emt:.4f} Å "
        f"(difference {a_ml - a_emt:+.4f} Å)"
    )
    print(f"Cu(111) surface energy: mlpot {gamma_ml:.3f} J/m², EMT {gamma_emt:.3f} J/m²")


if __name__ == "__main__":
    main()
