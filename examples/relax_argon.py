"""Relax a strained fcc argon crystal (positions + cell) and run a short NVE MD with mlpot.

Uses the Lennard-Jones potential through mlpot's ASE calculator, driven by ASE's FIRE
optimizer with a FrechetCellFilter, then ASE's velocity Verlet. Run:
    python examples/relax_argon.py
"""

import ase.build
import numpy as np
from ase import units
from ase.filters import FrechetCellFilter
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import FIRE

from mlpot import MLPotCalculator
from mlpot.models import LennardJones


def main() -> None:
    atoms = ase.build.bulk("Ar", "fcc", a=5.6, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=1)
    atoms.calc = MLPotCalculator(LennardJones(["Ar"]).double())
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=1e-3, steps=2000)
    a = (4 * atoms.get_volume() / len(atoms)) ** (1 / 3)
    print(f"relaxed fcc Ar: a = {a:.4f} Å, E = {atoms.get_potential_energy() / len(atoms):.5f}"
          f" eV/atom, max |F| = {np.abs(atoms.get_forces()).max():.1e} eV/Å "
          f"after {opt.nsteps} FIRE steps")
    thermalize_momenta(atoms, temperature_K=40, rng=np.random.default_rng(0))
    Stationary(atoms)
    e_start = atoms.get_total_energy()
    md = VelocityVerlet(atoms, timestep=5 * units.fs, logfile=None)
    for block in range(5):
        md.run(100)
        print(f"t = {(block + 1) * 0.5:.1f} ps  T = {atoms.get_temperature():6.2f} K  "
              f"Etot = {atoms.get_total_energy():.6f} eV")
    drift = abs(atoms.get_total_energy() - e_start) / len(atoms)
    print(f"NVE energy drift over 2.5 ps: {drift:.2e} eV/atom")


if __name__ == "__main__":
    main()
