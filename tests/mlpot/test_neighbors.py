"""mlpot.neighbors agrees pair-for-pair with ase.neighborlist on hard cases."""

import ase
import ase.build
import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from mlpot import AtomicGraph, with_neighbors
from mlpot.neighbors import system_neighbors, update, verlet_list


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


# ----------------------------------------------------------------- Verlet list
def _pair_set(edge_index, offsets):
    return {(a, b, *s) for a, b, s in zip(*edge_index.tolist(),
                                          offsets.round().long().tolist(), strict=True)}


def _offsets(graph, edge_index, shifts):
    cell = graph.cell[graph.system_index[edge_index[0]]]
    return torch.linalg.solve(cell.transpose(1, 2), shifts)


def test_verlet_list_candidates_and_pairs_match_vesin():
    """Candidates = the full list within r_c + skin in canonical (i, j, S) order; pairs
    = those within r_c; a 4-atom cell gives pairs of an atom with its own images."""
    systems = [_triclinic(), ase.build.bulk("Ar", "fcc", a=5.3, cubic=True), _mixed()]
    graph = AtomicGraph.from_atoms(systems, dtype=torch.float64)
    vl = verlet_list(graph, 4.0, 1.0)
    for radius, edges, offsets in ((5.0, vl.candidates, vl.candidate_offsets),
                                   (4.0, vl.edge_index, _offsets(graph, vl.edge_index,
                                                                 vl.shifts))):
        full = with_neighbors(graph, radius)
        want = _pair_set(full.edge_index, _offsets(graph, full.edge_index, full.shifts))
        assert _pair_set(edges, offsets) == want
    keys = [(a, b, *s) for a, b, s in zip(*vl.candidates.tolist(),
                                          vl.candidate_offsets.long().tolist(), strict=True)]
    assert keys == sorted(keys)
    assert int((vl.candidates[0] == vl.candidates[1]).sum()) > 0


def test_update_is_pure_and_reuses_candidates():
    atoms = ase.build.bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)
    graph = AtomicGraph.from_atoms(atoms, dtype=torch.float64)
    vl = verlet_list(graph, 6.0, 1.0)
    before = (vl.edge_index.clone(), vl.shifts.clone())
    moved = graph.with_positions(graph.positions + 0.2 * torch.sin(graph.positions))
    new = update(vl, moved)
    assert new.rebuilds == 1 and new.candidates is vl.candidates  # no rebuild
    assert torch.equal(vl.edge_index, before[0]) and torch.equal(vl.shifts, before[1])
    fresh = verlet_list(moved, 6.0, 0.0)
    assert torch.equal(new.edge_index, fresh.edge_index)
    assert torch.equal(new.shifts, fresh.shifts)


@pytest.mark.parametrize("start_gap", [-0.03, 0.01])
def test_atoms_approaching_by_just_under_half_the_skin_each(start_gap):
    """Two atoms start at r_c + skin − 0.03 Å (a candidate) or + 0.01 Å (not one) and walk
    towards each other up to 0.75·skin each: at every position the list (rebuilt only
    when needed) holds exactly the pairs of a fresh list; in particular after each moved
    0.495 Å (just under skin/2) the candidate pair is inside the cutoff and listed,
    without a rebuild."""
    cutoff, skin = 4.0, 1.0
    box = ase.Atoms("Ar2", cell=[30.0, 30.0, 30.0], pbc=True,
                    positions=[[5.0, 5.0, 5.0], [5.0 + cutoff + skin + start_gap, 5.0, 5.0]])
    graph = AtomicGraph.from_atoms(box, dtype=torch.float64)
    vl = verlet_list(graph, cutoff, skin)
    listed = []
    for step in np.linspace(0.0, 0.75 * skin, 151):
        pos = graph.positions.clone()
        pos[0, 0] += step
        pos[1, 0] -= step
        g = graph.with_positions(pos)
        vl = update(vl, g)
        fresh = verlet_list(g, cutoff, 0.0)
        assert torch.equal(vl.edge_index, fresh.edge_index), f"moved {step:.3f} Å each"
        listed.append(vl.edge_index.shape[1] == 2)
        if step < skin / 2 and start_gap < 0:
            assert vl.rebuilds == 1  # no rebuild needed while each moved < skin/2
    assert listed[-1]  # 2·0.75·skin closer: inside the cutoff in both cases
    if start_gap < 0:
        assert cutoff + skin + start_gap - 2 * 0.495 * skin < cutoff
        assert listed[99]  # 0.495 Å each: inside the cutoff and listed
