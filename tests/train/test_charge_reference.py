"""Charge and spin against the isolated-atom reference of `EquivariantPotential`.

The learned energy of an atom is measured from the element's *neutral singlet* atom
without neighbours, so an isolated neutral atom has exactly E0 while the charge/spin
embedding can still shift the energy of an isolated ion (an ionisation energy).
Measuring from a reference with the system's own charge and spin cancelled that
shift: every isolated ion had exactly E0 too.
"""

from __future__ import annotations

import ase
import torch

from mlpot.graph import AtomicGraph, collate
from mlpot.models import EquivariantPotential


def _model() -> EquivariantPotential:
    torch.manual_seed(0)
    model = EquivariantPotential(
        ["H", "C", "O"],
        cutoff=4.0,
        channels=8,
        lmax=2,
        num_layers=2,
        num_knots=8,
        avg_num_neighbors=3.0,
    ).double()
    torch.nn.init.normal_(model.charge_embedding)
    torch.nn.init.normal_(model.spin_embedding)
    model.set_reference_energies({"H": -13.6, "C": -57.3, "O": -109.5})
    return model


def _graph(atoms: ase.Atoms, charge: int, spin: int) -> AtomicGraph:
    atoms = atoms.copy()
    atoms.info.update(charge=charge, spin=spin)
    return AtomicGraph.from_atoms(atoms, dtype=torch.float64)


def test_isolated_neutral_atom_has_exactly_e0():
    model = _model()
    for k, symbol in enumerate(model.species):
        out = model(_graph(ase.Atoms(symbol, positions=[[0, 0, 0]]), 0, 1))
        assert float(out.energy) == float(model.e0[k])


def test_charge_and_spin_shift_the_energy_of_an_isolated_atom():
    model = _model()
    atom = ase.Atoms("O", positions=[[0, 0, 0]])
    energies = [
        float(model(_graph(atom, q, m)).energy) for q, m in ((0, 1), (1, 2), (-1, 2), (0, 3))
    ]
    assert len({round(e, 9) for e in energies}) == 4
    # the shift is learnable: its gradient reaches the charge embedding
    out = model(_graph(atom, 1, 2), compute_forces=False, training=True)
    (grad,) = torch.autograd.grad(out.energy.sum(), model.charge_embedding)
    assert float(grad[model.config.max_charge + 1].abs().sum()) > 0


def test_batched_ion_and_molecule_match_separate_evaluations():
    model = _model()
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    methyl = ase.Atoms(
        "CH3", positions=[[0, 0, 0], [1.08, 0, 0], [-0.54, 0.94, 0], [-0.54, -0.94, 0]]
    )
    graphs = [_graph(water, 1, 2), _graph(methyl, 0, 2), _graph(water, 0, 1)]
    batch = model(collate(graphs))
    for k, g in enumerate(graphs):
        single = model(g)
        torch.testing.assert_close(batch.energy[k], single.energy[0], rtol=0, atol=1e-10)
