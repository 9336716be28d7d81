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
from typing import Any

import ase
import numpy as np
import torch
from torch.utils.data import Dataset

from mlpot.datasets import PackedStore, convert, detect_format, open_reader
from mlpot.datasets.records import atoms_labels
from mlpot.graph import AtomicGraph
from mlpot.neighbors import with_neighbors

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
        self, indices: np.ndarray, species: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """AᵀA, Aᵀy of the E0 least-squares problem over ``indices`` (streamed).

        A is the ``[B, S]`` composition, y the total energies; structures without
        an energy are skipped. Returns (AᵀA ``[S, S]``, Aᵀy ``[S]``, structures used).
        """
        col = np.full(256, -1, dtype=np.int64)
        col[np.asarray(species, dtype=np.int64)] = np.arange(len(species))
        ata, aty, used = np.zeros((len(species),) * 2), np.zeros(len(species)), 0
        for block in np.array_split(np.sort(indices), max(1, len(indices) // 4096)):
            comp, energy = self._composition(block, col, len(species))
            keep = np.isfinite(energy)
            comp, energy = comp[keep], energy[keep]
            ata += comp.T @ comp
            aty += comp.T @ energy
            used += int(keep.sum())
        return ata, aty, used

    def _composition(
        self, block: np.ndarray, col: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        comp, energy = np.zeros((len(block), size)), np.full(len(block), np.nan)
        for row, index in enumerate(block):
            k, local = self.locate(int(index))
            r = self.readers[k]
            if isinstance(r, PackedStore):
                rec = r.record(local)
                numbers, e = rec.atomic_numbers.astype(np.int64), float(rec.energy)
            else:
                atoms = r[local]
                numbers = atoms.numbers
                e = atoms_labels(atoms)["energy"]  # type: ignore[assignment]  # energy label is a float or None
                e = np.nan if e is None else float(e)
            cols = col[numbers]
            if (cols < 0).any():
                raise ValueError(
                    f"structure {int(index)}: element Z="
                    f"{int(numbers[cols < 0][0])} is not among the model's "
                    f"species"
                )
            np.add.at(comp[row], cols, 1.0)
            energy[row] = e
        return comp, energy


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


def solve_e0(
    ata: np.ndarray, aty: np.ndarray, fixed: dict[int, float], species: Sequence[int]
) -> dict[int, float]:
    """Least-squares E0 from normal equations, with some elements' E0 held ``fixed``.

    Minimum-norm solution (pseudo-inverse) when compositions are linearly dependent.
    """
    species = list(species)
    free = [k for k, z in enumerate(species) if z not in fixed]
    e0 = np.array([fixed.get(z, 0.0) for z in species], dtype=float)
    if free:
        rhs = aty[free] - ata[np.ix_(free, range(len(species)))] @ e0
        e0[free] = np.linalg.pinv(ata[np.ix_(free, free)]) @ rhs
    return {int(z): float(v) for z, v in zip(species, e0, strict=True)}


def describe(source: Any) -> str:
    return ", ".join(str(p) for p in getattr(source, "paths", []))
