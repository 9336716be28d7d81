import ase
import ase.build
import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import AtomicGraph, collate


def _systems():
    cu = ase.build.bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    slab = ase.build.fcc111("Al", size=(2, 2, 2), vacuum=5.0)  # pbc T,T,F
    mol = ase.build.molecule("H2O")
    mol.info.update(charge=-1, spin=2)
    return [cu, slab, mol]


def test_batch_of_mixed_systems_round_trips():
    systems = _systems()
    g = AtomicGraph.from_atoms(systems, dtype=torch.float64)
    assert g.num_systems == 3
    assert g.num_atoms == sum(len(a) for a in systems)
    assert g.atoms_per_system.tolist() == [len(a) for a in systems]
    assert g.pbc.tolist() == [[True] * 3, [True, True, False], [False] * 3]
    assert g.charge.tolist() == [0, 0, -1] and g.spin.tolist() == [1, 1, 2]
    back = g.to_atoms()
    for a, b in zip(systems, back, strict=True):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_allclose(a.positions, b.positions, atol=0, rtol=0)
        np.testing.assert_allclose(a.cell[:], b.cell[:])
        assert (a.pbc == b.pbc).all()
    assert back[2].info == {"charge": -1, "spin": 2}


def test_labels_velocities_and_dtype_conversion():
    atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True)
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(4, 3))
    atoms.set_velocities(rng.normal(size=(4, 3)) * 0.01)
    stress = np.array([1.0, 2.0, 3.0, 0.4, 0.5, 0.6])
    atoms.calc = SinglePointCalculator(atoms, energy=-3.5, forces=forces, stress=stress)
    g = AtomicGraph.from_atoms(atoms, dtype=torch.float64)
    assert float(g.energy[0]) == -3.5
    np.testing.assert_array_equal(g.forces.numpy(), forces)
    assert g.stress[0, 1, 2] == 0.4 and g.stress[0, 0, 1] == 0.6 and g.stress[0, 0, 2] == 0.5
    np.testing.assert_allclose(g.velocities.numpy() / ase.units.fs, atoms.get_velocities(),
                               rtol=1e-14)
    back = g.to_atoms()[0]
    np.testing.assert_allclose(back.get_velocities(), atoms.get_velocities(), rtol=1e-14)
    np.testing.assert_allclose(back.get_stress(), stress)
    g32 = g.to(dtype=torch.float32)
    assert g32.positions.dtype == torch.float32 and g32.atomic_numbers.dtype == torch.int64


def test_collate_offsets_edges():
    from mlpot import with_neighbors

    systems = _systems()
    parts = [with_neighbors(AtomicGraph.from_atoms(a), 3.0) for a in systems]
    whole = with_neighbors(AtomicGraph.from_atoms(systems), 3.0)
    joined = collate(parts)
    assert torch.equal(joined.edge_index, whole.edge_index)
    torch.testing.assert_close(joined.shifts, whole.shifts)
    assert torch.equal(joined.system_index, whole.system_index)


def test_bad_inputs_are_named():
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
    atoms.positions[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite position at atom 1"):
        AtomicGraph.from_atoms(atoms)
    bad = ase.Atoms(numbers=[1, 0], positions=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="invalid atomic number 0 at atom 1"):
        AtomicGraph.from_atoms(bad)
    g = AtomicGraph.from_atoms(ase.build.molecule("CH4"))
    with pytest.raises(ValueError, match="positions must be"):
        g.replace(positions=torch.zeros(5, 2))
    with pytest.raises(ValueError, match="forces must be"):
        g.replace(forces=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="empty list"):
        AtomicGraph.from_atoms([])
