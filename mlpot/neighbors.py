"""Neighbour lists on top of `vesin` (CPU) and `vesin-torch` (GPU).

A full list is built: every pair appears as ``(i, j)`` and ``(j, i)``. The edge
vector of pair ``(i, j)`` is ``positions[j] - positions[i] + shifts``, where
``shifts = S @ cell`` with integer image offsets ``S``. Non-periodic directions
never produce images; cells narrower than the cutoff produce as many images as
needed; isolated atoms produce no edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import vesin
import vesin.torch

from mlpot.graph import AtomicGraph


@dataclass(frozen=True)
class NeighborList:
    """Pairs of one system.

    Attributes:
        i: ``[E]`` int64 centre atom indices.
        j: ``[E]`` int64 neighbour atom indices.
        cell_shifts: ``[E, 3]`` int64 lattice-image offsets ``S`` of atom ``j``.
    """

    i: torch.Tensor
    j: torch.Tensor
    cell_shifts: torch.Tensor


def system_neighbors(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, cutoff: float
) -> NeighborList:
    """Full neighbour list of one system.

    Args:
        positions: ``[n, 3]`` Å.
        cell: ``[3, 3]`` lattice vectors as rows, Å.
        pbc: ``[3]`` bool.
        cutoff: pair cutoff, Å (pairs with ``d < cutoff``).
    """
    if cutoff <= 0:
        raise ValueError(f"neighbour-list cutoff must be positive, got {cutoff}")
    device = positions.device
    periodic = pbc.detach().cpu().numpy().astype(bool)
    box = _complete_box(cell.detach().double().cpu(), periodic,
                        positions.detach().double().cpu())
    if positions.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return NeighborList(empty, empty, torch.zeros(0, 3, dtype=torch.int64, device=device))
    calc_kwargs = {"cutoff": float(cutoff), "full_list": True}
    if device.type == "cpu":
        nl = vesin.NeighborList(**calc_kwargs)
        i, j, S = nl.compute(
            positions.detach().double().numpy(), box.numpy(), periodic.tolist(),
            quantities="ijS", copy=True)
        # vesin returns uint64 indices < 2**63: reinterpret them without a copy
        return NeighborList(
            torch.from_numpy(i.view(np.int64)), torch.from_numpy(j.view(np.int64)),
            torch.from_numpy(S.astype(np.int64)))
    nl = vesin.torch.NeighborList(**calc_kwargs)
    i, j, S = nl.compute(positions.detach(), box.to(device=device, dtype=positions.dtype),
                         torch.as_tensor(periodic, device=device), quantities="ijS")
    return NeighborList(i.long(), j.long(), S.long())


def _complete_box(cell: torch.Tensor, periodic: np.ndarray, positions: torch.Tensor
                  ) -> torch.Tensor:
    """A non-singular box for vesin whose periodic rows are the cell's.

    Periodic rows must be linearly independent. Non-periodic directions never
    produce images, so when they make the box singular (e.g. zero vectors) they
    are replaced by an orthonormal complement scaled beyond the atoms' extent.
    """
    rows = cell[torch.as_tensor(periodic)]
    if rows.shape[0] and torch.linalg.matrix_rank(rows, atol=1e-8) < rows.shape[0]:
        raise ValueError("cell is singular along its periodic directions "
                         f"(pbc={periodic.tolist()}, cell={cell.tolist()})")
    if not periodic.any():
        return torch.zeros(3, 3, dtype=torch.float64)
    if abs(float(torch.linalg.det(cell))) > 1e-8:
        return cell
    extent = float((positions.max(0).values - positions.min(0).values).norm()) + 1.0 \
        if positions.shape[0] else 1.0
    box = cell.clone()
    basis = rows
    for d in np.flatnonzero(~periodic):
        # orthonormal complement of the rows fixed so far (full SVD's null space)
        _, _, vh = torch.linalg.svd(basis, full_matrices=True)
        box[d] = vh[-1] * extent * 10.0
        basis = torch.cat([basis, box[d:d + 1]])
    return box


@dataclass(frozen=True)
class BatchPairs:
    """Pairs of a whole batch, system after system.

    Attributes:
        edge_index: ``[2, E]`` int64 batch atom indices.
        cell_shifts: ``[E, 3]`` integer image offsets ``S`` (in the graph's float dtype).
        counts: number of pairs of each system (they are contiguous, in system order).
    """

    edge_index: torch.Tensor
    cell_shifts: torch.Tensor
    counts: list[int]

    def cartesian_shifts(self, cell: torch.Tensor) -> torch.Tensor:
        """``[E, 3]`` shifts ``S @ cell`` (Å) of every pair for ``cell [B, 3, 3]``."""
        if len(self.counts) == 1:
            return self.cell_shifts @ cell[0]
        parts = self.cell_shifts.split(self.counts)
        return torch.cat([s @ c for s, c in zip(parts, cell, strict=True)])


def batch_pairs(graph: AtomicGraph, cutoff: float) -> BatchPairs:
    """Full neighbour lists of every system of ``graph`` (one vesin call per system),
    offset into the batch."""
    counts = graph.atoms_per_system.tolist()
    starts = np.cumsum([0, *counts[:-1]])
    edges, shifts = [], []
    for b, (start, count) in enumerate(zip(starts, counts, strict=True)):
        pos = graph.positions[start:start + count]
        nl = system_neighbors(pos, graph.cell[b], graph.pbc[b], cutoff)
        pair = torch.stack([nl.i, nl.j])
        edges.append(pair.add_(int(start)) if start else pair)
        shifts.append(nl.cell_shifts.to(graph.dtype))
    if not edges:
        edge_index = torch.zeros(2, 0, dtype=torch.int64)
        cell_shifts = torch.zeros(0, 3, dtype=graph.dtype)
    else:  # a single system (the common MD case) needs no concatenation copy
        edge_index = edges[0] if len(edges) == 1 else torch.cat(edges, dim=1)
        cell_shifts = shifts[0] if len(shifts) == 1 else torch.cat(shifts)
    return BatchPairs(edge_index.to(graph.device), cell_shifts.to(graph.device),
                      [e.shape[1] for e in edges])


def with_neighbors(graph: AtomicGraph, cutoff: float) -> AtomicGraph:
    """Return ``graph`` with ``edge_index [2, E]`` and cartesian ``shifts [E, 3]`` filled."""
    pairs = batch_pairs(graph, cutoff)
    return graph.replace(edge_index=pairs.edge_index,
                         shifts=pairs.cartesian_shifts(graph.cell.detach()))
