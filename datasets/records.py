"""Building labelled :class:`ase.Atoms` from raw arrays, with checks that name the record.

All readers funnel through :func:`make_atoms`, so lengths, element numbers and
finiteness are checked the same way everywhere. Labels are attached with a
:class:`~ase.calculators.singlepoint.SinglePointCalculator` in ASE units and
sign conventions (eV, eV/Å, eV/Å³ with positive = tensile, Voigt-6 stress).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ase
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers as _SYMBOL_TO_Z

from mlpot.datasets.errors import DataFormatError

MAX_Z = 118
LABELS = ("energy", "forces", "stress")


def symbol_to_number(symbol: str, path: str, record: str) -> int:
    """Atomic number of an element symbol; unknown symbols raise a named error."""
    z = _SYMBOL_TO_Z.get(symbol)
    if z is None or z < 1:
        raise DataFormatError(path, record, f"unknown element symbol {symbol!r}")
    return int(z)


def stress_to_voigt(stress: np.ndarray) -> np.ndarray:
    """3x3 or Voigt-6 stress → Voigt-6 ``(xx, yy, zz, yz, xz, xy)``."""
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (6,):
        return stress
    return np.array([stress[0, 0], stress[1, 1], stress[2, 2],
                     stress[1, 2], stress[0, 2], stress[0, 1]])


def make_atoms(
    path: str,
    record: str,
    numbers: Sequence[int] | np.ndarray,
    positions: Any,
    cell: Any = None,
    pbc: Any = False,
    energy: float | None = None,
    forces: Any = None,
    stress: Any = None,
    info: Mapping[str, Any] | None = None,
    arrays: Mapping[str, Any] | None = None,
    require: Sequence[str] = (),
) -> ase.Atoms:
    """A checked, labelled ``ase.Atoms``.

    Args:
        path, record: where the data came from (used in error messages).
        numbers: ``[n]`` atomic numbers.
        positions: ``[n, 3]`` Å.
        cell: ``[3, 3]`` rows, Å (None or zeros for molecules).
        pbc: bool or ``[3]`` bools.
        energy: total energy, eV.
        forces: ``[n, 3]`` eV/Å.
        stress: ``[3, 3]`` or Voigt-6, ASE sign, eV/Å³.
        info: entries for ``atoms.info`` (charge, spin, ids, ...).
        arrays: extra per-atom arrays (first dimension ``n``) for ``atoms.arrays``.
        require: labels that must be present (subset of energy/forces/stress).

    Raises:
        DataFormatError: mismatched lengths, invalid atomic numbers, non-finite
            values or a missing required label.
    """
    numbers = np.asarray(numbers)
    if numbers.ndim != 1 or not np.issubdtype(numbers.dtype, np.integer):
        raise DataFormatError(path, record, f"atomic numbers must be a 1-D integer list, "
                                            f"got shape {numbers.shape} dtype {numbers.dtype}")
    n = len(numbers)
    bad = (numbers < 1) | (numbers > MAX_Z)
    if bad.any():
        raise DataFormatError(path, record, f"invalid atomic number {numbers[bad][0]}")
    positions = _float_array(path, record, "positions", positions, (n, 3))
    cell = np.zeros((3, 3)) if cell is None else _float_array(path, record, "cell", cell, (3, 3))
    labels = {"energy": energy, "forces": forces, "stress": stress}
    missing = [k for k in require if labels.get(k) is None]
    if missing:
        raise DataFormatError(path, record, f"missing {', '.join(missing)}")
    results: dict[str, Any] = {}
    if energy is not None:
        e = float(energy)
        if not np.isfinite(e):
            raise DataFormatError(path, record, f"non-finite energy {e}")
        results["energy"] = e
    if forces is not None:
        results["forces"] = _float_array(path, record, "forces", forces, (n, 3))
    if stress is not None:
        s = np.asarray(stress, dtype=float)
        if s.shape not in ((3, 3), (6,)):
            raise DataFormatError(path, record, f"stress must be 3x3 or Voigt-6, got {s.shape}")
        results["stress"] = _float_array(path, record, "stress", stress_to_voigt(s), (6,))
    atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    for key, value in (arrays or {}).items():
        atoms.arrays[key] = _float_array(path, record, key, value, (n, *np.shape(value)[1:]))
    atoms.info.update(info or {})
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def atoms_labels(atoms: ase.Atoms) -> dict[str, np.ndarray | float | None]:
    """Energy / forces / Voigt stress stored on an ``Atoms``' calculator (None when absent)."""
    out: dict[str, Any] = dict.fromkeys(LABELS)
    calc = atoms.calc
    if calc is None:
        return out
    results = getattr(calc, "results", {})
    for key in LABELS:
        if key in results and results[key] is not None:
            out[key] = results[key]
    if out["stress"] is not None:
        out["stress"] = stress_to_voigt(out["stress"])
    return out


def _float_array(path: str, record: str, name: str, value: Any, shape: tuple) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(path, record, f"{name} is not a numeric array ({exc})") from None
    if arr.shape != shape:
        raise DataFormatError(path, record, f"{name} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise DataFormatError(path, record, f"{name} contains NaN or inf")
    return arr


def validate_atoms(atoms: ase.Atoms, path: str, record: str, require: Sequence[str] = ()
                   ) -> ase.Atoms:
    """Check an ``Atoms`` parsed by ase (numbers, finiteness, label shapes, required labels)."""
    numbers = atoms.numbers
    bad = (numbers < 1) | (numbers > MAX_Z)
    if bad.any():
        raise DataFormatError(path, record, f"invalid atomic number {numbers[bad][0]} "
                                            f"(unknown element symbol?)")
    n = len(atoms)
    _float_array(path, record, "positions", atoms.positions, (n, 3))
    labels = atoms_labels(atoms)
    missing = [k for k in require if labels.get(k) is None]
    if missing:
        raise DataFormatError(path, record, f"missing {', '.join(missing)}")
    if labels["forces"] is not None:
        _float_array(path, record, "forces", labels["forces"], (n, 3))
    if labels["stress"] is not None:
        _float_array(path, record, "stress", labels["stress"], (6,))
    if labels["energy"] is not None and not np.isfinite(float(labels["energy"])):
        raise DataFormatError(path, record, "non-finite energy")
    return atoms
