"""Padded (dense) neighbour layout and the edge → node density contraction
(pure-torch reference).

Edges are grouped by centre into a ``[N, K_max]`` slot table, so sums over the
neighbours of every atom become batched matrix products (no ``[E, M, C]`` tensor is
formed). Empty slots point at an extra zero row and carry zero edge features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NeighborSlots:
    """Where each edge sits in the padded ``[N, K_max]`` layout.

    Attributes:
        slot: ``[E]`` flat slot index i·K_max + rank of edge e among i's edges.
        neighbor: ``[N·K_max]`` neighbour atom of each slot (N = the zero row).
        num_nodes: N.
        max_neighbors: K_max.
    """

    slot: torch.Tensor
    neighbor: torch.Tensor
    num_nodes: int
    max_neighbors: int

    def pad(self, edge_values: torch.Tensor) -> torch.Tensor:
        """``[E, ...]`` → ``[N, K_max, ...]`` with zeros in empty slots."""
        out = edge_values.new_zeros((self.num_nodes * self.max_neighbors,
                                     *edge_values.shape[1:]))
        out = out.index_copy(0, self.slot, edge_values)
        return out.view(self.num_nodes, self.max_neighbors, *edge_values.shape[1:])

    def gather(self, node_values: torch.Tensor, start: int = 0, stop: int | None = None
               ) -> torch.Tensor:
        """``[N, ...]`` → ``[stop − start, K_max, ...]`` values of the neighbours of
        centres ``start … stop − 1`` (zeros in empty slots)."""
        stop = self.num_nodes if stop is None else stop
        ext = torch.cat([node_values, node_values.new_zeros((1, *node_values.shape[1:]))])
        index = self.neighbor[start * self.max_neighbors:stop * self.max_neighbors]
        return ext[index].view(stop - start, self.max_neighbors, *node_values.shape[1:])


def neighbor_slots(edge_index: torch.Tensor, num_nodes: int) -> NeighborSlots:
    """Slot table of ``edge_index`` ``[2, E]`` (any edge order)."""
    center, neighbor = edge_index
    num_edges = int(center.shape[0])
    counts = torch.bincount(center, minlength=num_nodes)
    kmax = int(counts.max()) if num_edges else 0
    order = torch.argsort(center, stable=True)
    offsets = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(center)
    rank[order] = torch.arange(num_edges, device=center.device) - offsets[center[order]]
    slot = center * kmax + rank
    table = torch.full((num_nodes * kmax,), num_nodes, dtype=center.dtype, device=center.device)
    table[slot] = neighbor
    return NeighborSlots(slot=slot, neighbor=table, num_nodes=num_nodes, max_neighbors=kmax)


def contract_density(
    edge_features: torch.Tensor, neighbor_features: torch.Tensor
) -> torch.Tensor:
    """Σ_k edge_features[n, k, a] · neighbor_features[n, k, b] → ``[N, A, B]``.

    Args:
        edge_features: ``[N, K_max, A]`` padded per-edge features (e.g. basis ⊗ SH).
        neighbor_features: ``[N, K_max, B]`` padded neighbour features.
    """
    return torch.bmm(edge_features.transpose(1, 2), neighbor_features)
