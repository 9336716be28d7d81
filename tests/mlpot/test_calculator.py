"""The ASE calculator inside ASE's own optimizers, filters and MD."""

import ase
import ase.build
import ase.units
import numpy as np
import pytest
import torch
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.filters import FrechetCellFilter
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

from mlpot import MLPotCalculator, save_model
from mlpot.models import LennardJones

EPS, SIGMA, RC = 0.0104, 3.40, 8.5


def _strained_argon():
    atoms = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    atoms.set_cell(atoms.cell[:] @ np.array([[1.04, 0.02, 0.0], [0.0, 0.97, 0.01],
                                               [0.0, 0.0, 1.02]]), scale_atoms=True)
    atoms.rattle(0.05, seed=7)
    return atoms


def _relaxed_lattice_constant(atoms, calc) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    opt = FIRE(FrechetCellFilter(atoms), logfile=None)
    assert opt.run(fmax=1e-4, steps=5000)
    assert np.abs(atoms.get_forces()).max() < 1e-3
    return (4 * atoms.get_volume() / len(atoms)) ** (1 / 3)


def test_matches_ase_lennard_jones_results():
    atoms = _strained_argon()
    ours = atoms.copy()
    ours.calc = MLPotCalculator(LennardJones(["Ar"], EPS, SIGMA, RC).double())
    ref = atoms.copy()
    ref.calc = AseLennardJones(epsilon=EPS, sigma=SIGMA, rc=RC, ro=0.66 * RC, smooth=True)
    assert ours.get_potential_energy() == pytest.approx(ref.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(ours.get_forces(), ref.get_forces(), atol=1e-12)
    np.testing.assert_allclose(ours.get_stress(), ref.get_stress(), atol=1e-12)
    np.testing.assert_allclose(ours.get_potential_energies(), ref.get_potential_energies(),
                               atol=1e-12)


def test_fire_cell_relaxation_agrees_with_ase_lj():
    atoms = _strained_argon()
    a_ours = _relaxed_lattice_constant(
        atoms, MLPotCalculator(LennardJones(["Ar"], EPS, SIGMA, RC).double()))
    a_ref = _relaxed_lattice_constant(
        atoms, AseLennardJones(epsilon=EPS, sigma=SIGMA, rc=RC, ro=0.66 * RC, smooth=True))
    assert abs(a_ours - a_ref) < 1e-3
    assert 5.0 < a_ours < 5.6  # argon's fcc lattice constant in this LJ model


def test_bfgs_molecule_and_ase_md_with_checkpoint_path(tmp_path):
    path = save_model(LennardJones(["Ar"]).double(), tmp_path / "ar.pt")
    cluster = ase.Atoms("Ar4", positions=[[0, 0, 0], [3.9, 0, 0], [0, 3.7, 0], [0, 0, 3.8]])
    cluster.calc = MLPotCalculator(str(path))
    assert BFGS(cluster, logfile=None).run(fmax=1e-4, steps=500)
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()
    crystal = _strained_argon()
    crystal.calc = MLPotCalculator(str(path))
    crystal.set_momenta(np.zeros((len(crystal), 3)))
    e0 = crystal.get_total_energy()
    VelocityVerlet(crystal, timestep=2 * ase.units.fs, logfile=None).run(200)
    assert abs(crystal.get_total_energy() - e0) / len(crystal) < 1e-4


def test_bad_inputs_raise_clear_errors():
    calc = MLPotCalculator(LennardJones(["Ar"]).double())
    kr = ase.Atoms("ArKr", positions=[[0, 0, 0], [3.8, 0, 0]])
    kr.calc = calc
    with pytest.raises(ValueError, match="element Kr"):
        kr.get_potential_energy()
    nan = ase.Atoms("Ar2", positions=[[0, 0, 0], [np.nan, 0, 0]])
    nan.calc = calc
    with pytest.raises(ValueError, match="non-finite position at atom 1"):
        nan.get_potential_energy()
    flat = ase.Atoms("Ar", cell=[[5, 0, 0], [0, 5, 0], [0, 0, 0]], pbc=True)
    flat.calc = calc
    with pytest.raises(ValueError, match="singular"):
        flat.get_potential_energy()
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        MLPotCalculator("no_such_model")


def test_pair_list_is_reused_between_calls_with_identical_forces():
    """An ASE MD run and a cell relaxation: the calculator keeps its Verlet list between
    calls (few rebuilds) and its forces and stress are bit for bit those of a list built
    fresh at every call."""
    from mlpot.neighbors import verlet_list

    model = LennardJones(["Ar"], EPS, SIGMA, RC).double()
    atoms = _strained_argon()
    sigma = np.sqrt(ase.units.kB * 300.0 / atoms.get_masses())[:, None]  # ASE velocity units
    atoms.set_velocities(sigma * np.random.default_rng(3).normal(size=(len(atoms), 3)))
    calc = MLPotCalculator(model, skin=1.0)
    fresh = MLPotCalculator(model, skin=0.0)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=5.0 * ase.units.fs)
    for _ in range(40):
        dyn.run(1)
        other = atoms.copy()
        other.calc = fresh
        assert np.array_equal(atoms.get_forces(), other.get_forces())
        assert np.array_equal(atoms.get_stress(), other.get_stress())
    assert 1 <= calc.pairs.rebuilds < 10
    moved = float(np.abs(atoms.positions - _strained_argon().positions).max())
    assert moved > 0.1, "atoms did not move"
    # the list given to the model is the canonical list within the cutoff
    graph_pairs = verlet_list(_graph(atoms), RC, 0.0)
    assert torch.equal(calc.pairs.edge_index, graph_pairs.edge_index)
    # an ASE cell relaxation reuses it as well
    relax = _strained_argon()
    relax.calc = MLPotCalculator(model, skin=0.5)
    opt = FIRE(FrechetCellFilter(relax), logfile=None)
    assert opt.run(fmax=1e-3, steps=2000)
    assert relax.calc.pairs.rebuilds < opt.nsteps / 4


def _graph(atoms):
    from mlpot import AtomicGraph

    return AtomicGraph.from_atoms(atoms, dtype=torch.float64, read_labels=False)


def test_pair_list_follows_a_change_of_structure():
    """The same calculator on a different structure (more atoms, other pbc) rebuilds."""
    model = LennardJones(["Ar"], EPS, SIGMA, RC).double()
    calc = MLPotCalculator(model)
    small = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True)
    big = small.repeat(2)
    cluster = big.copy()
    cluster.pbc = False
    for atoms in (small, big, cluster, big):
        atoms.calc = calc
        e = atoms.get_potential_energy()
        ref = atoms.copy()
        ref.calc = MLPotCalculator(model, skin=0.0)
        assert e == ref.get_potential_energy()
