"""Write labelled molecules as an ``.aselmdb`` shard in OMol25's layout.

The inverse of :mod:`mlpot.datasets.omol25`: rows written through ASE's database
layer with the ``ase-db-backends`` LMDB backend, ids 1..N, each with ``numbers``,
``positions`` (Å), ``energy`` (eV), ``forces`` (eV/Å), a zero cell, ``pbc`` False and
``data`` = {``charge`` (e), ``spin`` (multiplicity 2S+1), plus every other scalar of
``atoms.info``, e.g. ``data_id``, ``source``, ``group``}. The shard is written to a
temporary file beside the target and renamed when complete, so a failed write leaves
no half-written shard (and an existing one untouched).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import ase
import ase.db
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.datasets.omol25 import SUFFIX
from mlpot.datasets.records import atoms_labels, validate_atoms


def row_data(atoms: ase.Atoms, where: str) -> dict:
    """The ``row.data`` of one molecule: ``charge``/``spin`` (ints) and the scalar info."""
    data = {
        k: v.item() if isinstance(v, np.generic) else v
        for k, v in atoms.info.items()
        if isinstance(v, str | int | float | bool | np.integer | np.floating)
    }
    for key, default in (("charge", 0), ("spin", 1)):
        value = float(data.get(key, default))
        if value != int(value):
            raise ValueError(f"{where}: {key} must be an integer, got {data[key]!r}")
        data[key] = int(value)
    return data


def write_aselmdb(path: str | Path, structures: Iterable[ase.Atoms]) -> int:
    """Write ``structures`` (non-periodic, with energy and forces) to the shard ``path``.

    Returns the number of rows written. Raises (``DataFormatError``/``ValueError``,
    naming the structure) when one is periodic, lacks a label or has non-finite
    values; the target is then left as it was.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"{path}: an OMol25 shard must end in {SUFFIX}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{SUFFIX}")
    count = 0
    try:
        db = ase.db.connect(str(tmp), type="aselmdb", use_lock_file=False)
        try:
            for atoms in structures:
                where = f"{path} structure {count}"
                validate_atoms(atoms, str(path), f"structure {count}", ("energy", "forces"))
                if atoms.pbc.any():
                    raise ValueError(f"{where}: periodic; OMol25 rows are molecules")
                labels = atoms_labels(atoms)
                row = ase.Atoms(numbers=atoms.numbers, positions=atoms.positions)
                energy = labels["energy"]  # validate_atoms checked it is present and finite
                assert energy is not None
                row.calc = SinglePointCalculator(
                    row, energy=float(np.asarray(energy)), forces=np.asarray(labels["forces"])
                )
                db.write(row, data=row_data(atoms, where))
                count += 1
        finally:
            db.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}-lock").unlink(missing_ok=True)
    return count
