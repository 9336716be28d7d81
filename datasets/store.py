"""Packed HDF5 store: concatenated per-atom arrays + per-structure arrays + offsets.

Layout (format ``mlpot-packed``, :data:`VERSION`), for ``B`` structures and ``N`` atoms:

====================  ===========  ============================================
dataset               shape        meaning
====================  ===========  ============================================
``offsets``           [B+1] int64  atoms of structure ``b``: ``offsets[b]:offsets[b+1]``
``atomic_numbers``    [N] uint8
``positions``         [N, 3] f8    Å
``forces``            [N, 3] f8    eV/Å (NaN rows: structure has no forces)
``velocities``        [N, 3] f8    Å/fs, only when some structure had velocities
``magmoms``           [N] f8       μB, only when some structure had them
``energy``            [B] f8       eV (NaN: no energy)
``stress``            [B, 6] f8    ASE Voigt order and sign, eV/Å³ (NaN: no stress)
``cell``              [B, 3, 3]    rows, Å
``pbc``               [B, 3] uint8 periodic directions (0/1)
``charge``            [B] int32    e
``spin``              [B] int32    multiplicity 2S+1 (0: not given)
``group``             [B] int64    index into ``group_names``
``data_id``           [B] int64    index into ``data_id_names``
``group_names``       [G] str      split groups (mp_id, molecule id, ...)
``data_id_names``     [D] str      subset / source labels
====================  ===========  ============================================

Reading structure ``b`` is O(1): one slice per dataset. Files are written to a
temporary name and renamed when complete, so a crash never leaves a complete-
looking store. Appending happens in place: the file's ``state`` attribute is
``"appending"`` until the new rows are committed (``num_structures`` is the
committed count); readers refuse such a file, and the next append truncates
back to the committed rows first. Readers open the file lazily in each
process, so DataLoader workers never share an HDF5 handle.

Chunks of 1,024 atoms / 256 structures without compression were chosen by
measurement (20,000 MPTrj-like structures, 25 atoms on average, random order,
one core): 4,096/1,024 and 1,024/256 chunks read at the same rate (14.0k and
14.4k records/s), 512/128 and smaller were slower (12.3k, 11.4k, 7.2k for
128/32); gzip shrank the file by 14% but halved random reads, lzf cost ~20%
(``python -m benchmarks data``). The smaller of the two equal chunks reads less per
random access when the file is not in the page cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ase
import ase.units
import h5py
import numpy as np

from mlpot.datasets.errors import DataFormatError
from mlpot.datasets.records import atoms_labels, make_atoms

FORMAT = "mlpot-packed"
VERSION = 1
ATOM_CHUNK = 1024
STRUCT_CHUNK = 256
_STR = h5py.string_dtype()
_Field = tuple[str, type, tuple[int, ...]]
#: (name, dtype, trailing shape) of the per-atom datasets.
_ATOM_FIELDS: tuple[_Field, ...] = (
    ("atomic_numbers", np.uint8, ()), ("positions", np.float64, (3,)), ("forces", np.float64, (3,)))
_OPTIONAL_ATOM_FIELDS = (("velocities", np.float64, (3,)), ("magmoms", np.float64, ()))
_STRUCT_FIELDS: tuple[_Field, ...] = (("energy", np.float64, ()), ("stress", np.float64, (6,)),
                  ("cell", np.float64, (3, 3)), ("pbc", np.uint8, (3,)),
                  ("charge", np.int32, ()), ("spin", np.int32, ()),
                  ("group", np.int64, ()), ("data_id", np.int64, ()))
_TABLES = {"group": "group_names", "data_id": "data_id_names"}
_GROUP_KEYS = ("group", "mp_id", "molecule_id")
_ASE_PER_FS = 1.0 / ase.units.fs


@dataclass(frozen=True)
class StoreRecord:
    """One structure's arrays as stored (NaN = label absent)."""

    atomic_numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    energy: float
    stress: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    charge: int
    spin: int
    group: str
    data_id: str
    velocities: np.ndarray | None = None
    magmoms: np.ndarray | None = None


