"""OMol25 reader: a file or directory tree of ``.aselmdb`` shards, random access by index.

Each shard is opened through ASE's database layer with the ``ase-db-backends``
LMDB backend, read-only and without a lock file (``readonly=True``), lazily and
once per process (so DataLoader workers each get their own LMDB environment).
Global index ``i`` maps to shard ``k`` and local row ``i - cum[k]`` through
cumulative shard lengths. Rows hold ``numbers``, ``positions``, ``energy`` (eV),
``forces`` (eV/Å), a zero cell, ``pbc`` False and ``data`` with ``charge`` (e),
``spin`` (multiplicity 2S+1), ``data_id`` and other metadata; scalar ``data``
entries go to ``atoms.info`` and a present charge/spin is never defaulted away.
"""

from __future__ import annotations

import contextlib
import os
import weakref
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ase
import ase.db
import lmdb
import numpy as np

from mlpot.datasets.errors import DataFormatError, ReadReport, handle_invalid, iter_indexed
from mlpot.datasets.records import make_atoms

SUFFIX = ".aselmdb"


def find_shards(path: str | Path) -> list[Path]:
    """The ``.aselmdb`` file itself, or all under a directory tree, sorted by path."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    shards = sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
    if not shards:
        raise DataFormatError(path, None, f"no {SUFFIX} files under this directory")
    return shards


# LMDB allows one environment per file per process, so readers in one process
# share open shards. Weak values: a shard closes when no reader holds it.
_OPEN_SHARDS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def open_shard(path: str | Path) -> Any:
    """Open one shard read-only through ase-db-backends (no lock file, no write map).

    Returns the already open database when this process has one for ``path``.
    """
    pid = os.getpid()
    for stale in [k for k in list(_OPEN_SHARDS.keys()) if k[1] != pid]:
        db = _OPEN_SHARDS.pop(stale, None)
        if db is not None:
            release_inherited(db)
    key = (str(Path(path).resolve()), pid)
    db = _OPEN_SHARDS.get(key)
    if db is not None:
        return db
    try:
        # Probe first: a failed LMDBDatabase construction raises again in its __del__.
        lmdb.open(str(path), subdir=False, readonly=True, lock=False).close()
        db = ase.db.connect(str(path), type="aselmdb", readonly=True, use_lock_file=False,
                            readahead=False)
    except (lmdb.Error, zlib.error, ValueError, OSError) as exc:
        raise DataFormatError(path, None, f"cannot open as an aselmdb (LMDB) file: {exc}"
                              ) from None
    if not db.deleted_ids:
        # Ids are 1..N without gaps: a range indexes them in O(1) memory.
        db.ids = range(1, len(db.ids) + 1)
    _OPEN_SHARDS[key] = db
    return db


def release_inherited(db: Any) -> None:
    """Close, in a forked child, a shard the parent process opened.

    LMDB allows one environment per file per process and py-lmdb's guard is
    inherited on fork, so a worker must close its copy of the parent's
    environment (read-only, no locks: the parent is unaffected) before opening
    its own. The database object is marked as this process's so the backend
    does not try to reopen it when it is garbage-collected.
    """
    env = db.__dict__.get("_env")
    if env is not None:
        with contextlib.suppress(lmdb.Error):
            env.close()
    db._env_pid = os.getpid()


class OMol25Reader:
    """Random access to the rows of one or many ``.aselmdb`` shards.

    Args:
        path: an ``.aselmdb`` file or a directory searched recursively.
        require: labels every row must have.
        data_keys: extra non-scalar ``row.data`` keys to copy into ``atoms.info``.
        skip_invalid: during iteration, skip (count, log) unreadable rows and shards.
    """

    def __init__(self, path: str | Path, require: Sequence[str] = ("energy", "forces"),
                 data_keys: Sequence[str] = (), skip_invalid: bool = False,
                 report: ReadReport | None = None) -> None:
        self.path = Path(path)
        self.require = tuple(require)
        self.data_keys = tuple(data_keys)
        self.skip_invalid = skip_invalid
        self.report = report if report is not None else ReadReport()
        self.shards: list[Path] = []
        lengths = []
        for shard in find_shards(path):
            try:
                db = open_shard(shard)
            except DataFormatError as err:
                handle_invalid(err, skip_invalid, self.report)
                continue
            self.shards.append(shard)
            lengths.append(len(db))
        self.cumulative = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        self.natoms = _load_natoms(self.path, int(self.cumulative[-1]))
        self._dbs: dict[int, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.cumulative[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global index → (shard number, 0-based row position inside the shard)."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} structures in {self.path}")
        shard = int(np.searchsorted(self.cumulative, index, side="right") - 1)
        return shard, int(index - self.cumulative[shard])

    def __getitem__(self, index: int) -> ase.Atoms:
        shard, local = self.locate(index)
        db = self._shard(shard)
        path = self.shards[shard]
        try:
            row = db._get_row_by_index(local)  # the backend's by-position access
        except (KeyError, zlib.error, ValueError, lmdb.Error) as exc:
            raise DataFormatError(path, f"row {local + 1}", f"unreadable row ({exc})") from None
        return row_to_atoms(row, path, self.require, self.data_keys)

    def __iter__(self) -> Iterator[ase.Atoms]:
        return iter_indexed(self, self.skip_invalid, self.report)

    def num_atoms(self, index: int) -> int:
        """Atoms in structure ``index`` (from ``metadata.npz`` when present, else the row)."""
        if self.natoms is not None:
            shard, local = self.locate(index)
            return int(self.natoms[self.cumulative[shard] + local])
        return len(self[index])

    def _shard(self, k: int) -> Any:
        if self._pid != os.getpid():  # forked worker: never reuse the parent's environments
            for db in self._dbs.values():
                release_inherited(db)
            self._dbs, self._pid = {}, os.getpid()
        db = self._dbs.get(k)
        if db is None:
            db = self._dbs[k] = open_shard(self.shards[k])
        return db

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_dbs"] = {}
        return state


def row_to_atoms(row: Any, path: str | Path, require: Sequence[str] = ("energy", "forces"),
                 data_keys: Sequence[str] = ()) -> ase.Atoms:
    """One ASE db row in OMol25's layout → labelled ``ase.Atoms``.

    ``row.data`` scalars (``charge``, ``spin``, ``data_id``, ``source``, ...) and the
    row's key-value pairs go to ``atoms.info``; ``charge``/``spin`` become ints.
    """
    record = f"row {row.id}"
    data = dict(row.data)
    info: dict[str, Any] = {k: v for k, v in row.key_value_pairs.items()
                            if _is_scalar(v)}
    info.update({k: v for k, v in data.items() if _is_scalar(v)})
    info.update({k: data[k] for k in data_keys if k in data})
    for key in ("charge", "spin"):
        if key in info:
            value = float(info[key])
            if value != int(value):
                raise DataFormatError(path, record, f"{key} is not an integer: {info[key]}")
            info[key] = int(value)
    cell = row.get("cell")
    return make_atoms(str(path), record, np.asarray(row.numbers), row.positions,
                      cell=cell, pbc=row.get("pbc", False), energy=row.get("energy"),
                      forces=row.get("forces"), stress=row.get("stress"), info=info,
                      require=require)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, np.integer, np.floating))


def _load_natoms(path: Path, total: int) -> np.ndarray | None:
    """``natoms`` from a ``metadata.npz`` beside the shards, if it matches the row count."""
    meta = (path if path.is_dir() else path.parent) / "metadata.npz"
    if not meta.is_file():
        return None
    with np.load(meta) as npz:
        natoms = np.asarray(npz["natoms"]) if "natoms" in npz.files else None
    return natoms if natoms is not None and len(natoms) == total else None
