"""Structures and cases of the model benchmark (``python -m benchmarks model``)."""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np

from benchmarks.mace_worker import TASKS
from benchmarks.neighbors import fcc_cu

# Aspirin (C9H8O4, 21 atoms), Å: built by hand from standard bond lengths and
# relaxed with GFN2-xTB (tblite, fmax 0.02 eV/Å) for this benchmark; centred.
ASPIRIN = (
    ("C", 0.866, -1.150, 0.000), ("C", 0.029, -0.014, 0.000), ("C", -1.349, -0.212, 0.000),
    ("C", -1.885, -1.490, 0.000), ("C", -1.065, -2.603, 0.000), ("C", 0.303, -2.424, 0.000),
    ("C", 2.355, -1.108, 0.000), ("O", 3.033, -2.109, 0.000), ("O", 2.892, 0.107, 0.000),
    ("H", 3.861, 0.047, 0.000), ("O", 0.677, 1.185, 0.000), ("C", 0.294, 2.480, 0.000),
    ("O", 1.176, 3.293, 0.000), ("C", -1.161, 2.875, 0.000), ("H", -1.199, 3.962, 0.000),
    ("H", -1.662, 2.507, 0.893), ("H", -1.662, 2.507, -0.893), ("H", -2.033, 0.616, 0.000),
    ("H", -2.958, -1.605, 0.000), ("H", -1.487, -3.596, 0.000), ("H", 0.977, -3.267, 0.000),
)


def aspirin() -> ase.Atoms:
    """Aspirin in vacuum (no cell, no periodicity), 21 atoms."""
    return ase.Atoms([row[0] for row in ASPIRIN], positions=[row[1:] for row in ASPIRIN])


@dataclass(frozen=True)
class Case:
    """One measurement: a structure and what is timed on it.

    Attributes:
        name: label in the table, e.g. ``"Cu fcc 256"``.
        atoms: the structure.
        task: ``"energy_forces"`` or ``"train_step"``.
    """

    name: str
    atoms: ase.Atoms
    task: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"case {self.name!r}: task must be one of {TASKS}, "
                             f"got {self.task!r}")


def cu_case(repeat: int, task: str = "energy_forces") -> Case:
    """fcc Cu, ``4 · repeat³`` atoms."""
    if repeat < 1:
        raise ValueError(f"fcc Cu supercell repeat must be >= 1, got {repeat}")
    atoms = fcc_cu(repeat)
    suffix = " train step" if task == "train_step" else ""
    return Case(f"Cu fcc {len(atoms)}{suffix}", atoms, task)


def build_cases(cu_repeats: tuple[int, ...], train_repeats: tuple[int, ...] = (),
                molecule: bool = True) -> list[Case]:
    """Energy+forces on each fcc Cu supercell and aspirin, then the training step.

    Args:
        cu_repeats: fcc Cu supercells (``4 · n³`` atoms each) timed for energy+forces.
        train_repeats: supercells of the training-step cases (may be empty).
        molecule: include aspirin (21 atoms).
    """
    cases = [cu_case(n) for n in cu_repeats]
    if molecule:
        cases.append(Case("aspirin 21", aspirin(), "energy_forces"))
    cases += [cu_case(n, "train_step") for n in train_repeats]
    return cases


def species_of(cases: list[Case]) -> list[int]:
    """Sorted atomic numbers present in any case (every model is built for all of them)."""
    return sorted({int(z) for case in cases for z in np.unique(case.atoms.numbers)})


def structure_message(atoms: ase.Atoms) -> dict:
    """The worker protocol's ``structure`` object (plain JSON types)."""
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": np.asarray(atoms.cell).tolist(), "pbc": atoms.pbc.tolist()}
