"""OMol25 .aselmdb shards: exact round trip, directory indexing, read-only, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from format_writers import write_omol25_shard

from mlpot.datasets import DataFormatError, OMol25Reader, ReadReport, read


def _check_same(atoms, ref):
    np.testing.assert_array_equal(atoms.numbers, ref["numbers"])
    np.testing.assert_array_equal(atoms.positions, ref["positions"])
    assert atoms.get_potential_energy() == ref["energy"]
    np.testing.assert_array_equal(atoms.get_forces(), ref["forces"])
    assert atoms.info["charge"] == ref["charge"]
    assert atoms.info["spin"] == ref["spin"]
    assert isinstance(atoms.info["charge"], int)
    assert atoms.info["data_id"] == ref["data_id"]
    assert atoms.info["source"] == ref["source"]
    assert not atoms.pbc.any()
    np.testing.assert_array_equal(atoms.cell[:], np.zeros((3, 3)))


def test_single_shard_exact_round_trip(tmp_path, rng):
    path = tmp_path / "data.aselmdb"
    written = write_omol25_shard(path, rng, 7)
    structures = list(read(path))
    assert len(structures) == 7
    for atoms, ref in zip(structures, written, strict=True):
        _check_same(atoms, ref)
    assert "mulliken_charges" not in structures[0].info  # non-scalar: only when asked
    reader = OMol25Reader(path, data_keys=("mulliken_charges",))
    assert reader[3].info["mulliken_charges"] == written[3]["mulliken_charges"]


def test_directory_of_shards_indexed_by_cumulative_lengths(tmp_path, rng):
    sizes = [3, 5, 1, 4]
    written = []
    for k, n in enumerate(sizes):
        sub = tmp_path / "train" / f"part{k // 2}"
        sub.mkdir(parents=True, exist_ok=True)
        written += write_omol25_shard(sub / f"data{k:04d}.aselmdb", rng, n, start=len(written))
    reader = OMol25Reader(tmp_path / "train")
    assert len(reader) == sum(sizes)
    assert [reader.locate(i) for i in (0, 2, 3, 8, 9, 12)] == \
        [(0, 0), (0, 2), (1, 0), (2, 0), (3, 0), (3, 3)]
    for i in rng.permutation(len(reader)):
        _check_same(reader[int(i)], written[int(i)])
    _check_same(reader[-1], written[-1])
    with pytest.raises(IndexError):
        reader[len(reader)]
    assert [a.info["source"] for a in read(tmp_path / "train")] == \
        [w["source"] for w in written]


def test_readonly_open_leaves_no_lock_file_and_file_unchanged(tmp_path, rng):
    path = tmp_path / "data.aselmdb"
    write_omol25_shard(path, rng, 3)
    before = sorted(p.name for p in tmp_path.iterdir())
    content = path.read_bytes()
    path.chmod(0o444)  # a read-only file must open
    reader = OMol25Reader(path)
    assert len(list(reader)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert path.read_bytes() == content


def test_metadata_natoms_used_when_it_matches(tmp_path, rng):
    written = write_omol25_shard(tmp_path / "a.aselmdb", rng, 4)
    natoms = np.array([len(w["numbers"]) for w in written])
    np.savez(tmp_path / "metadata.npz", natoms=natoms)
    reader = OMol25Reader(tmp_path)
    assert reader.natoms is not None
    assert [reader.num_atoms(i) for i in range(4)] == natoms.tolist()


def test_corrupt_lmdb_names_the_file(tmp_path, rng):
    bad = tmp_path / "bad.aselmdb"
    bad.write_bytes(b"this is not an lmdb file" * 100)
    with pytest.raises(DataFormatError, match=r"bad\.aselmdb"):
        list(read(bad))
    write_omol25_shard(tmp_path / "good.aselmdb", rng, 2)
    report = ReadReport()
    assert len(list(read(tmp_path, skip_invalid=True, report=report))) == 2
    assert report.skipped == 1
    assert "bad.aselmdb" in report.messages[0]


def test_corrupt_row_and_missing_forces_name_the_row(tmp_path, rng):
    import ase.db
    import lmdb

    path = tmp_path / "data.aselmdb"
    write_omol25_shard(path, rng, 3)
    db = ase.db.connect(str(path), type="aselmdb")
    atoms = db.get_atoms(id=1)
    atoms.calc = None
    db.write(atoms, data={"charge": 0, "spin": 1})  # row 4: no energy or forces
    db.close()
    env = lmdb.open(str(path), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(b"2", b"garbage, not zlib")
    env.close()
    reader = OMol25Reader(path)
    with pytest.raises(DataFormatError, match=r"data\.aselmdb: row 4: missing energy, forces"):
        reader[3]
    with pytest.raises(DataFormatError, match=r"data\.aselmdb: row 2: unreadable row"):
        reader[1]
    with pytest.raises(DataFormatError, match=r"row 2"):
        list(read(path))
    report = ReadReport()
    assert len(list(read(path, skip_invalid=True, report=report))) == 2
    assert report.skipped == 2
    assert "row 2" in report.messages[0]
    assert "row 4" in report.messages[1]
