"""GFN2-xTB reference data for small organic molecules (neutral, charged, open-shell).

Labels come from ``tblite.ase.TBLite(method="GFN2-xTB", charge=q,
multiplicity=m)`` (Bannwarth, Ehlert, Grimme, JCTC 15, 1652 (2019)). Run with
``OMP_NUM_THREADS=1``: for molecules this small, more OpenMP threads on a busy
machine were 100-300x slower.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import ase
import ase.build
import numpy as np
from ase import units
from ase.collections import g2
from ase.md.langevin import Langevin
from ase.neighborlist import natural_cutoffs, neighbor_list

from mlpot.datasets.reference.common import (
    GenerationResult,
    label,
    maxwell_boltzmann,
    write_until,
)

logger = logging.getLogger("mlpot.datasets")
ORGANIC = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl"})
#: Recipe weights (target fraction of structures) and structures per batch.
_RECIPES = {"rattled": 0.4, "conformer": 0.25, "md": 0.35}
_PER_BATCH = {"md": 4}
_MD_EQUILIBRATION = 20  # steps (10 fs) before the first snapshot


def organic_molecules() -> list[tuple[str, ase.Atoms, int]]:
    """G2 molecules of H, C, N, O, F, P, S, Cl with >= 2 atoms, with their multiplicity.

    The multiplicity is ``|Σ initial magnetic moments| + 1`` (G2 marks radicals
    and triplets that way), e.g. CH3 → 2, O2 → 3.
    """
    out = []
    for name in g2.names:
        atoms = ase.build.molecule(name)
        if len(atoms) < 2 or not set(atoms.get_chemical_symbols()) <= ORGANIC:
            continue
        mult = round(abs(atoms.get_initial_magnetic_moments().sum())) + 1
        atoms.set_initial_magnetic_moments(None)
        out.append((name, atoms, mult))
    return out


def ion_multiplicity(atoms: ase.Atoms, charge: int) -> int:
    """Lowest multiplicity allowed by the electron count (1 for even, 2 for odd)."""
    electrons = int(atoms.numbers.sum()) - charge
    return 1 if electrons % 2 == 0 else 2


def rotate_random_torsion(atoms: ase.Atoms, rng: np.random.Generator) -> ase.Atoms | None:
    """Rotate the fragment on one side of a random rotatable bond by a random angle.

    Rotatable: a bond between two atoms that each have another neighbour and
    that is not in a ring. Returns None when there is no such bond.
    """
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms))
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        neighbours[a].add(b)
    bonds = [(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True)
             if a < b and len(neighbours[a]) > 1 and len(neighbours[b]) > 1]
    rng.shuffle(bonds)
    for a, b in bonds:
        side, stack = {b}, [b]
        while stack:  # atoms reachable from b without crossing the bond (a, b)
            k = stack.pop()
            for n in neighbours[k]:
                if n not in side and not (k == b and n == a):
                    side.add(n)
                    stack.append(n)
        if a in side:
            continue  # ring bond
        out = atoms.copy()
        axis = out.positions[b] - out.positions[a]
        idx = sorted(side)
        sub = out[idx]
        sub.rotate(float(rng.uniform(-180, 180)), axis, center=out.positions[b])
        out.positions[idx] = sub.positions
        return out
    return None


def _too_close(atoms: ase.Atoms, minimum: float = 0.7) -> bool:
    d = atoms.get_all_distances()
    return bool((d[np.triu_indices(len(atoms), 1)] < minimum).any())


def relax(atoms: ase.Atoms, charge: int, mult: int, fmax: float = 0.05, steps: int = 100
          ) -> ase.Atoms:
    """GFN2-xTB minimum near ``atoms`` for this charge and multiplicity (BFGS).

    G2 geometries are (MP2) minima of the neutral molecules: an ion at them sits far
    from its own minimum (forces of several eV/Å), and even a neutral molecule is
    off the GFN2-xTB minimum, so every recipe starts from this geometry.
    Returns a copy of ``atoms`` when the optimisation fails.
    """
    from ase.optimize import BFGS
    from tblite.ase import TBLite

    out = atoms.copy()
    out.calc = TBLite(method="GFN2-xTB", charge=charge, multiplicity=mult, verbosity=0)
    try:
        BFGS(out, logfile=None).run(fmax=fmax, steps=steps)
    except Exception as exc:  # tblite raises on SCF failure
        logger.warning("xtb relaxation failed (q=%d m=%d): %s", charge, mult, exc)
        return atoms.copy()
    out.calc = None
    return out


def _variants(kind: str, atoms: ase.Atoms, charge: int, mult: int, rng: np.random.Generator
              ) -> list[ase.Atoms]:
    seed = int(rng.integers(2**31))
    if kind == "rattled":
        out = atoms.copy()
        out.rattle(float(rng.uniform(0.01, 0.06)), seed=seed)
        return [out]
    if kind == "conformer":
        out = rotate_random_torsion(atoms, rng)
        if out is None:
            return []
        out.rattle(0.02, seed=seed)
        return [out]
    from tblite.ase import TBLite

    start = atoms.copy()
    start.calc = TBLite(method="GFN2-xTB", charge=charge, multiplicity=mult, verbosity=0)
    temperature = float(rng.uniform(300, 1000))
    maxwell_boltzmann(start, temperature, np.random.default_rng(seed))
    dyn = Langevin(start, 0.5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False,
                   rng=np.random.default_rng(seed + 1))
    dyn.run(_MD_EQUILIBRATION)
    snapshots = []
    for _ in range(_PER_BATCH["md"]):
        dyn.run(10)
        snapshots.append(start.copy())
    return snapshots


def _batches(rng: np.random.Generator, charged_fraction: float
             ) -> Iterator[tuple[str, list[ase.Atoms]]]:
    molecules = organic_molecules()
    flexible = [m for m in molecules if rotate_random_torsion(m[1], rng) is not None]
    minima: dict[tuple[str, int, int], ase.Atoms] = {}
    names = list(_RECIPES)
    weights = np.array([_RECIPES[n] / _PER_BATCH.get(n, 1) for n in names])
    run = 0
    while True:
        kind = str(rng.choice(names, p=weights / weights.sum()))
        pool = flexible if kind == "conformer" else molecules
        name, atoms, mult = pool[int(rng.integers(len(pool)))]
        charge = 0
        if rng.uniform() < charged_fraction:
            charge = int(rng.choice([-1, 1]))
            mult = ion_multiplicity(atoms, charge)
        if (name, charge, mult) not in minima:
            minima[name, charge, mult] = relax(atoms, charge, mult)
        try:
            structures = _variants(kind, minima[name, charge, mult], charge, mult, rng)
        except Exception as exc:  # an MD run whose xTB calculation failed
            logger.warning("xtb %s %s q=%d m=%d failed: %s", kind, name, charge, mult, exc)
            structures = []
        structures = [s for s in structures if not _too_close(s)]
        for s in structures:
            s.info.clear()
            s.info.update(group=f"{name}/q{charge}/m{mult}/{run}", data_id=f"xtb/{kind}",
                          molecule=name, charge=charge, spin=mult)
        run += 1
        yield kind, structures


def _xtb_label(atoms: ase.Atoms) -> ase.Atoms | None:
    from tblite.ase import TBLite

    calc = TBLite(method="GFN2-xTB", charge=int(atoms.info["charge"]),
                  multiplicity=int(atoms.info["spin"]), verbosity=0)
    try:
        return label(atoms, calc, stress=False)
    except Exception as exc:  # tblite raises on SCF failure
        logger.warning("xtb labelling failed for %s: %s", atoms.info.get("group"), exc)
        return None


def xtb_molecules(path: str | Path, count: int = 2000, seed: int = 0,
                  charged_fraction: float = 0.25, max_force: float = 20.0,
                  progress: Callable[[int, int], None] | None = None) -> GenerationResult:
    """Generate ``count`` GFN2-xTB-labelled molecular structures into the store ``path``.

    Molecules: the organic subset of ASE's G2 set, neutral with their G2
    multiplicity (radicals such as CH3, OH, NO2; triplets such as O2, CH2) or,
    with probability ``charged_fraction``, as a cation/anion (multiplicity 1 or
    2 from the electron count). Each (molecule, charge, multiplicity) is first
    relaxed with GFN2-xTB (:func:`relax`); from that minimum: rattled
    (0.01-0.06 Å), random torsion rotations (conformers) and Langevin MD
    snapshots (300-1000 K, 0.5 fs steps, 10 fs of equilibration, then every
    10 steps). Labels: energy (eV), forces (eV/Å);
    ``info`` holds ``charge`` and ``spin`` (multiplicity). Structures with a
    force above ``max_force`` (eV/Å; e.g. clashes after a torsion) are dropped.
    """
    if os.environ.get("OMP_NUM_THREADS") != "1":
        logger.warning("OMP_NUM_THREADS is not 1: tblite may be far slower for small molecules")
    rng = np.random.default_rng(seed)
    return write_until(path, count, _batches(rng, charged_fraction), _xtb_label, max_force,
                       progress)
