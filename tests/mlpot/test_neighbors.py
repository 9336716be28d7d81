"""mlpot.neighbors agrees pair-for-pair with ase.neighborlist on hard cases."""

import ase
import ase.build
import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from mlpot import AtomicGraph, with_neighbors
from mlpot.neighbors import system_neighbors


def _triclinic():
    rng = np.random.default_rng(1)
    cell = np.array([[5.0, 0.0, 0.0], [1.7, 4.6, 0.0], [-1.1, 0.9, 5.3]])
    return ase.Atoms("Cu8", cell=cell, pbc=True,
                     scaled_positions=rng.uniform(size=(8, 3)))


def _small_cell():  # cutoff far larger than the cell: many images
    return ase.Atoms("Ar2", cell=[[2.0, 0.1, 0], [0, 2.2, 0], [0.3, 0, 1.9]], pbc=True,
                     scaled_positions=[[0, 0, 0], [0.5, 0.4, 0.6]])


def _mixed():  # slab: periodic in x, y only, atoms outside the cell in z
    slab = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=4.0)
    slab.positions[0, 2] -= 6.0
    return slab


def _molecule():
    return ase.build.molecule("C6H6")


def _isolated():
    return ase.Atoms("He3", positions=[[0, 0, 0], [20, 0, 0], [0, 30, 0]])


def _wire():  # periodic along one axis, the other cell vectors zero
    return ase.Atoms("C2", positions=[[0, 0, 0], [0.7, 0.2, 0.1]], cell=[1.5, 0, 0],
                     pbc=[True, False, False])


CASES = {"triclinic": _triclinic, "small_cell": _small_cell, "mixed": _mixed,
         "molecule": _molecule, "isolated": _isolated, "wire": _wire}


def _pairs(i, j, S):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(S).tolist()), strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("cutoff", [2.5, 6.0])
def test_pairs_match_ase(name, cutoff):
    atoms = CASES[name]()
    i_ref, j_ref, S_ref = neighbor_list("ijS", atoms, cutoff)
    nl = system_neighbors(torch.tensor(atoms.positions), torch.tensor(atoms.cell[:]),
                          torch.tensor(atoms.pbc), cutoff)
    ours = _pairs(nl.i, nl.j, nl.cell_shifts)
    assert ours == _pairs(i_ref, j_ref, S_ref)
    if name == "isolated" and cutoff < 20:
        assert not ours


def test_batched_edges_and_cartesian_shifts():
    systems = [CASES[k]() for k in sorted(CASES)]
    g = with_neighbors(AtomicGraph.from_atoms(systems, dtype=torch.float64), 4.0)
    i, j = g.edge_index
    vec = g.positions[j] - g.positions[i] + g.shifts
    start = 0
    got = []
    for atoms in systems:
        D = neighbor_list("D", atoms, 4.0)
        got.append(len(D))
        mask = (i >= start) & (i < start + len(atoms))
        assert int(mask.sum()) == len(D)
        assert torch.all(g.system_index[j[mask]] == g.system_index[i[mask]])
        np.testing.assert_allclose(np.sort(np.linalg.norm(D, axis=1)),
                                   np.sort(vec[mask].norm(dim=1).numpy()), atol=1e-12)
        start += len(atoms)
    assert g.edge_index.shape[1] == sum(got)


def test_singular_periodic_cell_is_rejected():
    atoms = ase.Atoms("Cu", cell=[[3, 0, 0], [3, 0, 0], [0, 0, 3]], pbc=True)
    with pytest.raises(ValueError, match="singular"):
        system_neighbors(torch.tensor(atoms.positions), torch.tensor(atoms.cell[:]),
                         torch.tensor(atoms.pbc), 3.0)
