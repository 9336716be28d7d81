"""Packed HDF5 store: lossless round trips, O(1) random access, append, atomic writes."""

from __future__ import annotations

import ase
import ase.io
import h5py
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from format_writers import write_omol25_shard

from mlpot.datasets import (
    DataFormatError,
    PackedStore,
    PackedStoreWriter,
    convert,
    read,
    write_store,
)
from mlpot.datasets.store import FORMAT, VERSION


def labelled_structures(rng, count=12):
    out = []
    for k in range(count):
        n = int(rng.integers(1, 9))
        periodic = k % 2 == 0
        atoms = ase.Atoms(numbers=rng.integers(1, 80, size=n),
                          positions=rng.normal(scale=2.0, size=(n, 3)),
                          cell=rng.normal(size=(3, 3)) + 5 * np.eye(3) if periodic else None,
                          pbc=[True, True, k % 4 == 0] if periodic else False)
        results = {"energy": float(rng.normal(-10, 3)), "forces": rng.normal(size=(n, 3))}
        if periodic:
            results["stress"] = rng.normal(scale=0.01, size=6)
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info.update(charge=int(rng.integers(-1, 2)), spin=int(rng.integers(1, 4)),
                          group=f"g{k // 3}")
        if k % 3 == 0:
            atoms.set_velocities(rng.normal(scale=0.01, size=(n, 3)))
        out.append(atoms)
    return out


def assert_same(a, b):
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell[:], b.cell[:])
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())
    has_stress = "stress" in a.calc.results
    assert has_stress == ("stress" in b.calc.results)
    if has_stress:
        np.testing.assert_array_equal(a.get_stress(), b.get_stress())
    for key in ("charge", "spin", "group"):
        assert a.info.get(key) == b.info.get(key), key
    np.testing.assert_allclose(a.get_velocities(), b.get_velocities(), rtol=1e-14,
                               atol=1e-18)


def test_round_trip_is_lossless_and_random_access(tmp_path, rng):
    structures = labelled_structures(rng)
    path = tmp_path / "s.h5"
    assert write_store(path, structures) == len(structures)
    store = PackedStore(path)
    assert len(store) == len(structures)
    for i in rng.permutation(len(store)):
        assert_same(store[int(i)], structures[int(i)])
    assert_same(store[-1], structures[-1])
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT
        assert f.attrs["version"] == VERSION
        assert f.attrs["state"] == "complete"
        assert f["positions"].chunks is not None
    assert list(store.read_array("group")) == [a.info["group"] for a in structures]
    with pytest.raises(IndexError):
        store[len(store)]


def test_extxyz_to_store_to_extxyz(tmp_path, rng):
    structures = labelled_structures(rng)
    for atoms in structures:
        atoms.set_velocities(np.zeros((len(atoms), 3)))  # extxyz keeps momenta otherwise
    xyz = tmp_path / "in.extxyz"
    ase.io.write(xyz, structures, format="extxyz")
    from_xyz = list(read(xyz))
    convert([xyz], tmp_path / "s.h5")
    back = list(read(tmp_path / "s.h5"))
    for a, b in zip(from_xyz, back, strict=True):
        assert_same(a, b)
    ase.io.write(tmp_path / "out.extxyz", back, format="extxyz")
    for a, b in zip(from_xyz, read(tmp_path / "out.extxyz"), strict=True):
        assert_same(a, b)


def test_omol25_and_mptrj_to_store(tmp_path, rng, mptrj_file):
    write_omol25_shard(tmp_path / "omol.aselmdb", rng, 5)
    path, _ = mptrj_file
    out = tmp_path / "both.h5"
    report = convert([tmp_path / "omol.aselmdb", path], out)
    direct = list(read(tmp_path / "omol.aselmdb")) + list(read(path))
    assert report.read == len(direct)
    store = PackedStore(out)
    for a, b in zip(direct, store, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
        assert a.info["charge"] == b.info["charge"]
        assert a.info.get("spin") == b.info.get("spin")
        assert a.info.get("data_id") == b.info.get("data_id")
        assert a.info.get("mp_id", "") == b.info.get("group", "")
        if "magmoms" in a.arrays:
            np.testing.assert_array_equal(a.arrays["magmoms"], b.arrays["magmoms"])


def test_append(tmp_path, rng):
    structures = labelled_structures(rng, 9)
    path = tmp_path / "s.h5"
    write_store(path, structures[:4])
    write_store(path, structures[4:], append=True)
    store = PackedStore(path)
    assert len(store) == 9
    for a, b in zip(store, structures, strict=True):
        assert_same(a, b)


def test_failed_convert_leaves_nothing(tmp_path, rng, mptrj_file):
    path, _ = mptrj_file
    bad = tmp_path / "trunc.json"
    bad.write_text(path.read_text()[:-200])
    out = tmp_path / "out.h5"
    with pytest.raises(DataFormatError):
        convert([path, bad], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, bad.name])
    write_store(out, labelled_structures(rng, 2))
    before = out.read_bytes()
    with pytest.raises(DataFormatError):
        convert([bad], out)
    assert out.read_bytes() == before  # the existing store is untouched


def test_interrupted_append_is_refused_then_repaired(tmp_path, rng):
    structures = labelled_structures(rng, 8)
    path = tmp_path / "s.h5"
    write_store(path, structures[:3])
    def interrupted_append():
        with PackedStoreWriter(path, mode="a", buffer_size=2) as writer:
            writer.extend(structures[3:6])  # 2 flushed, 1 buffered
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted_append()
    # rows written before the failure are not committed as complete
    with pytest.raises(DataFormatError, match="incomplete"):
        PackedStore(path)
    write_store(path, structures[6:], append=True)
    store = PackedStore(path)
    assert len(store) == 3 + 2 + 2
    for a, b in zip(store, structures[:5] + structures[6:], strict=True):
        assert_same(a, b)


def test_newer_version_and_foreign_file_are_refused(tmp_path, rng):
    path = tmp_path / "s.h5"
    write_store(path, labelled_structures(rng, 2))
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = VERSION + 1
    with pytest.raises(DataFormatError, match="newer"):
        PackedStore(path)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataFormatError, match="not an mlpot packed store"):
        PackedStore(tmp_path / "other.h5")


def test_require_applies_to_stores(tmp_path, rng):
    structures = labelled_structures(rng, 4)
    structures[1].calc = None
    write_store(tmp_path / "s.h5", structures)
    with pytest.raises(DataFormatError, match=r"s\.h5: structure 1: missing energy"):
        list(read(tmp_path / "s.h5", require=("energy",)))
    assert len(list(read(tmp_path / "s.h5", require=("energy",), skip_invalid=True))) == 3
    assert len(list(read(tmp_path / "s.h5"))) == 4
