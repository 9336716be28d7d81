"""Convert any readable input(s) into one packed HDF5 store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlpot.datasets.errors import ReadReport
from mlpot.datasets.io import read
from mlpot.datasets.store import PackedStoreWriter


def convert(inputs: Sequence[str | Path], output: str | Path, format: str | None = None,
            append: bool = False, skip_invalid: bool = False,
            progress: Callable[[int], None] | None = None, **options: Any) -> ReadReport:
    """Stream every structure of ``inputs`` into the store ``output``.

    A new store is written to a temporary file and renamed only when every
    input was read; on an error nothing is left at ``output`` (an existing file
    there is untouched). With ``append`` the structures are added in place.

    Args:
        inputs: files or OMol25 directories.
        output: the ``.h5`` store.
        format: input format override (default: detected per input).
        append: add to an existing store instead of replacing it.
        skip_invalid: skip (count, log) bad records.
        progress: called with the running count every 1,000 structures.
        **options: reader options (e.g. ``energy_key`` for MPTrj).

    Returns:
        Counts of structures written and records skipped.
    """
    report = ReadReport()
    for path in inputs:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
    with PackedStoreWriter(output, mode="a" if append else "w") as writer:
        for path in inputs:
            for atoms in read(path, format, skip_invalid=skip_invalid, report=report,
                              **options):
                writer.add(atoms)
                if progress is not None and report.read % 1000 == 0:
                    progress(report.read)
    return report
