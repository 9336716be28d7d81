"""Write labelled structures in the MPTrj JSON layout (``{mp_id: {frame_id: frame}}``).

The inverse of :mod:`mlpot.datasets.mptrj` for the keys that reader uses: a pymatgen
``Structure.as_dict()``-shaped ``structure`` (lattice rows and sites with ``xyz`` and
``abc``), ``uncorrected_total_energy`` / ``corrected_total_energy`` (eV; no
corrections are applied, so both are equal), ``energy_per_atom``, ``force`` (eV/Å)
and ``stress`` in kBar with VASP's sign (positive = compressive): the ASE stress
σ (eV/Å³, positive = tensile) is written as σ / (−0.1 GPa). Frames are streamed to
a temporary file that is renamed when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import ase
import numpy as np

from mlpot.datasets.mptrj import KBAR_TO_ASE
from mlpot.datasets.records import atoms_labels


def structure_dict(atoms: ase.Atoms) -> dict[str, Any]:
    """The pymatgen ``Structure.as_dict()`` layout of an ordered periodic structure."""
    cell = np.asarray(atoms.cell[:], dtype=float)
    frac = atoms.get_scaled_positions(wrap=False)
    sites = [
        {
            "species": [{"element": s, "occu": 1}],
            "abc": f.tolist(),
            "xyz": x.tolist(),
            "label": s,
            "properties": {},
        }
        for s, f, x in zip(atoms.get_chemical_symbols(), frac, atoms.positions, strict=True)
    ]
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "charge": 0,
        "lattice": {"matrix": cell.tolist(), "pbc": [bool(p) for p in atoms.pbc]},
        "properties": {},
        "sites": sites,
    }


def frame_dict(atoms: ase.Atoms, mp_id: str) -> dict[str, Any]:
    """One MPTrj frame from an ``Atoms`` with energy, forces and stress labels."""
    labels = atoms_labels(atoms)
    missing = [k for k in ("energy", "forces", "stress") if labels[k] is None]
    if missing:
        raise ValueError(f"{mp_id}: structure lacks {', '.join(missing)} for an MPTrj frame")
    voigt = np.asarray(labels["stress"], dtype=float)
    xx, yy, zz, yz, xz, xy = voigt
    sigma = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    energy = float(labels["energy"])  # type: ignore[arg-type]  # checked above: not None
    return {
        "structure": structure_dict(atoms),
        "uncorrected_total_energy": energy,
        "corrected_total_energy": energy,
        "energy_per_atom": energy / len(atoms),
        "ef_per_atom": None,
        "e_per_atom_relaxed": None,
        "ef_per_atom_relaxed": None,
        "force": np.asarray(labels["forces"], dtype=float).tolist(),
        "stress": (sigma / KBAR_TO_ASE).tolist(),
        "magmom": None,
        "bandgap": None,
        "mp_id": mp_id,
    }


class MPtrjWriter:
    """Stream materials into an MPTrj JSON file (context manager, atomic rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._fh: TextIO | None = None
        self.materials = self.frames = 0

    def __enter__(self) -> MPtrjWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self._tmp, "w")
        self._fh.write("{")
        return self

    def _file(self) -> TextIO:
        if self._fh is None:
            raise RuntimeError("MPtrjWriter is not open: use it in a `with` block")
        return self._fh

    def add_material(self, mp_id: str, frames: Sequence[ase.Atoms]) -> None:
        """Write one material: its frames get ids ``<mp_id>-<k>-<k>``-style task ids."""
        body = {f"{mp_id}-0-{k}": frame_dict(a, mp_id) for k, a in enumerate(frames)}
        self._file().write(
            ("," if self.materials else "") + "\n" + json.dumps(mp_id) + ": " + json.dumps(body)
        )
        self.materials += 1
        self.frames += len(frames)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        fh = self._file()
        if exc_type is not None:
            fh.close()
            self._tmp.unlink(missing_ok=True)
            return
        fh.write("\n}\n")
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(self._tmp, self.path)
