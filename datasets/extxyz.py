"""extxyz with a frame index (random access, per-frame errors) and anything else ase.io reads.

:class:`ExtxyzReader` scans the file once for the byte offset of every frame
(the atom-count lines), so frame ``i`` is parsed on its own: random access is
O(1) after the scan and one bad frame does not hide the others. Each frame is
parsed by ``ase.io`` (format ``extxyz``), so labels, ``info`` and per-atom
arrays follow ASE's extxyz conventions exactly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import ase
import ase.io
import numpy as np

from mlpot.datasets.errors import DataFormatError, ReadReport, handle_invalid, iter_indexed
from mlpot.datasets.records import validate_atoms


def _scan_offsets(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte offsets, first line numbers and atom counts of the frames in an (ext)xyz file."""
    offsets, lines, counts = [], [], []
    line_no = 0
    with open(path, "rb") as fh:
        while True:
            pos = fh.tell()
            header = fh.readline()
            if not header:
                break
            line_no += 1
            if not header.strip():
                continue  # blank lines between frames
            try:
                natoms = int(header.split()[0])
            except ValueError:
                raise DataFormatError(path, f"line {line_no}",
                                      f"expected an atom count, got {header[:60]!r}") from None
            offsets.append(pos)
            lines.append(line_no)
            counts.append(natoms)
            for _ in range(natoms + 1):
                if not fh.readline():
                    raise DataFormatError(path, f"frame {len(offsets) - 1} (line {line_no})",
                                          f"file ends inside a frame of {natoms} atoms")
                line_no += 1
    return (np.asarray(offsets, dtype=np.int64), np.asarray(lines, dtype=np.int64),
            np.asarray(counts, dtype=np.int64))


class ExtxyzReader:
    """Random access to the frames of an extxyz file.

    Args:
        path: the file.
        require: labels every frame must have (e.g. ``("energy", "forces")``).
        skip_invalid: during iteration, skip (count, log) bad frames.
    """

    def __init__(self, path: str | Path, require: Sequence[str] = (),
                 skip_invalid: bool = False, report: ReadReport | None = None) -> None:
        self.path = Path(path)
        self.require = tuple(require)
        self.skip_invalid = skip_invalid
        self.report = report if report is not None else ReadReport()
        self.offsets, self.lines, self.counts = _scan_offsets(self.path)

    def __len__(self) -> int:
        return len(self.offsets)

    def num_atoms(self, index: int) -> int:
        return int(self.counts[index])

    def __getitem__(self, index: int) -> ase.Atoms:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} frames in {self.path}")
        record = f"frame {index} (line {self.lines[index]})"
        with open(self.path, "rb") as fh:
            fh.seek(self.offsets[index])
            text = b"".join(fh.readline() for _ in range(self.counts[index] + 2))
        try:
            # no index: ase returns the single frame as one Atoms
            atoms = cast(ase.Atoms, ase.io.read(io.StringIO(text.decode()), format="extxyz"))
        except Exception as exc:  # ase raises many types for malformed frames
            raise DataFormatError(self.path, record, f"cannot parse frame ({exc!r})") from None
        return validate_atoms(atoms, str(self.path), record, self.require)

    def __iter__(self) -> Iterator[ase.Atoms]:
        return iter_indexed(self, self.skip_invalid, self.report)


def iter_ase(path: str | Path, format: str | None = None, require: Sequence[str] = (),
             skip_invalid: bool = False, report: ReadReport | None = None,
             ) -> Iterator[ase.Atoms]:
    """Every frame ase.io can read from ``path`` (checked; errors name the frame).

    A parse error inside ase stops the file (ase's readers cannot resume after
    one); with ``skip_invalid`` it is logged and counted, otherwise raised.
    """
    report = report if report is not None else ReadReport()
    frames = ase.io.iread(str(path), index=":", format=format)
    index = 0
    while True:
        record = f"frame {index}"
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except Exception as exc:  # ase raises many types for malformed files
            handle_invalid(DataFormatError(path, record, f"cannot parse ({exc!r}); "
                                           f"stopped reading this file"), skip_invalid, report)
            return
        index += 1
        try:
            validate_atoms(atoms, str(path), record, require)
        except DataFormatError as err:
            handle_invalid(err, skip_invalid, report)
            continue
        report.read += 1
        yield atoms
