"""Batched FIRE: positions and cell relaxations agree with ASE's optimizers."""

import numpy as np
import torch
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from mlpot import MLPotCalculator
from mlpot.md import FIRE, ForceField, MDState
from mlpot.md.units import GPA

from .helpers import argon_lj, fcc_argon


def test_batched_fire_relaxes_positions():
    rng = np.random.default_rng(0)
    systems = []
    for a in (5.2, 5.3, 5.4):
        atoms = fcc_argon(2, a=a)
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        systems.append(atoms)
    model = argon_lj(7.0)
    result = FIRE(fmax=1e-4, max_steps=2000).run(MDState.from_atoms(systems), ForceField(model))
    assert bool(result.converged.all()), result.fmax
    for k, a in enumerate((5.2, 5.3, 5.4)):
        perfect = fcc_argon(2, a=a)
        perfect.calc = MLPotCalculator(model)
        assert abs(float(result.state.energy[k]) - perfect.get_potential_energy()) < 2e-6


def test_fire_cell_filter_matches_ase_and_reaches_pressure():
    model = argon_lj(7.0)
    systems = [fcc_argon(2, a=5.0), fcc_argon(2, a=5.6)]
    systems[1].cell[0, 1] = 0.3  # a sheared cell relaxes too
    systems[1].positions += 0.05
    state = MDState.from_atoms(systems)
    for pressure in (0.0, 0.3 * GPA):
        ff = ForceField(model, skin=0.5, compute_stress=True)
        result = FIRE(fmax=1e-5, max_steps=3000, cell_filter=True, pressure=pressure).run(
            state, ff)
        assert bool(result.converged.all()), result.fmax
        stress = result.state.stress
        target = -pressure * torch.eye(3, dtype=stress.dtype)
        assert float((stress - target).abs().max()) < 2e-6  # eV/Å³, ≈ 3e-4 GPa
        volumes = result.state.volume()
        assert abs(float(volumes[0] - volumes[1])) / float(volumes[0]) < 1e-4  # same crystal
    # ASE reference at zero pressure: FrechetCellFilter + BFGS
    ref = fcc_argon(2, a=5.0)
    ref.calc = MLPotCalculator(model)
    BFGS(FrechetCellFilter(ref), logfile=None).run(fmax=1e-6, steps=500)
    zero = FIRE(fmax=1e-5, max_steps=3000, cell_filter=True).run(
        MDState.from_atoms([fcc_argon(2, a=5.0)]), ForceField(model, compute_stress=True))
    assert abs(float(zero.state.volume()[0]) / ref.get_volume() - 1) < 5e-5


def test_fire_reuses_the_verlet_list_with_identical_forces():
    """A position + cell relaxation rebuilds its pair list a few times, not every step,
    and its final forces and stress are bit for bit those of a list built fresh."""
    model = argon_lj(7.0)
    atoms = fcc_argon(2, a=5.1)
    atoms.rattle(0.1, seed=3)
    ff = ForceField(model, skin=0.5, compute_stress=True)
    result = FIRE(fmax=1e-4, max_steps=3000, cell_filter=True).run(
        MDState.from_atoms([atoms]), ff)
    assert bool(result.converged.all())
    assert result.steps > 50 and ff.rebuilds < result.steps / 5, (ff.rebuilds, result.steps)
    fresh = ForceField(model, skin=0.0, compute_stress=True).evaluate(result.state)
    assert torch.equal(fresh.forces, result.state.forces)
    assert torch.equal(fresh.stress, result.state.stress)