def atoms_to_record(atoms: ase.Atoms) -> StoreRecord:
    """Flatten labelled ``Atoms`` into store arrays (missing labels → NaN)."""
    n = len(atoms)
    labels = atoms_labels(atoms)
    info = atoms.info
    group = next((str(info[k]) for k in _GROUP_KEYS if k in info), "")
    momenta = atoms.arrays.get("momenta")
    velocities = (atoms.get_velocities() / _ASE_PER_FS
                  if momenta is not None and np.any(momenta != 0) else None)
    magmoms = atoms.arrays.get("magmoms")
    return StoreRecord(
        atomic_numbers=atoms.numbers.astype(np.uint8), positions=atoms.positions,
        forces=np.full((n, 3), np.nan) if labels["forces"] is None else np.asarray(
            labels["forces"]),
        energy=np.nan if labels["energy"] is None else float(labels["energy"]),
        stress=np.full(6, np.nan) if labels["stress"] is None else np.asarray(
            labels["stress"]),
        cell=np.asarray(atoms.cell[:]), pbc=np.asarray(atoms.pbc, dtype=bool),
        charge=int(info.get("charge", 0)), spin=int(info.get("spin", 0)),
        group=group, data_id=str(info.get("data_id", "")), velocities=velocities,
        magmoms=None if magmoms is None else np.asarray(magmoms, dtype=float).reshape(n))


def record_to_atoms(rec: StoreRecord, path: str = "", index: int = 0) -> ase.Atoms:
    """Store arrays → labelled ``Atoms`` (inverse of :func:`atoms_to_record`)."""
    info: dict[str, Any] = {"charge": int(rec.charge)}
    if rec.spin > 0:
        info["spin"] = int(rec.spin)
    if rec.group:
        info["group"] = rec.group
    if rec.data_id:
        info["data_id"] = rec.data_id
    arrays = {}
    if rec.magmoms is not None and not np.isnan(rec.magmoms).all():
        arrays["magmoms"] = rec.magmoms
    atoms = make_atoms(
        path, f"structure {index}", rec.atomic_numbers.astype(np.int64), rec.positions,
        cell=rec.cell, pbc=rec.pbc, info=info, arrays=arrays,
        energy=None if np.isnan(rec.energy) else rec.energy,
        forces=None if np.isnan(rec.forces).any() else rec.forces,
        stress=None if np.isnan(rec.stress).any() else rec.stress)
    if rec.velocities is not None and not np.isnan(rec.velocities).any():
        atoms.set_velocities(rec.velocities * _ASE_PER_FS)
    return atoms


