"""Shared pieces of the reference generators: labelling, progress, results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ase
import ase.units
import numpy as np
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.datasets.store import PackedStoreWriter


@dataclass(frozen=True)
class GenerationResult:
    """What a generator wrote.

    Attributes:
        path: the store.
        structures: structures written.
        failed: structures whose reference calculation failed (not written).
        rejected: structures dropped because a force exceeded ``max_force``.
        seconds: wall time.
        kinds: ``{kind: count}`` written per recipe.
    """

    path: Path
    structures: int
    failed: int
    rejected: int
    seconds: float
    kinds: dict[str, int]


def label(atoms: ase.Atoms, calc: Calculator, stress: bool) -> ase.Atoms:
    """Copy of ``atoms`` with ``calc``'s energy, forces (and stress) frozen as labels."""
    atoms = atoms.copy()
    atoms.calc = calc
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress(voigt=True)
    info = dict(atoms.info)
    atoms.calc = None
    out = atoms.copy()
    out.info = info
    out.set_momenta(np.zeros((len(out), 3)))  # snapshots carry no velocities
    out.calc = SinglePointCalculator(out, **results)
    return out


def write_until(path: str | Path, count: int, batches: Iterator[tuple[str, list[ase.Atoms]]],
                labeller: Callable[[ase.Atoms], ase.Atoms | None], max_force: float,
                progress: Callable[[int, int], None] | None = None) -> GenerationResult:
    """Label structures from ``batches`` and write them until ``count`` are stored.

    ``labeller`` returns None when the reference calculation fails (counted).
    Structures with a force above ``max_force`` (eV/Å; clashes from random
    displacements) are dropped and counted. The store is written atomically
    (temporary file, then rename).
    """
    start = time.perf_counter()
    kinds: dict[str, int] = {}
    failed = rejected = 0
    with PackedStoreWriter(path, mode="w") as writer:
        while writer.count < count:
            kind, structures = next(batches)
            for atoms in structures:
                if writer.count >= count:
                    break
                labelled = labeller(atoms)
                if labelled is None:
                    failed += 1
                    continue
                if np.linalg.norm(labelled.calc.results["forces"], axis=1).max() > max_force:
                    rejected += 1
                    continue
                writer.add(labelled)
                kinds[kind] = kinds.get(kind, 0) + 1
                done = writer.count
                if progress is not None and done % 500 == 0:
                    progress(done, count)
    return GenerationResult(Path(path), writer.written, failed, rejected,
                            time.perf_counter() - start, kinds)


def maxwell_boltzmann(atoms: ase.Atoms, temperature_K: float, rng: np.random.Generator
                      ) -> None:
    """Draw momenta from the Maxwell-Boltzmann distribution: p ~ N(0, m k_B T) per component."""
    masses = atoms.get_masses()[:, None]
    kT = temperature_K * ase.units.kB
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * np.sqrt(masses * kT))
