"""Errors and skip bookkeeping shared by the readers.

Every reader names the file and the record (MPTrj ``mp_id/frame_id``, OMol25
row id, extxyz frame number) when input is bad. With ``skip_invalid=True`` the
record is skipped instead, logged, and counted in a :class:`ReadReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import ase

logger = logging.getLogger("mlpot.datasets")


class DataFormatError(ValueError):
    """Bad input: the message names the file and the record."""

    def __init__(self, path: str | Path, record: str | None, problem: str) -> None:
        where = f"{path}" if record is None else f"{path}: {record}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.record = record
        self.problem = problem


@dataclass
class ReadReport:
    """Counts of one read: structures returned and records skipped.

    Attributes:
        read: number of structures yielded.
        skipped: number of records skipped (only with ``skip_invalid=True``).
        messages: one line per skipped record (file, record, problem).
    """

    read: int = 0
    skipped: int = 0
    messages: list[str] = field(default_factory=list)

    def skip(self, error: DataFormatError) -> None:
        """Count and log one skipped record."""
        self.skipped += 1
        self.messages.append(str(error))
        logger.warning("skipped invalid record: %s", error)


def handle_invalid(error: DataFormatError, skip_invalid: bool, report: ReadReport) -> None:
    """Raise ``error``, or count and log it when skipping is allowed."""
    if not skip_invalid:
        raise error
    report.skip(error)


class IndexedReader(Protocol):
    """A reader with ``len`` and ``reader[i] -> ase.Atoms``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ase.Atoms: ...


def iter_indexed(reader: IndexedReader, skip_invalid: bool, report: ReadReport
                 ) -> Iterator[ase.Atoms]:
    """Yield ``reader[0..len-1]``; invalid records raise or are counted in ``report``."""
    for index in range(len(reader)):
        try:
            atoms = reader[index]
        except DataFormatError as err:
            handle_invalid(err, skip_invalid, report)
            continue
        report.read += 1
        yield atoms
