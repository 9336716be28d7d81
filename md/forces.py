"""`ForceField`: a Potential behind a Verlet-skin neighbour list, as the MD force function.

The candidate list holds every pair closer than ``cutoff + skin`` at the last
rebuild, stored with *integer* image offsets so it stays valid when the cell
deforms (NPT, cell relaxation). Each call keeps only the pairs now closer than
the cutoff and hands them to the model (or, with ``prune=False``, all candidates:
every Potential gives exactly zero for r >= cutoff), so forces are the same as
with a fresh list. The list is rebuilt only when a pair could have entered the cutoff:
with the affine deformation F = cell_ref⁻¹·cell and non-affine displacements
δ_i = r_i − r_ref,i·F, every pair now closer than r_c was closer than r_c + skin
at the rebuild as long as σ_min(F)·(r_c + skin) − 2·max|δ| ≥ r_c.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mlpot.graph import AtomicGraph
from mlpot.kernels.pair_select import (
    SameCellUpdate,
    max_displacement,
    resolve_backend,
    select_pairs,
)
from mlpot.md.errors import ResourceExhaustedError, is_out_of_memory
from mlpot.md.integrators.base import update_forces
from mlpot.md.state import MDState
from mlpot.models.base import Potential, PotentialOutput
from mlpot.neighbors import batch_pairs


@dataclass
class VerletList:
    """Candidate pairs within ``cutoff + skin`` at the reference configuration.

    Attributes:
        edge_index: ``[2, E]`` batch atom indices (rows contiguous).
        cell_shifts: ``[E, 3]`` integer image offsets (as floats) of atom j.
        ref_positions: ``[N, 3]`` positions at the rebuild, Å.
        ref_cell: ``[B, 3, 3]`` cell at the rebuild, Å.
        ref_cell_inv: ``[B, 3, 3]`` its inverse (identity where the cell is singular).
        ref_distance: ``[E]`` pair distances at the rebuild, Å, ascending (the pairs are
            stored in this order, as couples (i, j, S), (j, i, −S) of equal length; the
            stable sort keeps each system's relative order, so a system's pair order does
            not depend on its batch-mates).
        ref_distance_host: the same as a float64 numpy array (searched on the host).
        seen_cell: the last cell tensor found equal to ``ref_cell`` (:func:`same_cell`).
    """

    edge_index: torch.Tensor
    cell_shifts: torch.Tensor
    ref_positions: torch.Tensor
    ref_cell: torch.Tensor
    ref_cell_inv: torch.Tensor
    ref_distance: torch.Tensor
    ref_distance_host: np.ndarray
    seen_cell: torch.Tensor | None = None


def _safe_inverse(cell: torch.Tensor) -> torch.Tensor:
    det = torch.linalg.det(cell)
    ok = det.abs() > 1e-8
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    return torch.where(ok[:, None, None], torch.linalg.inv(torch.where(
        ok[:, None, None], cell, eye)), eye)


def cartesian_shifts(cell_shifts: torch.Tensor, cell: torch.Tensor,
                     edge_system: torch.Tensor) -> torch.Tensor:
    """``[E, 3]`` shifts S·cell, Å, of pairs with integer offsets ``cell_shifts [E, 3]``
    and systems ``edge_system [E]`` (``cell [B, 3, 3]``)."""
    if cell.shape[0] == 1:
        return cell_shifts @ cell[0]
    return torch.bmm(cell_shifts[:, None, :], cell[edge_system]).squeeze(1)


def same_cell(cell: torch.Tensor, stored: torch.Tensor, holder: VerletList | _PairBuffers
              ) -> bool:
    """``torch.equal(cell, stored)``, answered without a comparison when ``cell`` is the
    tensor ``holder`` last found equal (states share their cell tensor from step to
    step, and never modify it in place)."""
    if cell is holder.seen_cell:
        return True
    if torch.equal(cell.detach(), stored):
        holder.seen_cell = cell
        return True
    return False


def displacement_bounds(verlet: VerletList, graph: AtomicGraph, backend: str = "auto"
                        ) -> tuple[float, float, float]:
    """(max non-affine displacement δ Å, smallest and largest singular value of the
    deformation F) of ``graph`` since ``verlet`` was built, over all systems."""
    v = verlet
    if same_cell(graph.cell, v.ref_cell, v):
        return max_displacement(graph.positions, v.ref_positions, backend), 1.0, 1.0
    F = v.ref_cell_inv @ graph.cell.detach()
    affine = (v.ref_positions[:, :, None] * F[graph.system_index]).sum(1)
    disp = (graph.positions.detach() - affine).norm(dim=1)
    sv = torch.linalg.svdvals(F)
    return (float(disp.max()) if disp.numel() else 0.0, float(sv[:, -1].min()),
            float(sv[:, 0].max()))


def closest_pair(verlet: VerletList, graph: AtomicGraph, below: float | None = None,
                 bounds: tuple[float, float, float] | None = None, backend: str = "auto"
                 ) -> float | None:
    """Shortest pair distance (Å) of ``graph`` among the candidates of ``verlet`` (which
    must cover it: not stale), or None when no pair is closer than ``below``.

    Reads ``verlet`` only (a list is replaced, never changed, by a rebuild), so it can
    run on another thread. Only candidates that can be that close are measured: with
    the displacement bounds (δ, σ_min, σ_max) (``bounds`` when already known), a pair now
    closer than ``below`` had d_ref < (below + 2δ)/σ_min, a short slice of the sorted
    candidates (usually empty).
    """
    v = verlet
    count = v.ref_distance.numel()
    if below is not None and count:
        delta, smin, _ = bounds or displacement_bounds(v, graph, backend)
        limit = (below + 2 * delta) / smin + 1e-6
        # sorted: when the closest candidate is beyond the limit, nothing to measure
        count = 0 if v.ref_distance_host[0] >= limit else int(
            np.searchsorted(v.ref_distance_host, limit))
    if count == 0:
        return None
    i, j = v.edge_index[:, :count]
    shifts = cartesian_shifts(v.cell_shifts[:count], graph.cell.detach(),
                              graph.system_index[i])
    d = float((graph.positions[j] - graph.positions[i] + shifts).norm(dim=1).min())
    return d if below is None or d < below else None


def build_verlet_list(graph: AtomicGraph, radius: float) -> VerletList:
    """Candidate pairs of every system within ``radius``, sorted by distance, each
    pair (i, j, S) followed by its reverse (j, i, −S).

    The two directions of a pair have exactly the same length in floating point
    (negation is exact), so a pruning pass measures only the first of each couple
    and keeps or drops both.
    """
    pos, cell = graph.positions.detach(), graph.cell.detach()
    pairs = batch_pairs(graph.replace(positions=pos, cell=cell), radius)
    i, j = pairs.edge_index
    s = pairs.cell_shifts
    # one direction of each pair: i < j, or for an atom and its own image the
    # lexicographically positive offset
    self_image = (i == j) & ((s[:, 0] > 0) | ((s[:, 0] == 0) & ((s[:, 1] > 0)
                             | ((s[:, 1] == 0) & (s[:, 2] > 0)))))
    first = ((i < j) | self_image).nonzero().view(-1)
    vec = (pos.index_select(0, j[first]) - pos.index_select(0, i[first])
           + pairs.cartesian_shifts(cell)[first])
    ones = torch.ones(3, dtype=vec.dtype, device=vec.device)
    dist, order = torch.sort(torch.mv(vec * vec, ones).sqrt(), stable=True)
    half = first[order]
    edge_index = torch.stack([pairs.edge_index[:, half], pairs.edge_index.flip(0)[:, half]],
                             dim=2).reshape(2, -1)
    cell_shifts = torch.stack([s[half], -s[half]], dim=1).reshape(-1, 3)
    dist = dist.repeat_interleave(2)
    return VerletList(edge_index=edge_index, cell_shifts=cell_shifts,
                      ref_positions=pos.clone(), ref_cell=cell.clone(),
                      ref_cell_inv=_safe_inverse(cell), ref_distance=dist,
                      ref_distance_host=dist.cpu().double().numpy())


@dataclass
class _PairBuffers:
    """The model-facing pair list, rewritten in place each call (see ForceField.edges).

    ``edges [2, E]`` and ``shifts [E, 3]`` start as copies of the sorted candidates;
    only ``[pristine:]`` has since been overwritten by pruned bands.
    ``candidate_shifts [E, 3]`` are the candidates' cartesian shifts for ``cell``.
    ``update`` is the fixed-cell step bound to these buffers (made on first use);
    ``seen_cell`` the last cell tensor found equal to ``cell``; ``views`` the
    ``(edges[:, :end], shifts[:end])`` views made so far, by ``end`` (the list length
    changes by a few pairs from step to step).
    """

    edges: torch.Tensor
    shifts: torch.Tensor
    candidate_shifts: torch.Tensor
    cell: torch.Tensor
    pristine: int
    update: SameCellUpdate | None = None
    seen_cell: torch.Tensor | None = None
    views: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class ForceField:
    """Energy, forces (and stress) of a batch through ``model``, with a Verlet-skin list.

    Args:
        model: any :class:`~mlpot.models.Potential` (must vanish for r >= cutoff).
        skin: extra radius of the candidate list, Å (0 rebuilds every call).
        compute_stress: also return the stress (needed by NPT and cell relaxation).
        prune: hand the model only pairs closer than the cutoff (otherwise all
            candidates; the model gives them exactly zero weight, at a cost).
        backend: kernels of the per-step pair selection, ``"auto" | "numba" | "torch"``
            (see :mod:`mlpot.kernels.pair_select`).

    Attributes:
        rebuilds: how many times the candidate list was built.
        calls: how many force evaluations were made.
    """

    def __init__(self, model: Potential, skin: float = 1.0, compute_stress: bool = False,
                 prune: bool = True, backend: str = "auto") -> None:
        if skin < 0:
            raise ValueError(f"neighbour-list skin must be >= 0 Å, got {skin}")
        self.model = model
        self.cutoff = float(model.cutoff)
        self.skin = float(skin)
        self.compute_stress = compute_stress
        self.rebuilds = 0
        self.calls = 0
        self.prune = prune
        resolve_backend(backend, torch.device("cpu"))  # an unknown name fails here
        self.backend = backend
        self.verlet: VerletList | None = None
        self._buffers: _PairBuffers | None = None
        # (graph, graph with its pair list, displacement bounds δ, σ_min, σ_max)
        self._last: tuple[AtomicGraph, AtomicGraph, tuple[float, float, float]] | None = None
        self._stress_once = False

    def request_stress(self) -> None:
        """Also compute the stress at the next evaluation (once), e.g. for a thermo log."""
        self._stress_once = True

    # ----------------------------------------------------------- neighbours
    def displacement_bounds(self, graph: AtomicGraph) -> tuple[float, float, float]:
        """(max non-affine displacement δ Å, smallest and largest singular value of F)
        since the last rebuild, over all systems."""
        return displacement_bounds(self.verlet, graph, self.backend)

    def needs_rebuild(self, graph: AtomicGraph) -> bool:
        """Whether a pair may have entered the cutoff since the last rebuild."""
        v = self.verlet
        if v is None or v.ref_positions.shape != graph.positions.shape or self.skin == 0:
            return True
        delta, smin, _ = self.displacement_bounds(graph)
        return self._stale(delta, smin)

    def _stale(self, delta: float, smin: float) -> bool:
        """The rebuild criterion σ_min·(r_c + skin) − 2δ < r_c (see the module docstring)."""
        return smin * (self.cutoff + self.skin) - 2 * delta < self.cutoff

    def _rebuild(self, graph: AtomicGraph) -> None:
        self._set_verlet(build_verlet_list(graph, self.cutoff + self.skin))
        self.rebuilds += 1

    def _pair_buffers(self, graph: AtomicGraph) -> _PairBuffers:
        """The pair buffers: made after a rebuild; when only the cell changed, the
        shifts are recomputed and the untouched edge prefix is kept. Without pruning
        nothing is ever written, so the buffers are the candidates themselves."""
        v, buf = self.verlet, self._buffers
        if buf is not None and same_cell(graph.cell, buf.cell, buf):
            return buf
        cell = graph.cell.detach()
        shifts = cartesian_shifts(v.cell_shifts, cell, graph.system_index[v.edge_index[0]])
        if buf is None:
            edges = v.edge_index.clone() if self.prune else v.edge_index
            buf = _PairBuffers(edges=edges, shifts=shifts.clone() if self.prune else shifts,
                               candidate_shifts=shifts, cell=cell.clone(),
                               pristine=v.edge_index.shape[1])
            self._buffers = buf
            return buf
        buf.candidate_shifts, buf.cell, buf.seen_cell = shifts, cell.clone(), None
        buf.update = None  # bound to the old shifts
        if self.prune:
            buf.shifts[:buf.pristine] = shifts[:buf.pristine]
        else:
            buf.shifts = shifts
        return buf

    def _set_verlet(self, verlet: VerletList) -> None:
        self.verlet, self._buffers, self._last = verlet, None, None

    def edges(self, graph: AtomicGraph) -> AtomicGraph:
        """``graph`` with its pair list: the candidates (rebuilt when needed), pruned to
        the cutoff when ``prune`` is set.

        Pruning measures only the pairs whose fate is uncertain: with
        |r − r_ref·F| ≤ δ per atom, a pair is surely inside when
        σ_max·d_ref + 2δ < r_c and surely outside when σ_min·d_ref − 2δ > r_c. The
        pairs are sorted by d_ref, so both groups are contiguous slices and only the
        band between them is measured. The kept pairs of the band are written in
        place after the surely-inside prefix, which is never copied. The returned
        edge tensors are views of those buffers: valid until the next call.
        """
        if self._last is not None and self._last[0] is graph:
            return self._last[1]
        v = self.verlet
        fresh = v is None or v.ref_positions.shape != graph.positions.shape or self.skin == 0
        if not fresh and self.prune and same_cell(graph.cell, v.ref_cell, v):
            # the common case (fixed cell): one fused call per step
            span = self._update_same_cell(graph)
            if span is None:
                self._rebuild(graph)
                span = self._update_same_cell(graph)
            start, end, delta = span
            return self._prune_result(graph, start, end, (delta, 1.0, 1.0))
        delta, smin, smax = (0.0, 1.0, 1.0) if fresh else self.displacement_bounds(graph)
        if fresh or self._stale(delta, smin):
            self._rebuild(graph)
            delta, smin, smax = 0.0, 1.0, 1.0
        v, buf = self.verlet, self._pair_buffers(graph)
        if not self.prune:
            out = graph.with_edges(v.edge_index, buf.candidate_shifts)
            self._last = (graph, out, (delta, smin, smax))
            return out
        lo = (self.cutoff - 2 * delta) / smax - 1e-6
        hi = (self.cutoff + 2 * delta) / smin + 1e-6
        first, last = np.searchsorted(v.ref_distance_host, (lo, hi)).tolist()
        # pairs in [first, pristine) are surely inside too and simply measured again
        start = min(first, buf.pristine)
        end = start + select_pairs(graph.positions, v.edge_index, buf.candidate_shifts, start,
                                   last, self.cutoff, buf.edges, buf.shifts, self.backend)
        return self._prune_result(graph, start, end, (delta, smin, smax))

    def _update_same_cell(self, graph: AtomicGraph) -> tuple[int, int, float] | None:
        v, buf = self.verlet, self._pair_buffers(graph)
        if buf.update is None:
            buf.update = SameCellUpdate(v.ref_positions, v.ref_distance_host, v.edge_index,
                                        buf.candidate_shifts, self.cutoff, self.skin,
                                        buf.edges, buf.shifts, self.backend)
        return buf.update(graph.positions, buf.pristine)

    def _prune_result(self, graph: AtomicGraph, start: int, end: int,
                      bounds: tuple[float, float, float]) -> AtomicGraph:
        """The graph with pairs ``[:end]`` of the buffers (``[:start]`` never rewritten)."""
        buf = self._buffers
        buf.pristine = start
        views = buf.views.get(end)
        if views is None:
            if len(buf.views) > 64:
                buf.views.clear()
            views = buf.views[end] = (buf.edges[:, :end], buf.shifts[:end])
        out = graph.with_edges(*views)
        self._last = (graph, out, bounds)  # the blow-up check asks again for this graph
        return out

    def min_distance(self, graph: AtomicGraph, below: float | None = None) -> float | None:
        """Shortest pair distance (Å), or None when no pair is closer than ``below``
        (see :func:`closest_pair`; the candidate list is brought up to date first)."""
        self.edges(graph)
        return closest_pair(self.verlet, graph, below, self._last[2], self.backend)

    def rebuild_from(self, ref_positions: torch.Tensor, ref_cell: torch.Tensor,
                     graph: AtomicGraph) -> None:
        """Rebuild the candidate list at a saved reference (restarts resume bit-for-bit)."""
        ref = graph.replace(positions=ref_positions.to(graph.positions),
                            cell=ref_cell.to(graph.cell))
        self._set_verlet(build_verlet_list(ref, self.cutoff + self.skin))

    # -------------------------------------------------------------- forces
    def __call__(self, graph: AtomicGraph) -> PotentialOutput:
        """Energy ``[B]``, forces ``[N, 3]`` (and stress ``[B, 3, 3]``) at ``graph``.

        Raises:
            ResourceExhaustedError: the model ran out of memory (nothing was advanced).
        """
        self.calls += 1
        stress, self._stress_once = self.compute_stress or self._stress_once, False
        g = self.edges(graph)
        try:
            return self.model(g, compute_forces=True, compute_stress=stress)
        except (RuntimeError, MemoryError) as err:
            if is_out_of_memory(err):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                raise ResourceExhaustedError(
                    f"out of memory evaluating {type(self.model).__name__} on "
                    f"{graph.num_systems} system(s) / {graph.num_atoms} atoms: "
                    f"{str(err).splitlines()[0][:200]}") from None
            raise

    def evaluate(self, state: MDState) -> MDState:
        """``state`` with energy, forces and stress recomputed at its positions."""
        return update_forces(state, self)
