"""Per-element reference energies E0 by linear least squares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import ase
import numpy as np


def composition_matrix(numbers: Iterable[Sequence[int] | np.ndarray], species: Sequence[int]
                       ) -> np.ndarray:
    """``[B, S]`` count of each species (atomic number) in each structure."""
    col = {int(z): k for k, z in enumerate(species)}
    rows = []
    for b, nums in enumerate(numbers):
        counts = np.zeros(len(species))
        for z, c in zip(*np.unique(np.asarray(nums), return_counts=True), strict=True):
            if int(z) not in col:
                raise ValueError(f"structure {b}: element Z={int(z)} not in species {species}")
            counts[col[int(z)]] = c
        rows.append(counts)
    return np.array(rows).reshape(-1, len(species))


def fit_e0(numbers: Sequence[Sequence[int] | np.ndarray], energies: Sequence[float],
           species: Sequence[int] | None = None) -> dict[int, float]:
    """Fit ``E_b ≈ Σ_Z n_bZ E0_Z`` by least squares.

    Args:
        numbers: atomic numbers of each structure.
        energies: ``[B]`` total energies, eV.
        species: atomic numbers to fit (default: all present, sorted).

    Returns:
        ``{Z: E0_Z}`` in eV. When compositions are linearly dependent (e.g. one
        fixed stoichiometry) the minimum-norm solution is returned.
    """
    numbers = list(numbers)
    energy = np.asarray(energies, dtype=float)
    if len(numbers) != len(energy):
        raise ValueError(f"{len(numbers)} structures but {len(energy)} energies")
    if len(numbers) == 0:
        raise ValueError("fit_e0: no structures")
    if species is None:
        species = sorted({int(z) for nums in numbers for z in np.asarray(nums)})
    A = composition_matrix(numbers, species)
    solution, *_ = np.linalg.lstsq(A, energy, rcond=None)
    return {int(z): float(e) for z, e in zip(species, solution, strict=True)}


def fit_e0_structures(structures: Iterable[ase.Atoms], species: Sequence[int] | None = None
                      ) -> dict[int, float]:
    """:func:`fit_e0` over labelled ``Atoms`` (structures without an energy are skipped)."""
    from mlpot.datasets.records import atoms_labels

    numbers, energies = [], []
    for atoms in structures:
        energy = atoms_labels(atoms)["energy"]
        if energy is not None:
            numbers.append(atoms.numbers.copy())
            energies.append(float(energy))
    return fit_e0(numbers, energies, species)
