"""StructureDataset: AtomicGraph items, DataLoader with worker processes."""

from __future__ import annotations

import numpy as np
import torch
from format_writers import write_omol25_shard
from test_store import labelled_structures
from torch.utils.data import DataLoader

import mlpot
from mlpot.datasets import PackedStore, StructureDataset, write_store


def _loader_matches(dataset, reference, workers):
    loader = DataLoader(dataset, batch_size=3, shuffle=False, num_workers=workers,
                        collate_fn=mlpot.collate)
    batches = list(loader)
    assert sum(b.num_systems for b in batches) == len(reference)
    got = mlpot.collate(batches)
    want = mlpot.AtomicGraph.from_atoms(reference, dtype=torch.float64)
    for name in ("positions", "atomic_numbers", "system_index", "cell", "pbc", "charge",
                 "spin", "energy", "forces"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name


def test_store_dataset_with_two_workers(tmp_path, rng):
    structures = labelled_structures(rng, 10)
    for a in structures:
        a.calc.results.pop("stress", None)
    write_store(tmp_path / "s.h5", structures)
    store = PackedStore(tmp_path / "s.h5")
    store[0]  # the parent has the file open: workers must open their own
    dataset = StructureDataset(store, dtype=torch.float64)
    _loader_matches(dataset, structures, workers=2)
    _loader_matches(dataset, structures, workers=0)


def test_omol25_dataset_with_two_workers(tmp_path, rng):
    (tmp_path / "a").mkdir()
    write_omol25_shard(tmp_path / "a" / "x.aselmdb", rng, 4)
    write_omol25_shard(tmp_path / "y.aselmdb", rng, 3)
    dataset = StructureDataset.from_path(tmp_path, dtype=torch.float64)
    reference = [dataset.atoms(i) for i in range(len(dataset))]
    _loader_matches(dataset, reference, workers=2)
    graph = dataset[0]
    assert graph.charge.item() == reference[0].info["charge"]
    assert graph.spin.item() == reference[0].info["spin"]


def test_subset_and_list_source(rng):
    structures = labelled_structures(rng, 6)
    dataset = StructureDataset(structures, dtype=torch.float64).subset([4, 1])
    assert len(dataset) == 2
    np.testing.assert_array_equal(dataset[0].positions.numpy(), structures[4].positions)
