"""Training data: random-access sources, per-structure tables, splits, E0 and statistics.

Every input is opened as a random-access reader (packed store, OMol25 shards, extxyz);
MPTrj JSON, which can only be streamed, is packed once into a store in the cache
folder (streaming, never loaded whole). Structures are read one at a time by the
DataLoader (workers open their own file handles), so a data set larger than memory
trains. Only small per-structure arrays (atom counts, groups) are held in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ase
import numpy as np
import torch
from torch.utils.data import Dataset

from mlpot.datasets import PackedStore, convert, detect_format, open_reader
from mlpot.datasets.records import atoms_labels
from mlpot.graph import AtomicGraph
from mlpot.neighbors import with_neighbors

if TYPE_CHECKING:
    from mlpot.models import Potential

_GROUP_KEYS = ("group", "mp_id", "molecule_id", "source")
_SAMPLE = 500  # structures read to estimate force scale and neighbour counts


def cached_store_path(path: Path, cache_dir: Path, energy_key: str | None) -> Path:
    """Where a streamed file is packed: named by its path, size, mtime and energy key."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{energy_key}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return cache_dir / f"{path.stem}-{digest}.h5"


def prepare_inputs(
    paths: Sequence[Path], format: str | None, energy_key: str | None, cache_dir: Path
) -> list[Path]:
    """Pack streamed inputs (MPTrj JSON) into stores; returns random-access paths.

    Call on one process only (rank 0); the store is written atomically, so a
    crash never leaves a complete-looking cache.
    """
    out = []
    for path in paths:
        fmt = format or detect_format(path)
        if fmt == "mptrj":
            target = cached_store_path(path, cache_dir, energy_key)
            if not target.exists():
                cache_dir.mkdir(parents=True, exist_ok=True)
                options = {"energy_key": energy_key} if energy_key else {}
                convert([path], target, format="mptrj", **options)  # type: ignore[arg-type]  # options holds only energy_key
            out.append(target)
        else:
            out.append(path)
    return out


