"""Teacher labels in the MPTrj layout: round trip through the MPTrj reader, stress sign."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

from mlpot.datasets import read
from mlpot.datasets.mptrj import KBAR_TO_ASE
from mlpot.datasets.reference.inorganic import prototypes, supercell
from mlpot.datasets.reference.teacher import teacher_mptrj


def _calc() -> LennardJones:
    # a smooth stand-in teacher that knows every element (energy, forces, stress)
    return LennardJones(sigma=2.2, epsilon=0.05, rc=5.0, smooth=True)


def test_teacher_file_round_trips_through_the_mptrj_reader(tmp_path):
    path = tmp_path / "teacher.json"
    result = teacher_mptrj(path, count=12, seed=1, calculator=_calc())
    assert result.structures == 12
    raw = json.loads(path.read_text())
    frames = [f for material in raw.values() for f in material.values()]
    assert len(frames) == 12
    structures = list(read(path))
    assert len(structures) == 12
    for frame, atoms in zip(frames, structures, strict=True):
        assert atoms.info["mp_id"] == frame["mp_id"]
        fresh = atoms.copy()
        fresh.calc = _calc()
        np.testing.assert_allclose(
            atoms.get_potential_energy(), fresh.get_potential_energy(), rtol=1e-10
        )
        np.testing.assert_allclose(atoms.get_forces(), fresh.get_forces(), atol=1e-10)
        np.testing.assert_allclose(atoms.get_stress(), fresh.get_stress(), atol=1e-12)
        # written in kBar with VASP's sign: compressive positive
        s = fresh.get_stress(voigt=False)
        np.testing.assert_allclose(frame["stress"], s / KBAR_TO_ASE, rtol=1e-10)
    assert np.sign(frames[0]["stress"][0][0]) == -np.sign(structures[0].get_stress()[0])


def test_md_snapshots_share_one_material(tmp_path):
    path = tmp_path / "t.json"
    teacher_mptrj(path, count=40, seed=2, calculator=_calc())
    raw = json.loads(path.read_text())
    md = [k for k in raw if "-md-" in k]
    assert md and all(len(raw[k]) == 3 for k in md[:-1])


def test_prototype_cells_are_sane():
    for name, atoms in prototypes().items():
        big = supercell(atoms)
        d = big.get_all_distances(mic=True)
        assert d[np.triu_indices(len(big), 1)].min() > 1.5, name
        assert 8 <= len(big) <= 48 or len(atoms) > 48, name


def test_missing_teacher_package_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sevenn(name, *args, **kwargs):
        if name.startswith("sevenn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sevenn)
    from mlpot.datasets.reference.teacher import sevennet_calculator

    with pytest.raises(ImportError, match=r"pip install 'mlpot\[teacher\]'"):
        sevennet_calculator()
