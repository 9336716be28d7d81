"""Relax a strained fcc argon crystal (positions + cell) and run a short NVE MD with mlpot.

Uses the Lennard-Jones potential through mlpot's ASE calculator, driven by ASE's FIRE
optimizer with a FrechetCellFilter, then ASE's velocity Verlet. Run:
    python examples/relax_argon.py
    MLPOT_EXAMPLE_QUICK=1 python examples/relax_argon.py   # 2x2x2 cells, fmax 1e-2, 0.1 ps
"""

import os

import ase.build
import numpy as np
from ase import units
from ase.filters import FrechetCellFilter
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE

from mlpot import MLPotCalculator
from mlpot.models import LennardJones

QUICK = os.environ.get("MLPOT_EXAMPLE_QUICK") == "1"


def main() -> None:
    atoms = ase.build.bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2 if QUICK else 3)
    atoms.rattle(0.05, seed=1)
    atoms.calc = MLPotCalculator(LennardJones(["Ar"]).double())
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=1e-2 if QUICK else 1e-3, steps=2000)
    a = (4 * atoms.get_volume() / len(atoms)) ** (1 / 3)
    print(
        f"relaxed fcc Ar: a = {a:.4f} Å, E = {atoms.get_potential_energy() / len(atoms):.5f}"
        f" eV/atom, max |F| = {np.abs(atoms.get_forces()).max():.1e} eV/Å "
        f"after {opt.nsteps} FIRE steps"
    )
    thermalize_momenta(atoms, temperature_K=40, rng=np.random.default_rng(0))
    Stationary(atoms)
    e_start = atoms.get_total_energy()
    md = VelocityVerlet(atoms, timestep=5 * units.fs, logfile=None)
    block_steps = 10 if QUICK else 100
    for block in range(5):
        md.run(block_steps)
        print(
            f"t = {(block + 1) * block_steps * 5 / 1000:.2f} ps  "
            f"T = {atoms.get_temperature():6.2f} K  Etot = {atoms.get_total_energy():.6f} eV"
        )
    drift = abs(atoms.get_total_energy() - e_start) / len(atoms)
    print(f"NVE energy drift over {5 * block_steps * 5 / 1000:.2f} ps: {drift:.2e} eV/atom")


if __name__ == "__main__":
    main()
