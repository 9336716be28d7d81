"""Batches by atom count and the loss's global normalisation."""

from __future__ import annotations

import numpy as np
import torch

from mlpot import collate
from mlpot.models.base import PotentialOutput
from mlpot.train.data import ConcatSource, GraphDataset
from mlpot.train.loss import ErrorSums, LabelCounts, loss_terms
from mlpot.train.sampler import epoch_batches


def test_epoch_batches_cover_each_index_once_and_depend_on_epoch():
    atoms = np.arange(1, 41)
    a = epoch_batches(np.arange(40), atoms, seed=0, epoch=0, max_atoms=100)
    b = epoch_batches(np.arange(40), atoms, seed=0, epoch=0, max_atoms=100)
    c = epoch_batches(np.arange(40), atoms, seed=0, epoch=1, max_atoms=100)
    assert sorted(np.concatenate(a).tolist()) == list(range(40))
    assert all(atoms[x].sum() <= 100 or len(x) == 1 for x in a)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    fixed = epoch_batches(np.arange(10), atoms, 0, 0, batch_size=4, shuffle=False)
    assert [len(x) for x in fixed] == [4, 4, 2] and fixed[0].tolist() == [0, 1, 2, 3]


def _fake_output(graph, rng):
    return PotentialOutput(
        energy=graph.energy + torch.as_tensor(rng.normal(size=graph.num_systems)),
        energies=torch.zeros(graph.num_atoms, dtype=torch.float64),
        forces=graph.forces + torch.as_tensor(rng.normal(size=(graph.num_atoms, 3))),
        stress=graph.stress + torch.as_tensor(rng.normal(size=(graph.num_systems, 3, 3))),
    )


def test_sharded_losses_sum_to_the_full_batch_loss(cu_store):
    src = ConcatSource([cu_store])
    ds = GraphDataset(src, np.arange(8), 4.0, torch.float64)
    graphs = [ds[i] for i in range(8)]
    graphs[2] = graphs[2].replace(stress=torch.full((1, 3, 3), float("nan"), dtype=torch.float64))
    rng = np.random.default_rng(0)
    outs = [_fake_output(g, rng) for g in graphs]
    w = (1.0, 2.0, 3.0)
    full_graph = collate(graphs)
    full_out = PotentialOutput(
        torch.cat([o.energy for o in outs]),
        full_graph.positions[:, 0],
        torch.cat([o.forces for o in outs]),
        torch.cat([o.stress for o in outs]),
    )
    counts = LabelCounts.of(full_graph)
    assert counts.stress == 7 * 9
    full = loss_terms(full_out, full_graph, counts, w)
    parts = []
    for lo, hi in ((0, 3), (3, 8)):
        g = collate(graphs[lo:hi])
        o = PotentialOutput(
            torch.cat([x.energy for x in outs[lo:hi]]),
            g.positions[:, 0],
            torch.cat([x.forces for x in outs[lo:hi]]),
            torch.cat([x.stress for x in outs[lo:hi]]),
        )
        parts.append(loss_terms(o, g, counts, w).total)
    torch.testing.assert_close(parts[0] + parts[1], full.total)
    # the stress term is a mean over the 63 labelled components only
    err = full_out.stress - full_graph.stress
    expected = (err[torch.isfinite(err)] ** 2).mean()
    torch.testing.assert_close(full.stress, expected)
    sums = ErrorSums.zeros()
    sums.add(full_out, full_graph, float(full.total))
    m = sums.metrics()
    n = full_graph.atoms_per_system.double()
    torch.testing.assert_close(
        torch.tensor(m["energy_mae"], dtype=torch.float64),
        ((full_out.energy - full_graph.energy) / n).abs().mean(),
    )
    torch.testing.assert_close(
        torch.tensor(m["forces_rmse"], dtype=torch.float64),
        (full_out.forces - full_graph.forces).pow(2).mean().sqrt(),
    )