class PackedStoreWriter:
    """Write (``mode="w"``, via a temporary file) or append (``mode="a"``) to a store.

    Use as a context manager; rows are buffered and written in blocks. On an
    exception a new file is removed and an append leaves the committed rows only.
    """

    def __init__(self, path: str | Path, mode: str = "w", buffer_size: int = 512,
                 compression: str | None = None, atom_chunk: int = ATOM_CHUNK,
                 struct_chunk: int = STRUCT_CHUNK) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        self.path = Path(path)
        self.mode = mode if (mode == "w" or self.path.exists()) else "w"
        self.buffer_size = buffer_size
        self.layout = _Layout(compression, atom_chunk, struct_chunk)
        self._buffer: list[StoreRecord] = []
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._file: h5py.File | None = None
        self._tables: dict[str, dict[str, int]] = {}
        self.written = 0

    def __enter__(self) -> PackedStoreWriter:
        if self.mode == "w":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self._tmp, "w")
            _create_layout(self._file, self.layout)
        else:
            self._file = h5py.File(self.path, "r+")
            _check_header(self._file, self.path, allow_appending=True)
            _truncate_to_committed(self._file)
        self._tables = {key: {_decode(v): k for k, v in enumerate(self._file[name][:])}
                        for key, name in _TABLES.items()}
        self._file.attrs["state"] = "appending"
        self._file.flush()
        return self

    @property
    def count(self) -> int:
        """Structures added so far (written or still buffered)."""
        return self.written + len(self._buffer)

    def add(self, atoms: ase.Atoms) -> None:
        """Queue one structure."""
        self._buffer.append(atoms_to_record(atoms))
        if len(self._buffer) >= self.buffer_size:
            self._flush()

    def extend(self, structures: Iterable[ase.Atoms]) -> None:
        for atoms in structures:
            self.add(atoms)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        f = self._file
        assert f is not None
        if exc_type is not None:
            f.close()
            if self.mode == "w":
                self._tmp.unlink(missing_ok=True)
            return
        self._flush()
        f.attrs["state"] = "complete"
        f.close()
        if self.mode == "w":
            os.replace(self._tmp, self.path)

    def _flush(self) -> None:
        if not self._buffer:
            return
        f = self._file
        assert f is not None  # opened by __enter__
        recs, self._buffer = self._buffer, []
        n_old, b_old = int(f.attrs["num_atoms"]), int(f.attrs["num_structures"])
        sizes = np.array([len(r.atomic_numbers) for r in recs], dtype=np.int64)
        n_new, b_new = n_old + int(sizes.sum()), b_old + len(recs)
        for name, _, _ in _ATOM_FIELDS:
            _write(f[name], n_old, n_new, np.concatenate([getattr(r, name) for r in recs]))
        for name, dtype, shape in _OPTIONAL_ATOM_FIELDS:
            if name not in f and all(getattr(r, name) is None for r in recs):
                continue
            if name not in f:
                _create(f, name, dtype, shape, f["positions"].chunks[0],
                        f["positions"].compression, fill=n_old)
            parts = [getattr(r, name) if getattr(r, name) is not None
                     else np.full((len(r.atomic_numbers), *shape), np.nan) for r in recs]
            _write(f[name], n_old, n_new, np.concatenate(parts))
        for name, _, _ in _STRUCT_FIELDS:
            if name in _TABLES:
                values = [self._table_index(f, name, getattr(r, name)) for r in recs]
            else:
                values = [getattr(r, name) for r in recs]
            _write(f[name], b_old, b_new, np.array(values))
        _write(f["offsets"], b_old + 1, b_new + 1, n_old + np.cumsum(sizes))
        for name, _, _ in _OPTIONAL_ATOM_FIELDS:  # keep optional arrays as long as the rest
            if name in f and f[name].shape[0] < n_new:
                _write(f[name], f[name].shape[0], n_new, np.nan)
        f.flush()
        f.attrs["num_atoms"], f.attrs["num_structures"] = n_new, b_new
        f.flush()
        self.written += len(recs)


    def _table_index(self, f: h5py.File, key: str, value: str) -> int:
        """Index of ``value`` in a string table, appending it when new."""
        table = self._tables[key]
        if value not in table:
            table[value] = len(table)
            _write(f[_TABLES[key]], table[value], table[value] + 1, [value])
        return table[value]


class PackedStore:
    """Random access (O(1) per structure) to a packed HDF5 store.

    The file is opened lazily in each process; pickling drops the handle, so a
    store can be handed to DataLoader workers.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            with h5py.File(self.path, "r") as f:
                _check_header(f, self.path)
                self.num_structures = int(f.attrs["num_structures"])
                self.offsets = f["offsets"][: self.num_structures + 1].astype(np.int64)
                self.optional = tuple(n for n, _, _ in _OPTIONAL_ATOM_FIELDS if n in f)
                self.tables = {key: np.array([_decode(v) for v in f[name][:]], dtype=object)
                               for key, name in _TABLES.items()}
        except OSError as exc:
            raise DataFormatError(self.path, None, f"not a readable HDF5 file ({exc})") from None
        self._file: h5py.File | None = None
        self._handles: dict[str, h5py.Dataset] = {}
        self._pid = -1

    def __len__(self) -> int:
        return self.num_structures

    def num_atoms(self, index: int) -> int:
        return int(self.offsets[index + 1] - self.offsets[index])

    @property
    def atoms_per_structure(self) -> np.ndarray:
        """``[B]`` atom counts."""
        return np.diff(self.offsets)

    def record(self, index: int) -> StoreRecord:
        """The stored arrays of structure ``index``."""
        b = int(index) + self.num_structures if index < 0 else int(index)
        if not 0 <= b < self.num_structures:
            raise IndexError(f"index {index} out of range for {self.num_structures} "
                             f"structures in {self.path}")
        d = self._datasets()
        lo, hi = int(self.offsets[b]), int(self.offsets[b + 1])
        per_atom = {n: d[n][lo:hi] for n, _, _ in _ATOM_FIELDS}
        optional = {n: d[n][lo:hi] for n in self.optional}
        per_struct = {n: d[n][b] for n, _, _ in _STRUCT_FIELDS}
        per_struct["pbc"] = per_struct["pbc"].astype(bool)
        for key in _TABLES:
            per_struct[key] = self.tables[key][per_struct[key]]
        return StoreRecord(**per_atom, **per_struct, **optional)

    def __getitem__(self, index: int) -> ase.Atoms:
        return record_to_atoms(self.record(index), str(self.path), index)

    def __iter__(self) -> Iterator[ase.Atoms]:
        for b in range(self.num_structures):
            yield self[b]

    def read_array(self, name: str) -> np.ndarray:
        """A whole committed array: a per-atom dataset (``positions``, ...) or a
        per-structure field (``energy``, ``stress``, ``group`` as strings, ...)."""
        d = self._datasets()
        if name in (n for n, _, _ in _STRUCT_FIELDS):
            values = d[name][: self.num_structures]
            if name == "pbc":
                return values.astype(bool)
            return self.tables[name][values] if name in _TABLES else values
        if name not in d or name in _TABLES.values():
            raise KeyError(f"{self.path}: no array {name!r}")
        return d[name][: int(self.offsets[-1])]

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._handles = {name: self._file[name] for name in self._file}
        return self._file

    def _datasets(self) -> dict[str, h5py.Dataset]:
        """Dataset handles of this process's open file (looking names up costs ~0.1 ms)."""
        self._h5()
        return self._handles

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_handles"] = None, -1, {}
        return state


