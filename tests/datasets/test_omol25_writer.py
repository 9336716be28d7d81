"""The .aselmdb writer: exact round trip through the OMol25 reader, bad input, atomicity."""

from __future__ import annotations

import ase
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.datasets import OMol25Reader, read
from mlpot.datasets.omol25_writer import write_aselmdb


def _molecule(rng: np.random.Generator, k: int) -> ase.Atoms:
    n = int(rng.integers(2, 9))
    atoms = ase.Atoms(numbers=rng.choice([1, 6, 7, 8, 17], size=n),
                      positions=rng.normal(scale=1.5, size=(n, 3)))
    atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-500, 50)),
                                       forces=rng.normal(size=(n, 3)))
    atoms.info.update(charge=int(rng.integers(-1, 2)), spin=int(rng.integers(1, 4)),
                      data_id="xtb/md", group=f"mol{k % 3}", molecule=f"m{k}")
    return atoms


def test_round_trip_through_the_omol25_reader(tmp_path, rng):
    written = [_molecule(rng, k) for k in range(9)]
    path = tmp_path / "train.aselmdb"
    assert write_aselmdb(path, written) == 9
    assert not list(tmp_path.glob(".*"))  # no temporary or lock file left behind
    back = list(read(path))
    assert len(back) == len(OMol25Reader(path)) == 9
    for a, b in zip(written, back, strict=True):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        for key in ("charge", "spin", "data_id", "group", "molecule"):
            assert b.info[key] == a.info[key], key
        assert not b.pbc.any()


def test_missing_charge_and_spin_default_to_neutral_singlet(tmp_path, rng):
    atoms = _molecule(rng, 0)
    del atoms.info["charge"], atoms.info["spin"]
    write_aselmdb(tmp_path / "a.aselmdb", [atoms])
    back = next(iter(read(tmp_path / "a.aselmdb")))
    assert (back.info["charge"], back.info["spin"]) == (0, 1)


@pytest.mark.parametrize("problem", ["no_forces", "periodic", "nan", "half_charge"])
def test_bad_structure_names_it_and_keeps_the_old_file(tmp_path, rng, problem):
    path = tmp_path / "data.aselmdb"
    write_aselmdb(path, [_molecule(rng, 0)])
    before = path.read_bytes()
    bad = _molecule(rng, 1)
    if problem == "no_forces":
        bad.calc = SinglePointCalculator(bad, energy=-1.0)
    elif problem == "periodic":
        bad.set_cell([10, 10, 10])
        bad.pbc = True
    elif problem == "nan":
        bad.positions[0, 0] = np.nan
    else:
        bad.info["charge"] = 0.5
    with pytest.raises(ValueError, match="structure 1"):
        write_aselmdb(path, [_molecule(rng, 2), bad])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.aselmdb"]
