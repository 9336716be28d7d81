"""Group splits, E0 least squares, neighbour-count statistics."""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list

from mlpot.datasets import fit_e0, fit_e0_structures, group_split, neighbor_statistics


def test_group_split_keeps_groups_together_and_is_seeded(rng):
    groups = [f"mp-{g}" for g in rng.integers(0, 40, size=500)]
    train, val, test = group_split(groups, (0.8, 0.1, 0.1), seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(500))
    labels = np.array(groups)
    sets = [set(labels[s]) for s in (train, val, test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert abs(len(train) / 500 - 0.8) < 0.1
    again = group_split(groups, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    other = group_split(groups, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(other[1], val)


def test_group_split_empty_labels_are_singletons():
    train, val = group_split(["", "", "", ""], (0.5, 0.5), seed=0)
    assert len(train) == 2
    assert len(val) == 2


def test_fit_e0_recovers_reference_energies(rng):
    e0 = {1: -13.6, 6: -1029.8, 8: -2041.3}
    numbers = [rng.choice([1, 6, 8], size=int(rng.integers(2, 20))) for _ in range(60)]
    energies = [sum(e0[int(z)] for z in nums) for nums in numbers]
    fitted = fit_e0(numbers, energies)
    assert fitted.keys() == e0.keys()
    for z in e0:
        assert fitted[z] == pytest.approx(e0[z], abs=1e-8)
    structures = []
    for nums, energy in zip(numbers, energies, strict=True):
        atoms = ase.Atoms(numbers=nums, positions=np.zeros((len(nums), 3)))
        atoms.calc = SinglePointCalculator(atoms, energy=energy)
        structures.append(atoms)
    assert fit_e0_structures(structures)[6] == pytest.approx(e0[6], abs=1e-8)
    noisy = np.asarray(energies) + rng.normal(scale=0.01, size=len(energies))
    for z, value in fit_e0(numbers, noisy).items():
        assert value == pytest.approx(e0[z], abs=0.02)


def test_neighbor_statistics_against_ase():
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    mol = ase.build.molecule("CH4")
    stats = neighbor_statistics([cu, mol], cutoffs=[2.0, 3.0, 5.0])
    assert [s.cutoff for s in stats] == [2.0, 3.0, 5.0]
    for s in stats:
        counts = np.concatenate([np.bincount(neighbor_list("i", a, s.cutoff),
                                             minlength=len(a)) for a in (cu, mol)])
        assert s.mean == pytest.approx(counts.mean())
        assert s.max == counts.max()
        assert s.isolated_fraction == pytest.approx((counts == 0).mean())
    assert stats[1].median == 12  # first fcc shell at 2.55 Å
