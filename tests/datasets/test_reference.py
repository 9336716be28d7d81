"""Tiny runs of the reference-label generators; labels checked against fresh calculations."""

from __future__ import annotations

import numpy as np
from ase.calculators.emt import EMT

from mlpot.datasets import PackedStore
from mlpot.datasets.reference import emt_metals, xtb_molecules
from mlpot.datasets.reference.xtb import ion_multiplicity, organic_molecules


def test_emt_metals_tiny(tmp_path):
    result = emt_metals(tmp_path / "emt.h5", count=24, seed=3)
    assert result.structures == 24
    assert sum(result.kinds.values()) == 24
    store = PackedStore(tmp_path / "emt.h5")
    assert len(store) == 24
    symbols = set()
    for k in range(0, 24, 3):
        atoms = store[k]
        symbols |= set(atoms.get_chemical_symbols())
        ref = atoms.copy()
        ref.calc = EMT()
        np.testing.assert_allclose(atoms.get_potential_energy(), ref.get_potential_energy(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), ref.get_stress(), atol=1e-12)
        assert atoms.pbc.all()
    assert symbols <= {"Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"}
    again = emt_metals(tmp_path / "again.h5", count=24, seed=3)
    assert again.kinds == result.kinds
    np.testing.assert_array_equal(PackedStore(tmp_path / "again.h5").read_array("positions"),
                                  store.read_array("positions"))


def test_xtb_molecules_tiny(tmp_path):
    from tblite.ase import TBLite

    result = xtb_molecules(tmp_path / "xtb.h5", count=8, seed=5, charged_fraction=0.5)
    assert result.structures == 8
    store = PackedStore(tmp_path / "xtb.h5")
    charges = set()
    for k in range(len(store)):
        atoms = store[k]
        q, m = atoms.info["charge"], atoms.info["spin"]
        charges.add(q)
        electrons = int(atoms.numbers.sum()) - q
        assert (electrons + m) % 2 == 1  # multiplicity parity matches the electron count
        if k < 2:
            ref = atoms.copy()
            ref.calc = TBLite(method="GFN2-xTB", charge=q, multiplicity=m, verbosity=0)
            np.testing.assert_allclose(atoms.get_potential_energy(),
                                       ref.get_potential_energy(), rtol=0, atol=1e-6)
            np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), atol=1e-5)
    assert len(charges) > 1


def test_molecule_set_has_open_shell_species():
    molecules = organic_molecules()
    mults = {name: m for name, _, m in molecules}
    assert mults["CH3"] == 2
    assert mults["O2"] == 3
    assert mults["CH4"] == 1
    ch4 = next(a for name, a, _ in molecules if name == "CH4")
    assert ion_multiplicity(ch4, 1) == 2
    assert ion_multiplicity(ch4, 0) == 1


def test_force_filter_drops_and_counts(tmp_path):
    result = emt_metals(tmp_path / "emt.h5", count=10, seed=4, metals=("Cu",), max_force=0.5)
    assert result.rejected > 0
    forces = PackedStore(tmp_path / "emt.h5").read_array("forces")
    assert np.linalg.norm(forces, axis=1).max() <= 0.5
