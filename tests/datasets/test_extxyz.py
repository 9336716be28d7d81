"""extxyz and other ase formats: frame index, per-frame errors."""

from __future__ import annotations

import ase
import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.datasets import DataFormatError, ExtxyzReader, ReadReport, read


def _frames(rng, count=5):
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 6))
        atoms = ase.Atoms(numbers=rng.integers(1, 30, size=n),
                          positions=rng.normal(size=(n, 3)))
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal()),
                                           forces=rng.normal(size=(n, 3)))
        atoms.info["charge"] = int(rng.integers(-1, 2))
        atoms.info["spin"] = 2
        out.append(atoms)
    return out


def test_random_access_matches_ase(tmp_path, rng):
    path = tmp_path / "f.extxyz"
    ase.io.write(path, _frames(rng), format="extxyz")
    reader = ExtxyzReader(path)
    reference = ase.io.read(path, index=":")
    assert len(reader) == len(reference)
    for i in (3, 0, 4):
        got = reader[i]
        np.testing.assert_array_equal(got.positions, reference[i].positions)
        np.testing.assert_array_equal(got.get_forces(), reference[i].get_forces())
        assert got.info["charge"] == reference[i].info["charge"]
        assert got.info["spin"] == 2


def test_bad_frames_name_file_and_frame(tmp_path, rng):
    frames = _frames(rng)
    frames[2].calc = SinglePointCalculator(frames[2], energy=1.0)  # frame 2: no forces
    path = tmp_path / "f.extxyz"
    ase.io.write(path, frames, format="extxyz")
    with pytest.raises(DataFormatError, match=r"f\.extxyz: frame 2 .*missing forces"):
        list(read(path, require=("energy", "forces")))
    lines = path.read_text().splitlines()
    second = 2 + len(frames[0])  # first atom line of frame 1
    lines[second + 2] = "Qq" + lines[second + 2][2:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"f\.extxyz: frame 1 "):
        list(read(path))
    report = ReadReport()
    got = list(read(path, require=("energy", "forces"), skip_invalid=True, report=report))
    assert len(got) == 3
    assert report.skipped == 2


def test_truncated_extxyz_names_the_frame(tmp_path, rng):
    path = tmp_path / "t.extxyz"
    ase.io.write(path, _frames(rng), format="extxyz")
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"t\.extxyz: frame 4 .*ends inside a frame"):
        list(read(path))


def test_other_ase_formats(tmp_path, rng):
    frames = _frames(rng, 2)
    path = tmp_path / "f.traj"
    ase.io.write(path, frames)
    got = list(read(path))
    assert len(got) == 2
    np.testing.assert_array_equal(got[1].get_forces(), frames[1].get_forces())
