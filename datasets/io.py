"""``read``: one entry point over every format, chosen by extension or content.

Formats: ``omol25`` (``.aselmdb`` file or a directory of them), ``mptrj``
(MPTrj JSON), ``store`` (mlpot packed HDF5), ``extxyz`` and any other name
ase.io knows (passed through as ``ase:<name>`` or just the ase format name).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ase

from mlpot.datasets.errors import DataFormatError, ReadReport, handle_invalid, logger
from mlpot.datasets.extxyz import ExtxyzReader, iter_ase
from mlpot.datasets.mptrj import iter_mptrj
from mlpot.datasets.omol25 import SUFFIX as OMOL_SUFFIX
from mlpot.datasets.omol25 import OMol25Reader
from mlpot.datasets.records import validate_atoms
from mlpot.datasets.store import PackedStore

#: Formats with their own reader (anything else goes to ase.io).
FORMATS = ("omol25", "mptrj", "store", "extxyz")
#: Labels required by default: the training formats always carry energy and forces.
_DEFAULT_REQUIRE = {"omol25": ("energy", "forces"), "mptrj": ("energy", "forces")}


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its extension, then its first bytes."""
    path = Path(path)
    if path.is_dir():
        return "omol25"
    suffix = path.suffix.lower()
    if suffix == OMOL_SUFFIX:
        return "omol25"
    if suffix in (".h5", ".hdf5"):
        return "store"
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    if suffix == ".json":
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
        # MPTrj: {"mp-...": {"frame": {"structure": ...}}}; ASE's db json has "ids"/"1"
        if head.startswith(b"{") and b'"structure"' in head:
            return "mptrj"
        return "json"
    return "ase"


def open_reader(path: str | Path, format: str | None = None, **options: Any) -> Any:
    """A random-access reader (``len`` and ``[i]``) for the indexable formats.

    ``omol25`` → :class:`OMol25Reader`, ``store`` → :class:`PackedStore`,
    ``extxyz`` → :class:`ExtxyzReader`. Streaming formats (MPTrj) raise: convert
    them to the store first (``mlpot data convert``).
    """
    fmt = format or detect_format(path)
    if fmt == "omol25":
        return OMol25Reader(path, **{"require": _DEFAULT_REQUIRE["omol25"], **options})
    if fmt == "store":
        return PackedStore(path)
    if fmt == "extxyz":
        return ExtxyzReader(path, **options)
    raise ValueError(f"{path}: format {fmt!r} is read by streaming only; convert it to the "
                     f"HDF5 store (mlpot data convert) for random access")


def read(path: str | Path, format: str | None = None, *,
         skip_invalid: bool = False, require: Sequence[str] | None = None,
         report: ReadReport | None = None, **options: Any) -> Iterator[ase.Atoms]:
    """Every structure in ``path`` as labelled ``ase.Atoms``, streamed.

    Args:
        path: a file, or a directory of ``.aselmdb`` shards.
        format: override detection: ``omol25``, ``mptrj``, ``store``, ``extxyz`` or
            an ase.io format name.
        skip_invalid: skip (count and log) bad records instead of raising.
        require: labels each structure must have (default: energy and forces for
            OMol25 and MPTrj, nothing otherwise).
        report: receives the counts of read and skipped records.
        **options: reader options, e.g. ``energy_key`` for MPTrj, ``data_keys`` for OMol25.

    Yields:
        ``ase.Atoms`` with a ``SinglePointCalculator`` holding energy (eV), forces
        (eV/Å), stress (Voigt, eV/Å³, ASE sign) when present, and ``info`` with
        ``charge``/``spin`` and record ids (``mp_id``, ``data_id``, ...).

    Raises:
        DataFormatError: bad input (names the file and record) unless ``skip_invalid``.
    """
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    fmt = format or detect_format(path)
    report = report if report is not None else ReadReport()
    req = tuple(require) if require is not None else _DEFAULT_REQUIRE.get(fmt, ())
    if fmt == "mptrj":
        yield from iter_mptrj(path, require=req, skip_invalid=skip_invalid, report=report,
                              **options)
    elif fmt in ("omol25", "extxyz"):
        cls = OMol25Reader if fmt == "omol25" else ExtxyzReader
        reader = cls(path, require=req, skip_invalid=skip_invalid, report=report, **options)
        yield from reader
    elif fmt == "store":
        store = PackedStore(path)
        for index in range(len(store)):
            atoms = store[index]
            try:
                validate_atoms(atoms, str(path), f"structure {index}", req)
            except DataFormatError as err:
                handle_invalid(err, skip_invalid, report)
                continue
            report.read += 1
            yield atoms
    else:
        yield from iter_ase(path, format=None if fmt == "ase" else fmt, require=req,
                            skip_invalid=skip_invalid, report=report)
    if report.skipped:
        logger.warning("%s: read %d structures, skipped %d invalid records",
                       path, report.read, report.skipped)