def write_store(path: str | Path, structures: Iterable[ase.Atoms], append: bool = False
                ) -> int:
    """Write (or append) structures to a store; returns how many were written."""
    with PackedStoreWriter(path, mode="a" if append else "w") as writer:
        writer.extend(structures)
    return writer.written


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file in this store's format."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


@dataclass(frozen=True)
class _Layout:
    """HDF5 storage choices of a new store (readers need not know them)."""

    compression: str | None = None
    atom_chunk: int = ATOM_CHUNK
    struct_chunk: int = STRUCT_CHUNK


def _create(f: h5py.File, name: str, dtype: Any, shape: tuple, chunk: int,
            compression: str | None, fill: int = 0) -> None:
    fillvalue = np.nan if np.dtype(dtype).kind == "f" else None
    f.create_dataset(name, shape=(fill, *shape), maxshape=(None, *shape), dtype=dtype,
                     chunks=(chunk, *shape), fillvalue=fillvalue, compression=compression)


def _create_layout(f: h5py.File, layout: _Layout) -> None:
    f.attrs["format"], f.attrs["version"] = FORMAT, VERSION
    f.attrs["num_structures"], f.attrs["num_atoms"] = 0, 0
    for name, dtype, shape in _ATOM_FIELDS:
        _create(f, name, dtype, shape, layout.atom_chunk, layout.compression)
    for name, dtype, shape in _STRUCT_FIELDS:
        _create(f, name, dtype, shape, layout.struct_chunk, layout.compression)
    for name in _TABLES.values():
        _create(f, name, _STR, (), layout.struct_chunk, None)
    _create(f, "offsets", np.int64, (), layout.struct_chunk, layout.compression, fill=1)
    f["offsets"][0] = 0


def _write(dset: h5py.Dataset, start: int, stop: int, values: Any) -> None:
    if dset.shape[0] < stop:
        dset.resize(stop, axis=0)
    dset[start:stop] = values


def _check_header(f: h5py.File, path: Path, allow_appending: bool = False) -> None:
    if f.attrs.get("format") != FORMAT:
        raise DataFormatError(path, None, f"not an mlpot packed store (format attribute "
                                          f"{f.attrs.get('format')!r})")
    version = int(f.attrs.get("version", -1))
    if version > VERSION:
        raise DataFormatError(path, None, f"store version {version} is newer than this "
                                          f"mlpot understands ({VERSION})")
    if f.attrs.get("state") != "complete" and not allow_appending:
        raise DataFormatError(path, None, f"store is incomplete (state "
                                          f"{f.attrs.get('state')!r}): an append was "
                                          f"interrupted; appending again repairs it")


def _truncate_to_committed(f: h5py.File) -> None:
    """Drop rows past the committed counts (left by an interrupted append)."""
    n, b = int(f.attrs["num_atoms"]), int(f.attrs["num_structures"])
    sizes = {"offsets": b + 1, **{name: b for name, _, _ in _STRUCT_FIELDS}}
    sizes.update({a: n for a, _, _ in (*_ATOM_FIELDS, *_OPTIONAL_ATOM_FIELDS)})
    for name, size in sizes.items():
        if name in f and f[name].shape[0] > size:
            f[name].resize(size, axis=0)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
