"""A torch ``Dataset`` of :class:`~mlpot.AtomicGraph` items over any random-access reader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase
import torch
from torch.utils.data import Dataset

from mlpot.graph import AtomicGraph, collate


class StructureDataset(Dataset):
    """Structures as one-system ``AtomicGraph`` items; batch with :func:`mlpot.collate`.

    Args:
        source: a random-access reader (``len`` and ``[i]`` returning ``ase.Atoms``:
            :class:`~mlpot.datasets.PackedStore`, :class:`~mlpot.datasets.OMol25Reader`,
            :class:`~mlpot.datasets.ExtxyzReader`) or a list of ``ase.Atoms``.
        dtype: floating dtype of the graphs (default: torch's default dtype).
        indices: optional subset (e.g. one split) of the source's indices.

    Readers open their files lazily per process, so the dataset works with
    ``DataLoader(num_workers>0)``; pass ``collate_fn=mlpot.collate``.
    """

    def __init__(self, source: Any, dtype: torch.dtype | None = None,
                 indices: Sequence[int] | None = None) -> None:
        self.source = source
        self.dtype = dtype or torch.get_default_dtype()
        self.indices = list(range(len(source))) if indices is None else list(indices)

    @classmethod
    def from_path(cls, path: str | Path, format: str | None = None,
                  dtype: torch.dtype | None = None, **options: Any) -> StructureDataset:
        """Dataset over a store, an OMol25 file/directory or an extxyz file."""
        from mlpot.datasets.io import open_reader

        return cls(open_reader(path, format, **options), dtype=dtype)

    def __len__(self) -> int:
        return len(self.indices)

    def atoms(self, index: int) -> ase.Atoms:
        """The ``ase.Atoms`` behind item ``index``."""
        return self.source[self.indices[index]]

    def __getitem__(self, index: int) -> AtomicGraph:
        return AtomicGraph.from_atoms(self.atoms(index), dtype=self.dtype)

    def subset(self, indices: Sequence[int]) -> StructureDataset:
        """A dataset over some of this one's items (indices into this dataset)."""
        return StructureDataset(self.source, self.dtype, [self.indices[i] for i in indices])

    @staticmethod
    def collate(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
        """``collate_fn`` for a ``DataLoader``: one batched ``AtomicGraph``."""
        return collate(graphs)
