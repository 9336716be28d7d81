"""Inorganic crystals for a teacher to label: oxides, halides, semiconductors, metals.

Prototypes are built with ``ase.build.bulk`` and ``ase.spacegroup.crystal`` from
experimental lattice constants; recipes strain, rattle, remove atoms and run short
MD with the labelling calculator. Every structure carries a ``group`` (the
"material id" of the MPTrj layout: snapshots of one MD run share it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ase
import ase.build
import numpy as np
from ase import units
from ase.calculators.calculator import Calculator
from ase.md.langevin import Langevin
from ase.spacegroup import crystal

from mlpot.datasets.reference.common import maxwell_boltzmann


def prototypes() -> dict[str, ase.Atoms]:
    """Conventional or primitive cells of common inorganic compounds (Å, experiment)."""
    bulk = ase.build.bulk
    return {
        "MgO": bulk("MgO", "rocksalt", a=4.21, cubic=True),
        "NaCl": bulk("NaCl", "rocksalt", a=5.64, cubic=True),
        "LiF": bulk("LiF", "rocksalt", a=4.03, cubic=True),
        "CaO": bulk("CaO", "rocksalt", a=4.81, cubic=True),
        "NiO": bulk("NiO", "rocksalt", a=4.18, cubic=True),
        "ZnO": bulk("ZnO", "wurtzite", a=3.25, c=5.21),
        "GaAs": bulk("GaAs", "zincblende", a=5.65, cubic=True),
        "Si": bulk("Si", "diamond", a=5.43, cubic=True),
        "CsCl": bulk("CsCl", "cesiumchloride", a=4.12),
        "TiO2": crystal(
            ["Ti", "O"],
            basis=[(0, 0, 0), (0.3053, 0.3053, 0)],
            spacegroup=136,
            cellpar=[4.594, 4.594, 2.959, 90, 90, 90],
        ),
        "SrTiO3": crystal(
            ["Sr", "Ti", "O"],
            basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
            spacegroup=221,
            cellpar=[3.905, 3.905, 3.905, 90, 90, 90],
        ),
        "Al2O3": crystal(
            ["Al", "O"],
            basis=[(0, 0, 0.3523), (0.3064, 0, 0.25)],
            spacegroup=167,
            cellpar=[4.759, 4.759, 12.99, 90, 90, 120],
        ),
        "Fe": bulk("Fe", "bcc", a=2.87, cubic=True),
        "Cu": bulk("Cu", "fcc", a=3.61, cubic=True),
    }


def supercell(atoms: ase.Atoms, min_atoms: int = 16, max_atoms: int = 48) -> ase.Atoms:
    """Repeat along the shortest axes until the cell holds at least ``min_atoms``."""
    reps = [1, 1, 1]
    while len(atoms) * int(np.prod(reps)) < min_atoms:
        lengths = atoms.cell.lengths() * reps
        k = int(np.argmin(lengths))
        if len(atoms) * int(np.prod(reps)) * (reps[k] + 1) / reps[k] > max_atoms:
            break
        reps[k] += 1
    return atoms.repeat(reps)


def _strained(atoms: ase.Atoms, rng: np.random.Generator, vol: float, shear: float) -> ase.Atoms:
    eps = rng.normal(scale=shear, size=(3, 3))
    eps = (eps + eps.T) / 2 + rng.uniform(-vol, vol) * np.eye(3)
    out = atoms.copy()
    out.set_cell(out.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _recipe(
    kind: str, base: ase.Atoms, rng: np.random.Generator, calc: Calculator
) -> list[ase.Atoms]:
    seed = int(rng.integers(2**31))
    if kind == "strained":
        out = _strained(base, rng, 0.05, 0.02)
        out.rattle(0.01, seed=seed)
        return [out]
    if kind == "rattled":
        out = _strained(base, rng, 0.02, 0.005)
        out.rattle(float(rng.uniform(0.03, 0.1)), seed=seed)
        return [out]
    if kind == "vacancy":
        out = _strained(base, rng, 0.02, 0.005)
        del out[int(rng.integers(len(out)))]
        out.rattle(0.04, seed=seed)
        return [out]
    start = _strained(base, rng, 0.02, 0.005)
    start.calc = calc
    temperature = float(rng.uniform(300, 1200))
    maxwell_boltzmann(start, temperature, rng)
    dyn = Langevin(
        start,
        2 * units.fs,
        temperature_K=temperature,
        friction=0.02,
        fixcm=False,
        rng=np.random.default_rng(seed),
    )
    snapshots = []
    for _ in range(3):
        dyn.run(4)
        snapshots.append(start.copy())
    return snapshots


RECIPES = {"strained": 0.3, "rattled": 0.3, "vacancy": 0.15, "md": 0.25}
_PER_BATCH = {"md": 3}


def inorganic_batches(
    rng: np.random.Generator, calc: Calculator
) -> Iterator[tuple[str, list[ase.Atoms]]]:
    """Endless (recipe, structures) batches; one group id per batch."""
    protos = {name: supercell(a) for name, a in prototypes().items()}
    names = list(protos)
    kinds = list(RECIPES)
    weights = np.array([RECIPES[k] / _PER_BATCH.get(k, 1) for k in kinds])
    run = 0
    while True:
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        name = names[int(rng.integers(len(names)))]
        structures = _recipe(kind, protos[name], rng, calc)
        for atoms in structures:
            atoms.info.clear()
            atoms.info.update(
                group=f"gen-{name}-{kind}-{run}", data_id=f"inorganic/{kind}", formula=name
            )
        run += 1
        yield kind, structures


Builder = Callable[[np.random.Generator, Calculator], Iterator[tuple[str, list[ase.Atoms]]]]
