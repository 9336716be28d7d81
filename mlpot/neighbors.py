"""Neighbour lists on top of `vesin` (CPU) and `vesin-torch` (GPU), and the Verlet-skin
list (:class:`VerletList`, :func:`update`) shared by MD, FIRE and the ASE calculator.

A full list is built: every pair appears as ``(i, j)`` and ``(j, i)``. The edge
vector of pair ``(i, j)`` is ``positions[j] - positions[i] + shifts``, where
``shifts = S @ cell`` with integer image offsets ``S``. Non-periodic directions
never produce images; cells narrower than the cutoff produce as many images as
needed; isolated atoms produce no edges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        counts = torch.as_tensor(self.counts, device=cell.device)
        system = torch.repeat_interleave(torch.arange(len(self.counts), device=cell.device),
                                         counts, output_size=self.cell_shifts.shape[0])
        return cartesian_shifts(self.cell_shifts, cell, system)


def cartesian_shifts(cell_shifts: torch.Tensor, cell: torch.Tensor, edge_system: torch.Tensor
                     ) -> torch.Tensor:
    """``[E, 3]`` shifts S·cell, Å, of pairs with integer offsets ``cell_shifts [E, 3]``
    (in the cell's dtype) and systems ``edge_system [E]`` (``cell [B, 3, 3]``).

    Evaluated as S₀·a₀ + S₁·a₁ + S₂·a₂ elementwise, so a pair's shift has the same
    bits whatever else is in the batch (a matrix product may round differently).
    """
    rows = cell[edge_system]
    return (cell_shifts[:, 0:1] * rows[:, 0] + cell_shifts[:, 1:2] * rows[:, 1]
            + cell_shifts[:, 2:3] * rows[:, 2])


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


@dataclass(frozen=True)
class VerletList:
    """A Verlet-skin pair list of a batch: the candidates within ``cutoff + skin`` at
    the last rebuild, and the pairs within ``cutoff`` at the last :func:`update`.

    Candidates carry *integer* image offsets, so the list stays valid when the cell
    deforms (NPT, cell relaxation), and are kept in a canonical order (by i, j, then
    the offsets). The pairs handed to a model are therefore the same, in the same
    order, whenever the list was rebuilt and whatever else is in the batch, so forces
    are bit-for-bit those of a fresh list, alone or batched. Never modified:
    :func:`update` returns a new list (sharing the tensors that did not change).

    Attributes:
        cutoff, skin: Å.
        candidates: ``[2, C]`` int64 batch atom indices.
        candidate_offsets: ``[C, 3]`` integer image offsets of atom j (positions' dtype).
        candidate_shifts: ``[C, 3]`` their cartesian shifts for ``cell``, Å.
        ref_distance: ``[C]`` candidate distances at the rebuild, Å.
        sorted_distance: ``[C]`` the same, ascending.
        by_distance: ``[C]`` candidate indices in that order.
        ref_positions: ``[N, 3]`` positions at the rebuild, Å.
        ref_cell: ``[B, 3, 3]`` cell at the rebuild, Å.
        ref_pbc: ``[B, 3]`` periodic directions at the rebuild.
        ref_cell_inv: ``[B, 3, 3]`` its inverse (identity where the cell is singular).
        cell: ``[B, 3, 3]`` the cell of the last update, Å.
        inside: ``[C]`` bool, which candidates are those pairs.
        edge_index: ``[2, E]`` the pairs closer than ``cutoff`` at the last update.
        shifts: ``[E, 3]`` their cartesian shifts, Å.
        rebuilds: how many times the candidates were built (this list's history).
    """

    cutoff: float
    skin: float
    candidates: torch.Tensor
    candidate_offsets: torch.Tensor
    candidate_shifts: torch.Tensor
    ref_distance: torch.Tensor
    sorted_distance: torch.Tensor
    by_distance: torch.Tensor
    ref_positions: torch.Tensor
    ref_cell: torch.Tensor
    ref_pbc: torch.Tensor
    ref_cell_inv: torch.Tensor
    cell: torch.Tensor
    inside: torch.Tensor
    edge_index: torch.Tensor
    shifts: torch.Tensor
    rebuilds: int = 1


def _safe_inverse(cell: torch.Tensor) -> torch.Tensor:
    det = torch.linalg.det(cell)
    ok = (det.abs() > 1e-8)[:, None, None]
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    return torch.where(ok, torch.linalg.inv(torch.where(ok, cell, eye)), eye)


def _canonical_order(edge_index: torch.Tensor, offsets: torch.Tensor, num_atoms: int
                     ) -> torch.Tensor:
    """Permutation sorting pairs by (i, j, S) lexicographically."""
    s = offsets.to(torch.int64)
    k = int(s.abs().max()) + 1 if s.numel() else 1
    image = ((s[:, 0] + k) * (2 * k + 1) + (s[:, 1] + k)) * (2 * k + 1) + (s[:, 2] + k)
    order = torch.sort(image, stable=True).indices
    pair = edge_index[0] * num_atoms + edge_index[1]
    return order[torch.sort(pair[order], stable=True).indices]


def verlet_list(graph: AtomicGraph, cutoff: float, skin: float, rebuilds: int = 1
                ) -> VerletList:
    """Build the candidates of every system within ``cutoff + skin`` (vesin, in
    canonical order), then keep the pairs within ``cutoff``."""
    if skin < 0:
        raise ValueError(f"neighbour-list skin must be >= 0 Å, got {skin}")
    pos, cell = graph.positions.detach(), graph.cell.detach()
    pairs = batch_pairs(graph.replace(positions=pos, cell=cell), cutoff + skin)
    order = _canonical_order(pairs.edge_index, pairs.cell_shifts, graph.num_atoms)
    candidates = pairs.edge_index[:, order]
    offsets = pairs.cell_shifts[order]
    shifts = cartesian_shifts(offsets, cell, graph.system_index[candidates[0]])
    d = _distance2(pos, candidates, shifts).sqrt()
    sorted_distance, by_distance = torch.sort(d)
    built = VerletList(
        cutoff=float(cutoff), skin=float(skin), candidates=candidates,
        candidate_offsets=offsets, candidate_shifts=shifts, ref_distance=d,
        sorted_distance=sorted_distance, by_distance=by_distance, ref_positions=pos,
        ref_cell=cell, ref_pbc=graph.pbc, ref_cell_inv=_safe_inverse(cell), cell=cell,
        inside=torch.ones_like(d, dtype=torch.bool), edge_index=candidates, shifts=shifts,
        rebuilds=rebuilds)
    return _prune(built, pos, torch.zeros_like(d, dtype=torch.bool), by_distance)


def _distance2(positions: torch.Tensor, pairs: torch.Tensor, shifts: torch.Tensor
               ) -> torch.Tensor:
    """``[E]`` squared lengths |r_j − r_i + shift|², Å², as (dx² + dy²) + dz²."""
    d = positions.index_select(0, pairs[1]) - positions.index_select(0, pairs[0]) + shifts
    d = d * d
    return (d[:, 0] + d[:, 1]) + d[:, 2]


def _prune(vlist: VerletList, positions: torch.Tensor, inside: torch.Tensor,
           band: torch.Tensor, same_shifts: bool = False) -> VerletList:
    """The list whose pairs are the candidates marked ``inside [C]`` (surely inside the
    cutoff) plus those of ``band`` (candidate indices) now closer than the cutoff, in
    canonical order. With ``same_shifts`` (the candidates' shifts are those of
    ``vlist``'s pairs) and the same pairs (none crossed the cutoff: the usual step),
    ``vlist`` itself is returned."""
    pairs = vlist.candidates.index_select(1, band)
    near = _distance2(positions, pairs, vlist.candidate_shifts.index_select(0, band))
    inside = inside.index_put((band,), near < vlist.cutoff**2)
    if same_shifts and torch.equal(inside, vlist.inside):
        return vlist
    keep = inside.nonzero().view(-1)
    i, j = vlist.candidates  # row by row: twice as fast as index_select along dim 1
    return replace(vlist, inside=inside, edge_index=torch.stack([i.index_select(0, keep),
                                                                 j.index_select(0, keep)]),
                   shifts=vlist.candidate_shifts.index_select(0, keep))


def displacement_bounds(vlist: VerletList, graph: AtomicGraph) -> tuple[float, float, float]:
    """(largest non-affine displacement δ Å, smallest and largest singular value of the
    deformation F = cell_ref⁻¹·cell) of ``graph`` since ``vlist`` was built (one host copy)."""
    pos, cell = graph.positions.detach(), graph.cell.detach()
    if pos.shape[0] == 0:
        return 0.0, 1.0, 1.0
    if torch.equal(cell, vlist.ref_cell):
        return float(torch.linalg.vector_norm(pos - vlist.ref_positions, dim=1).max()), 1.0, 1.0
    F = vlist.ref_cell_inv @ cell
    affine = (vlist.ref_positions[:, :, None] * F[graph.system_index]).sum(1)
    delta = torch.linalg.vector_norm(pos - affine, dim=1).max()
    sv = torch.linalg.svdvals(F)
    delta, smin, smax = torch.stack([delta, sv[:, -1].min(), sv[:, 0].max()]).tolist()
    return delta, smin, smax


def _stale(vlist: VerletList, graph: AtomicGraph) -> bool:
    return (vlist.skin == 0 or graph.positions.shape != vlist.ref_positions.shape
            or graph.cell.shape != vlist.ref_cell.shape
            or not torch.equal(graph.pbc, vlist.ref_pbc))


def needs_rebuild(vlist: VerletList, graph: AtomicGraph) -> bool:
    """Whether a pair may have come closer than the cutoff without being a candidate.

    With the affine deformation F = cell_ref⁻¹·cell and the non-affine displacements
    δ_i = r_i − r_ref,i·F, every pair now closer than r_c was closer than r_c + skin
    at the rebuild as long as σ_min(F)·(r_c + skin) − 2·max|δ| ≥ r_c.
    """
    if _stale(vlist, graph):
        return True
    delta, smin, _ = displacement_bounds(vlist, graph)
    return smin * (vlist.cutoff + vlist.skin) - 2 * delta < vlist.cutoff


def update(vlist: VerletList, graph: AtomicGraph) -> VerletList:
    """The list for ``graph``: the same candidates pruned to the cutoff, or new
    candidates when :func:`needs_rebuild`.

    With the bounds of :func:`needs_rebuild`, a candidate with rebuild distance d_ref is
    surely inside when σ_max·d_ref + 2δ < r_c and surely outside when
    σ_min·d_ref − 2δ > r_c; only the band between is measured (one sorted search).
    """
    if _stale(vlist, graph):
        return verlet_list(graph, vlist.cutoff, vlist.skin, vlist.rebuilds + 1)
    delta, smin, smax = displacement_bounds(vlist, graph)
    rc = vlist.cutoff
    if smin * (rc + vlist.skin) - 2 * delta < rc:
        return verlet_list(graph, rc, vlist.skin, vlist.rebuilds + 1)
    cell = graph.cell.detach()
    same_shifts = torch.equal(cell, vlist.cell)
    if not same_shifts:
        system = graph.system_index[vlist.candidates[0]]
        vlist = replace(vlist, cell=cell, candidate_shifts=cartesian_shifts(
            vlist.candidate_offsets, cell, system))
    lo, hi = (rc - 2 * delta) / smax - 1e-6, (rc + 2 * delta) / smin + 1e-6
    bounds = torch.tensor([lo, hi], dtype=vlist.ref_distance.dtype, device=cell.device)
    first, last = torch.searchsorted(vlist.sorted_distance, bounds).tolist()
    inside = vlist.ref_distance < bounds[0]  # exactly by_distance[:first]
    return _prune(vlist, graph.positions.detach(), inside, vlist.by_distance[first:last],
                  same_shifts)


def closest_pair(vlist: VerletList, graph: AtomicGraph) -> float | None:
    """Shortest distance (Å) among the pairs of ``vlist`` (updated for ``graph``), or
    None when it has none."""
    if vlist.edge_index.shape[1] == 0:
        return None
    i, j = vlist.edge_index
    d = graph.positions[j] - graph.positions[i] + vlist.shifts
    return float(torch.linalg.vector_norm(d.detach(), dim=1).min())
