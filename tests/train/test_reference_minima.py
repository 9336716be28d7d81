"""The xTB generator starts every recipe from the GFN2-xTB minimum of the species.

G2 geometries are neutral (MP2) minima; a cation at the neutral geometry feels forces
of several eV/Å, so rattled and MD structures sampled around it would describe the
vertical ion, not the ion a user simulates.
"""

from __future__ import annotations

import ase.build
import numpy as np
import pytest

tblite = pytest.importorskip("tblite.ase")

from mlpot.datasets.reference.xtb import relax  # noqa: E402


def _max_force(atoms: ase.Atoms, charge: int, mult: int) -> float:
    atoms = atoms.copy()
    atoms.calc = tblite.TBLite(method="GFN2-xTB", charge=charge, multiplicity=mult, verbosity=0)
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max())


def test_relax_reaches_the_ion_minimum():
    water = ase.build.molecule("H2O")
    assert _max_force(water, 1, 2) > 0.5  # the vertical cation is far from its minimum
    cation = relax(water, 1, 2)
    assert _max_force(cation, 1, 2) < 0.05
    assert cation.get_chemical_symbols() == water.get_chemical_symbols()
    assert not np.allclose(cation.positions, water.positions, atol=1e-3)