class ConcatSource:
    """Several random-access readers seen as one (global index → reader, local index)."""

    def __init__(self, paths: Sequence[Path], format: str | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.readers = []
        for p in self.paths:
            fmt = "store" if p.suffix == ".h5" else (format or detect_format(p))
            self.readers.append(open_reader(p, fmt))
        self.cumulative = np.concatenate(
            [[0], np.cumsum([len(r) for r in self.readers], dtype=np.int64)]
        )

    def __len__(self) -> int:
        return int(self.cumulative[-1])

    def locate(self, index: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.cumulative, index, side="right") - 1)
        return k, int(index - self.cumulative[k])

    def __getitem__(self, index: int) -> ase.Atoms:
        k, local = self.locate(int(index))
        return self.readers[k][local]

    def num_atoms(self) -> np.ndarray:
        """``[B]`` atom count of every structure (store/metadata fast paths)."""
        parts = []
        for r in self.readers:
            if isinstance(r, PackedStore):
                parts.append(r.atoms_per_structure)
            else:
                parts.append(np.array([r.num_atoms(i) for i in range(len(r))], dtype=np.int64))
        return np.concatenate(parts).astype(np.int64)

    def groups(self) -> np.ndarray:
        """``[B]`` split group of every structure (``group``/``mp_id``/... info), as str."""
        parts = []
        for k, r in enumerate(self.readers):
            if isinstance(r, PackedStore):
                names = r.read_array("group").astype(str)
            else:
                names = np.array([_group(r[i]) for i in range(len(r))], dtype=object)
            parts.append(np.array([f"{k}:{g}" if g else "" for g in names], dtype=object))
        return np.concatenate(parts)

    def species(self) -> list[int]:
        """Sorted atomic numbers present."""
        found: set[int] = set()
        for r in self.readers:
            if isinstance(r, PackedStore):
                found |= {int(z) for z in np.unique(r.read_array("atomic_numbers"))}
            else:
                for i in range(len(r)):
                    found |= {int(z) for z in np.unique(r[i].numbers)}
        return sorted(found)

    def normal_equations(
        self, indices: np.ndarray, columns: Sequence[ReferenceColumn]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """AᵀA, Aᵀy of the reference least-squares problem over ``indices`` (streamed).

        A is ``[B, C]``: the count of each element, then 1 where the structure has the
        charge / multiplicity of a charge or spin column (:class:`ReferenceColumn`);
        y the total energies. Structures without an energy are skipped. Returns
        (AᵀA ``[C, C]``, Aᵀy ``[C]``, structures used).
        """
        design = _Design(columns)
        ata, aty, used = np.zeros((len(columns),) * 2), np.zeros(len(columns)), 0
        for block in np.array_split(np.sort(indices), max(1, len(indices) // 4096)):
            rows, energy = self._design_rows(block, design)
            keep = np.isfinite(energy)
            rows, energy = rows[keep], energy[keep]
            ata += rows.T @ rows
            aty += rows.T @ energy
            used += int(keep.sum())
        return ata, aty, used

    def _design_rows(self, block: np.ndarray, design: _Design) -> tuple[np.ndarray, np.ndarray]:
        rows, energy = np.zeros((len(block), design.size)), np.full(len(block), np.nan)
        for row, index in enumerate(block):
            k, local = self.locate(int(index))
            r = self.readers[k]
            if isinstance(r, PackedStore):
                rec = r.record(local)
                numbers, e = rec.atomic_numbers.astype(np.int64), float(rec.energy)
                charge, spin = int(rec.charge), int(rec.spin) or 1  # spin 0: not given
            else:
                atoms = r[local]
                numbers = atoms.numbers
                e = atoms_labels(atoms)["energy"]  # type: ignore[assignment]  # energy label is a float or None
                e = np.nan if e is None else float(e)
                charge = int(atoms.info.get("charge", 0))
                spin = int(atoms.info.get("spin", 1))
            rows[row] = design.row(int(index), numbers, charge, spin)
            energy[row] = e
        return rows, energy


@dataclass(frozen=True)
class ReferenceColumn:
    """One unknown of the reference-energy fit.

    Attributes:
        kind: ``"element"`` (E0 of atomic number ``value``), ``"charge"`` (e_Q of total
            charge ``value``, e) or ``"spin"`` (e_S of multiplicity ``value`` = 2S+1).
    """

    kind: Literal["element", "charge", "spin"]
    value: int


def reference_columns(model: Potential) -> list[ReferenceColumn]:
    """The unknowns of ``model``'s reference fit: E0 of each element, then (with
    :class:`~mlpot.models.references.SystemReferences`) every non-zero charge and
    every multiplicity above 1 in its range (those absent from the data come out 0)."""
    columns = [ReferenceColumn("element", int(z)) for z in model.species_numbers]
    if model.system_references is not None:
        charge, spin = model.system_references.values()
        columns += [ReferenceColumn("charge", q) for q in charge]
        columns += [ReferenceColumn("spin", s) for s in spin]
    return columns


class _Design:
    """Maps a structure to its row of the design matrix A."""

    def __init__(self, columns: Sequence[ReferenceColumn]) -> None:
        self.size = len(columns)
        self.element = np.full(256, -1, dtype=np.int64)
        self.charge: dict[int, int] = {}
        self.spin: dict[int, int] = {}
        for k, c in enumerate(columns):
            if c.kind == "element":
                self.element[c.value] = k
            else:
                (self.charge if c.kind == "charge" else self.spin)[c.value] = k
        self.references = bool(self.charge or self.spin)
        self.max_charge = max((abs(q) for q in self.charge), default=0)
        self.max_spin = max(self.spin, default=1)

    def row(self, index: int, numbers: np.ndarray, charge: int, spin: int) -> np.ndarray:
        out = np.zeros(self.size)
        cols = self.element[np.asarray(numbers, dtype=np.int64)]
        if (cols < 0).any():
            raise ValueError(
                f"structure {index}: element Z={int(numbers[cols < 0][0])} is not among the "
                "model's species"
            )
        np.add.at(out, cols, 1.0)
        if self.references:
            if abs(charge) > self.max_charge or not 1 <= spin <= self.max_spin:
                raise ValueError(
                    f"structure {index}: charge {charge} / spin multiplicity {spin} outside "
                    f"the model's range (|charge| <= {self.max_charge}, "
                    f"1 <= spin <= {self.max_spin})"
                )
            if charge:
                out[self.charge[charge]] = 1.0
            if spin > 1:
                out[self.spin[spin]] = 1.0
        return out


def _group(atoms: ase.Atoms) -> str:
    return next((str(atoms.info[k]) for k in _GROUP_KEYS if k in atoms.info), "")


class GraphDataset(Dataset):
    """Structures of a :class:`ConcatSource` as one-system graphs with neighbours.

    Missing labels become NaN (energy ``[1]``, forces ``[n, 3]``, stress ``[1, 3, 3]``)
    so that batches of mixed label sets collate and the loss masks them.
    """

    def __init__(
        self, source: ConcatSource, indices: np.ndarray, cutoff: float, dtype: torch.dtype
    ) -> None:
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
        self.cutoff, self.dtype = cutoff, dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> AtomicGraph:
        """``item`` is a global structure index (the batch sampler hands those out)."""
        atoms = self.source[int(item)]
        graph = AtomicGraph.from_atoms(atoms, dtype=self.dtype)
        n = graph.num_atoms
        nan = float("nan")
        fill = {}
        if graph.energy is None:
            fill["energy"] = torch.full((1,), nan, dtype=self.dtype)
        if graph.forces is None:
            fill["forces"] = torch.full((n, 3), nan, dtype=self.dtype)
        if graph.stress is None:
            fill["stress"] = torch.full((1, 3, 3), nan, dtype=self.dtype)
        if fill:
            graph = graph.replace(**fill)
        return with_neighbors(graph, self.cutoff)


@dataclass(frozen=True)
class DataStatistics:
    """Quantities measured on a sample of training structures.

    Attributes:
        force_rms: RMS force component, eV/Å (the model's energy scale).
        avg_neighbors: mean neighbours per atom within the cutoff.
        structures: structures in the sample.
    """

    force_rms: float
    avg_neighbors: float
    structures: int


def sample_statistics(dataset: GraphDataset, seed: int) -> DataStatistics:
    """Force RMS and neighbour count over up to 500 training structures."""
    rng = np.random.default_rng(seed)
    pick = dataset.indices
    if len(pick) > _SAMPLE:
        pick = rng.choice(pick, size=_SAMPLE, replace=False)
    sq, comps, edges, atoms = 0.0, 0, 0, 0
    for index in pick:
        g = dataset[int(index)]
        f = g.forces[torch.isfinite(g.forces)]  # type: ignore[arg-type,index]  # labels are present (NaN where missing) in the packed store
        sq += float((f.double() ** 2).sum())
        comps += f.numel()
        edges += g.edge_index.shape[1]  # type: ignore[union-attr]  # the dataset builds neighbour lists
        atoms += g.num_atoms
    rms = (sq / comps) ** 0.5 if comps else 1.0
    return DataStatistics(
        force_rms=rms if rms > 0 else 1.0,
        avg_neighbors=max(edges / max(atoms, 1), 1.0),
        structures=len(pick),
    )


def solve_references(
    ata: np.ndarray,
    aty: np.ndarray,
    fixed: dict[ReferenceColumn, float],
    columns: Sequence[ReferenceColumn],
) -> dict[ReferenceColumn, float]:
    """Least-squares reference energies (eV) from normal equations, the ``fixed``
    columns held at their values.

    A column absent from the data (a charge state no structure has) gets exactly 0;
    minimum-norm solution (pseudo-inverse) when the others are linearly dependent (one
    fixed stoichiometry).
    """
    columns = list(columns)
    free = [k for k, c in enumerate(columns) if c not in fixed and ata[k, k] > 0]
    values = np.array([fixed.get(c, 0.0) for c in columns], dtype=float)
    if free:
        rhs = aty[free] - ata[np.ix_(free, range(len(columns)))] @ values
        values[free] = np.linalg.pinv(ata[np.ix_(free, free)]) @ rhs
    return {c: float(v) for c, v in zip(columns, values, strict=True)}


def describe(source: Any) -> str:
    return ", ".join(str(p) for p in getattr(source, "paths", []))
