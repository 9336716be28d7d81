"""Writers of small files in the exact OMol25 (aselmdb) and MPTrj (JSON) layouts."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.db
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator


def random_molecule(rng: np.random.Generator, n: int) -> ase.Atoms:
    numbers = rng.choice([1, 6, 7, 8, 16], size=n)
    return ase.Atoms(numbers=numbers, positions=rng.normal(scale=1.5, size=(n, 3)))


def write_omol25_shard(path: Path, rng: np.random.Generator, count: int, start: int = 0
                       ) -> list[dict]:
    """An .aselmdb written the way OMol25 shards are: ase db + ase-db-backends.

    Rows: numbers, positions, energy, forces, zero cell, pbc False, and
    ``data`` = {charge, spin, data_id, source, num_electrons, ...}.
    Returns what was written, for comparison.
    """
    written = []
    db = ase.db.connect(str(path), type="aselmdb")
    for k in range(count):
        atoms = random_molecule(rng, int(rng.integers(2, 12)))
        charge = int(rng.integers(-2, 3))
        spin = int(rng.integers(1, 5))
        energy = float(rng.normal(-1e4, 1e3))
        forces = rng.normal(size=(len(atoms), 3))
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        data = {"charge": charge, "spin": spin, "data_id": ["elytes", "biomolecules"][k % 2],
                "source": f"calc-{start + k}", "num_electrons": int(atoms.numbers.sum() - charge),
                "homo_lumo_gap": float(rng.uniform(1, 5)),
                "mulliken_charges": rng.normal(size=len(atoms)).tolist()}
        db.write(atoms, data=data)
        written.append({"numbers": atoms.numbers.copy(), "positions": atoms.positions.copy(),
                        "energy": energy, "forces": forces, **data})
    db.close()
    return written


def pymatgen_structure_dict(atoms: ase.Atoms, magmoms: list | None) -> dict:
    """The dict pymatgen's ``Structure.as_dict()`` produces (the keys MPTrj carries)."""
    cell = atoms.cell[:]
    scaled = atoms.get_scaled_positions(wrap=False)
    sites = []
    for k, (sym, xyz) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions,
                                       strict=True)):
        site = {"species": [{"element": sym, "occu": 1}], "abc": scaled[k].tolist(),
                "xyz": xyz.tolist(), "label": sym, "properties": {}}
        if magmoms is not None:
            site["properties"]["magmom"] = magmoms[k]
        sites.append(site)
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
            "lattice": {"matrix": cell.tolist(), "pbc": [True, True, True], "a": a, "b": b,
                        "c": c, "alpha": alpha, "beta": beta, "gamma": gamma,
                        "volume": atoms.get_volume()},
            "properties": {}, "sites": sites}


def mptrj_frame(rng: np.random.Generator, mp_id: str, n: int) -> dict:
    atoms = ase.Atoms(numbers=rng.choice([3, 8, 26, 14], size=n),
                      cell=np.diag(rng.uniform(3, 6, size=3)) + rng.normal(scale=0.2,
                                                                           size=(3, 3)),
                      pbc=True)
    atoms.set_scaled_positions(rng.uniform(size=(n, 3)))
    magmom = rng.normal(size=n).tolist() if rng.uniform() < 0.5 else None
    unc = float(rng.normal(-5, 1) * n)
    stress = rng.normal(scale=20, size=(3, 3))
    stress = (stress + stress.T) / 2
    return {"structure": pymatgen_structure_dict(atoms, magmom),
            "uncorrected_total_energy": unc, "corrected_total_energy": unc - 1.5,
            "energy_per_atom": (unc - 1.5) / n, "ef_per_atom": float(rng.normal()),
            "e_per_atom_relaxed": float(rng.normal()), "ef_per_atom_relaxed": None,
            "force": rng.normal(size=(n, 3)).tolist(), "stress": stress.tolist(),
            "magmom": magmom, "bandgap": float(rng.uniform(0, 3)), "mp_id": mp_id}


def make_mptrj(rng: np.random.Generator, n_materials: int = 4, frames: int = 3) -> dict:
    data = {}
    for m in range(n_materials):
        mp_id = f"mp-{1000 + m}" if m % 2 == 0 else f"mvc-{m}"
        data[mp_id] = {f"task{m}-{f}-{f}": mptrj_frame(rng, mp_id, int(rng.integers(1, 7)))
                       for f in range(frames)}
    return data
