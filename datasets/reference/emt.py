"""EMT reference data for metals: bulk, strained, defective, surface, MD and alloy structures.

ASE's EMT (Jacobsen, Stoltze, Nørskov, Surf. Sci. 366, 394 (1996)) gives
energy, forces and stress for Al, Ni, Cu, Pd, Ag, Pt, Au in a millisecond for
small cells, so thousands of labelled structures take minutes on one core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import ase
import ase.build
import numpy as np
from ase import units
from ase.calculators.emt import EMT
from ase.data import atomic_numbers, reference_states
from ase.md.langevin import Langevin

from mlpot.datasets.reference.common import (
    GenerationResult,
    label,
    maxwell_boltzmann,
    write_until,
)

EMT_METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
#: Recipe weights (target fraction of structures) and structures per batch.
_RECIPES = {"bulk": 0.25, "vacancy": 0.1, "surface": 0.15, "rattled": 0.2, "md": 0.2,
            "alloy": 0.1}
_MD_SNAPSHOTS = 8
_PER_BATCH = {"md": _MD_SNAPSHOTS}


def fcc_lattice_constant(symbol: str) -> float:
    """Experimental fcc lattice constant, Å (ASE's reference states)."""
    return float(reference_states[atomic_numbers[symbol]]["a"])  # type: ignore[index,arg-type]  # fcc entries of ase.data.reference_states all hold "a"


def bulk_cell(symbol: str, structure: str, a_fcc: float, rng: np.random.Generator
              ) -> ase.Atoms:
    """A 27-54 atom fcc/bcc/hcp supercell with the fcc volume per atom."""
    if structure == "fcc":
        return ase.build.bulk(symbol, "fcc", a=a_fcc, cubic=True).repeat(
            (2, 2, int(rng.integers(2, 4))))
    if structure == "bcc":
        a = a_fcc * 0.5 ** (1 / 3)  # same volume per atom: a_bcc³/2 = a_fcc³/4
        return ase.build.bulk(symbol, "bcc", a=a, cubic=True).repeat(3)
    a = a_fcc / np.sqrt(2)  # ideal hcp with the fcc nearest-neighbour distance
    return ase.build.bulk(symbol, "hcp", a=a, c=a * np.sqrt(8 / 3)).repeat((3, 3, 2))


def strained(atoms: ase.Atoms, rng: np.random.Generator, volumetric: float, shear: float
             ) -> ase.Atoms:
    """Apply ``(1 + e) I + symmetric random shear`` to cell and positions."""
    eps = rng.normal(scale=shear, size=(3, 3))
    eps = (eps + eps.T) / 2 + rng.uniform(-volumetric, volumetric) * np.eye(3)
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def _bulk(rng: np.random.Generator, metals: Sequence[str]) -> list[ase.Atoms]:
    symbol = str(rng.choice(metals))
    structure = str(rng.choice(["fcc", "fcc", "bcc", "hcp"]))
    atoms = strained(bulk_cell(symbol, structure, fcc_lattice_constant(symbol), rng), rng,
                     0.06, 0.02)
    atoms.rattle(0.01, seed=int(rng.integers(2**31)))
    return [atoms]


def _vacancy(rng: np.random.Generator, metals: Sequence[str]) -> list[ase.Atoms]:
    atoms = _bulk(rng, metals)[0]
    for _ in range(int(rng.integers(1, 3))):
        del atoms[int(rng.integers(len(atoms)))]
    atoms.rattle(0.05, seed=int(rng.integers(2**31)))
    return [atoms]


def _surface(rng: np.random.Generator, metals: Sequence[str]) -> list[ase.Atoms]:
    symbol = str(rng.choice(metals))
    a = fcc_lattice_constant(symbol) * rng.uniform(0.98, 1.02)
    facet = str(rng.choice(["fcc111", "fcc100", "fcc110"]))
    size = (int(rng.integers(2, 4)), int(rng.integers(2, 4)), int(rng.integers(3, 6)))
    atoms = getattr(ase.build, facet)(symbol, size=size, a=a, vacuum=6.0, periodic=True)
    atoms.rattle(0.03, seed=int(rng.integers(2**31)))
    return [atoms]


def _rattled(rng: np.random.Generator, metals: Sequence[str]) -> list[ase.Atoms]:
    atoms = _bulk(rng, metals)[0]
    atoms.rattle(float(rng.uniform(0.03, 0.12)), seed=int(rng.integers(2**31)))
    return [atoms]


def _alloy(rng: np.random.Generator, metals: Sequence[str]) -> list[ase.Atoms]:
    k = int(rng.integers(2, min(4, len(metals)) + 1)) if len(metals) > 1 else 1
    species = rng.choice(metals, size=k, replace=False)
    atoms = ase.build.bulk("Cu", "fcc", a=1.0, cubic=True).repeat((2, 2, 2))
    symbols = rng.choice(species, size=len(atoms))
    a = float(np.mean([fcc_lattice_constant(str(s)) for s in symbols]))  # Vegard's law
    atoms.set_chemical_symbols(symbols)
    atoms.set_cell(atoms.cell[:] * a, scale_atoms=True)
    atoms = strained(atoms, rng, 0.03, 0.01)
    atoms.rattle(0.05, seed=int(rng.integers(2**31)))
    return [atoms]


def _md(rng: np.random.Generator, metals: Sequence[str], snapshots: int = _MD_SNAPSHOTS,
        interval: int = 10) -> list[ase.Atoms]:
    """Snapshots of a Langevin run (2 fs steps) at 300-1500 K with EMT."""
    start = (_alloy if rng.uniform() < 0.3 else _bulk)(rng, metals)[0]
    start.calc = EMT()
    temperature = float(rng.uniform(300, 1500))
    maxwell_boltzmann(start, temperature, rng)
    dyn = Langevin(start, 2 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False,
                   rng=np.random.default_rng(int(rng.integers(2**31))))
    out = []
    for _ in range(snapshots):
        dyn.run(interval)
        out.append(start.copy())
    return out


_BUILDERS: dict[str, Callable[[np.random.Generator, Sequence[str]], list[ase.Atoms]]] = {
    "bulk": _bulk, "vacancy": _vacancy, "surface": _surface, "rattled": _rattled,
    "md": _md, "alloy": _alloy}


def _batches(rng: np.random.Generator, metals: Sequence[str]
             ) -> Iterator[tuple[str, list[ase.Atoms]]]:
    names = list(_RECIPES)
    weights = np.array([_RECIPES[n] / _PER_BATCH.get(n, 1) for n in names])
    run = 0
    while True:
        kind = str(rng.choice(names, p=weights / weights.sum()))
        structures = _BUILDERS[kind](rng, metals)
        for atoms in structures:
            atoms.info.update(group=f"emt-{kind}-{run}", data_id=f"emt/{kind}",
                              charge=0, spin=1)
        run += 1
        yield kind, structures


def emt_metals(path: str | Path, count: int = 5000, seed: int = 0,
               metals: Sequence[str] = EMT_METALS, max_force: float = 15.0,
               progress: Callable[[int, int], None] | None = None) -> GenerationResult:
    """Generate ``count`` EMT-labelled metal structures into the store ``path``.

    Recipes (by weight): strained fcc/bcc/hcp bulk (±6% volumetric, 2% shear),
    1-2 vacancies, rattled (0.03-0.12 Å) bulk, fcc(111)/(100)/(110) slabs with
    6 Å vacuum, Langevin MD snapshots at 300-1500 K, random 2-4 component fcc
    alloys at Vegard lattice constants. Labels: energy (eV), forces (eV/Å),
    stress (eV/Å³). ``group`` ids tie together snapshots of one MD run.
    Structures with a force above ``max_force`` (eV/Å) are dropped.
    """
    unknown = set(metals) - set(EMT_METALS)
    if unknown:
        raise ValueError(f"EMT has no parameters fitted for {sorted(unknown)}; "
                         f"use a subset of {EMT_METALS}")
    rng = np.random.default_rng(seed)
    calc = EMT()
    return write_until(path, count, _batches(rng, list(metals)),
                       lambda atoms: label(atoms, calc, stress=True), max_force, progress)
