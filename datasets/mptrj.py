"""MPTrj reader: the ``{mp_id: {frame_id: frame}}`` JSON, streamed with ijson.

The file (≈11 GB for the full set) is never loaded whole: ``ijson`` yields one
material's frames at a time. Structures are pymatgen ``Structure.as_dict()``
dicts, parsed without pymatgen: ``lattice.matrix`` (row vectors, Å),
``sites[i].species[{element, occu}]``, ``sites[i].xyz`` (Å) or ``abc``.

Units: energies eV, forces eV/Å, stress kBar with VASP's sign (positive =
compressive). The stress is converted to ASE's convention (eV/Å³, positive =
tensile) in :func:`vasp_kbar_to_ase`, the only place that does it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ase
import ase.units
import ijson
import numpy as np

from mlpot.datasets.errors import DataFormatError, ReadReport, handle_invalid, logger
from mlpot.datasets.records import make_atoms, symbol_to_number

#: kBar (VASP sign) → eV/Å³ (ASE sign): 1 kBar = 0.1 GPa, and the sign flips.
KBAR_TO_ASE = -0.1 * ase.units.GPa

#: Energy keys that may be used as the label, and whether they are per atom.
ENERGY_KEYS: Mapping[str, bool] = {
    "uncorrected_total_energy": False,
    "corrected_total_energy": False,
    "energy_per_atom": True,
}
#: Frame scalars kept in ``atoms.info`` when present and not null.
_INFO_KEYS = ("uncorrected_total_energy", "corrected_total_energy", "energy_per_atom",
              "ef_per_atom", "e_per_atom_relaxed", "ef_per_atom_relaxed", "bandgap")


def vasp_kbar_to_ase(stress_kbar: Any) -> np.ndarray:
    """``[3, 3]`` VASP stress in kBar (positive = compressive) → ASE eV/Å³ (positive = tensile)."""
    return KBAR_TO_ASE * np.asarray(stress_kbar, dtype=float)


def iter_mptrj(
    path: str | Path,
    energy_key: str = "uncorrected_total_energy",
    require: Sequence[str] = ("energy", "forces"),
    skip_invalid: bool = False,
    report: ReadReport | None = None,
) -> Iterator[ase.Atoms]:
    """Stream every frame of an MPTrj JSON file as labelled ``ase.Atoms``.

    Args:
        path: the JSON file.
        energy_key: which energy becomes the ``energy`` label (see :data:`ENERGY_KEYS`;
            per-atom keys are multiplied by the number of atoms).
        require: labels a frame must have (else it is invalid).
        skip_invalid: skip (count, log) invalid frames instead of raising.
        report: receives the counts.

    Yields:
        Atoms with energy/forces/stress, ``info`` holding ``mp_id``, ``frame_id``,
        ``charge``, ``energy_key`` and the frame's other energies; per-atom
        ``magmoms`` in ``atoms.arrays`` when the frame has them.
    """
    if energy_key not in ENERGY_KEYS:
        raise ValueError(f"energy_key must be one of {sorted(ENERGY_KEYS)}, got {energy_key!r}")
    report = report if report is not None else ReadReport()
    path = str(path)
    last = "the start of the file"
    with open(path, "rb") as fh:
        materials = ijson.kvitems(fh, "", use_float=True)
        while True:
            try:
                item = next(materials)
            except StopIteration:
                return
            except ijson.JSONError as exc:
                err = DataFormatError(path, None, f"truncated or malformed JSON after "
                                                  f"{last} ({exc})")
                handle_invalid(err, skip_invalid, report)
                logger.warning("%s: stopped reading; %d frames read", path, report.read)
                return
            mp_id, frames = item
            if not isinstance(frames, dict):
                handle_invalid(DataFormatError(path, f"mp_id {mp_id}",
                                               "expected an object of frames"),
                               skip_invalid, report)
                continue
            for frame_id, frame in frames.items():
                try:
                    atoms = frame_to_atoms(path, mp_id, frame_id, frame, energy_key, require)
                except DataFormatError as err:
                    handle_invalid(err, skip_invalid, report)
                    continue
                report.read += 1
                yield atoms
            last = f"mp_id {mp_id}"


def frame_to_atoms(
    path: str, mp_id: str, frame_id: str, frame: Any, energy_key: str,
    require: Sequence[str] = ("energy", "forces"),
) -> ase.Atoms:
    """One MPTrj frame dict → labelled ``ase.Atoms`` (errors name ``mp_id/frame_id``)."""
    record = f"frame {mp_id}/{frame_id}"
    if not isinstance(frame, dict):
        raise DataFormatError(path, record, "frame is not an object")
    structure = frame.get("structure")
    if not isinstance(structure, dict):
        raise DataFormatError(path, record, "missing 'structure'")
    numbers, positions, cell, pbc, site_magmoms = _parse_structure(path, record, structure)
    n = len(numbers)
    energy = frame.get(energy_key)
    if energy is not None and ENERGY_KEYS[energy_key]:
        energy = float(energy) * n
    forces = frame.get("force")
    stress = frame.get("stress")
    if stress is not None:
        if np.shape(stress) != (3, 3):
            raise DataFormatError(path, record, f"stress has shape {np.shape(stress)}, "
                                                f"expected (3, 3)")
        stress = vasp_kbar_to_ase(stress)
    info: dict[str, Any] = {"mp_id": str(frame.get("mp_id", mp_id)), "frame_id": str(frame_id),
                            "charge": int(structure.get("charge") or 0),
                            "energy_key": energy_key}
    info.update({k: float(frame[k]) for k in _INFO_KEYS if frame.get(k) is not None})
    magmom = frame.get("magmom")
    if magmom is None:
        magmom = site_magmoms
    arrays = {"magmoms": magmom} if magmom is not None else None
    return make_atoms(path, record, numbers, positions, cell, pbc, energy=energy,
                      forces=forces, stress=stress, info=info, arrays=arrays,
                      require=require)


def _parse_structure(path: str, record: str, structure: dict) -> tuple:
    """numbers, positions (Å), cell (rows, Å), pbc, site magmoms (or None)."""
    try:
        lattice = structure["lattice"]
        cell = np.asarray(lattice["matrix"], dtype=float)
        sites = structure["sites"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(path, record, f"malformed pymatgen structure ({exc!r})") from None
    if cell.shape != (3, 3):
        raise DataFormatError(path, record, f"lattice matrix has shape {cell.shape}")
    pbc = lattice.get("pbc", (True, True, True))
    numbers, positions, magmoms = [], [], []
    for k, site in enumerate(sites):
        species = site.get("species") or []
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-8:
            raise DataFormatError(path, record, f"site {k} is disordered or empty: {species}")
        numbers.append(symbol_to_number(str(species[0].get("element")), path,
                                        f"{record} site {k}"))
        if site.get("xyz") is not None:
            positions.append(site["xyz"])
        elif site.get("abc") is not None:
            positions.append(np.asarray(site["abc"], dtype=float) @ cell)
        else:
            raise DataFormatError(path, record, f"site {k} has neither 'xyz' nor 'abc'")
        magmoms.append((site.get("properties") or {}).get("magmom"))
    site_magmoms = magmoms if magmoms and all(m is not None for m in magmoms) else None
    return np.asarray(numbers, dtype=np.int64), positions, cell, pbc, site_magmoms
