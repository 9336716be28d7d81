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

from dataclasses import dataclass

import numpy as np
import torch
from mlpot.md.errors import ResourceExhaustedError, is_out_of_memory
from mlpot.md.state import MDState

from mlpot.graph import AtomicGraph
from mlpot.models.base import Potential, PotentialOutput
from mlpot.models.lj import LennardJones
from mlpot.neighbors import system_neighbors


@dataclass
class VerletList:
    """Candidate pairs within ``cutoff + skin`` at the reference configuration.

    Attributes:
        edge_index: ``[2, E]`` batch atom indices.
        cell_shifts: ``[E, 3]`` integer image offsets (as floats) of atom j.
        ref_positions: ``[N, 3]`` positions at the rebuild, Å.
        ref_cell: ``[B, 3, 3]`` cell at the rebuild, Å.
        ref_cell_inv: ``[B, 3, 3]`` its inverse (identity where the cell is singular).
    """

    edge_index: torch.Tensor
    cell_shifts: torch.Tensor
    ref_positions: torch.Tensor
    ref_cell: torch.Tensor
    ref_cell_inv: torch.Tensor


def _safe_inverse(cell: torch.Tensor) -> torch.Tensor:
    det = torch.linalg.det(cell)
    ok = det.abs() > 1e-8
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    return torch.where(ok[:, None, None], torch.linalg.inv(torch.where(
        ok[:, None, None], cell, eye)), eye)


def build_verlet_list(graph: AtomicGraph, radius: float) -> VerletList:
    """Candidate pairs of every system within ``radius`` (one vesin call per system)."""
    counts = graph.atoms_per_system.tolist()
    starts = np.cumsum([0, *counts[:-1]])
    edges, shifts = [], []
    for b, (start, count) in enumerate(zip(starts, counts, strict=True)):
        nl = system_neighbors(graph.positions[start:start + count], graph.cell[b],
                              graph.pbc[b], radius)
        edges.append(torch.stack([nl.i, nl.j]).to(graph.device) + int(start))
        shifts.append(nl.cell_shifts.to(device=graph.device, dtype=graph.dtype))
    return VerletList(edge_index=torch.cat(edges, dim=1), cell_shifts=torch.cat(shifts),
                      ref_positions=graph.positions.detach().clone(),
                      ref_cell=graph.cell.detach().clone(), ref_cell_inv=_safe_inverse(
                          graph.cell.detach()))


class ForceField:
    """Energy, forces (and stress) of a batch through ``model``, with a Verlet-skin list.

    Args:
        model: any :class:`~mlpot.models.Potential` (must vanish for r >= cutoff).
        skin: extra radius of the candidate list, Å (0 rebuilds every call).
        compute_stress: also return the stress (needed by NPT and cell relaxation).
        prune: hand the model only pairs closer than the cutoff (default: yes, except
            for LennardJones, where pruning costs as much as the extra pairs).

    Attributes:
        rebuilds: how many times the candidate list was built.
        calls: how many force evaluations were made.
    """

    def __init__(self, model: Potential, skin: float = 1.0, compute_stress: bool = False,
                 prune: bool | None = None) -> None:
        if skin < 0:
            raise ValueError(f"neighbour-list skin must be >= 0 Å, got {skin}")
        self.model = model
        self.cutoff = float(model.cutoff)
        self.skin = float(skin)
        self.compute_stress = compute_stress
        self.rebuilds = 0
        self.calls = 0
        # Pair potentials cost about as much as pruning, so they get the candidates.
        self.prune = (not isinstance(model, LennardJones)) if prune is None else prune
        self.verlet: VerletList | None = None
        self._shift_cell: torch.Tensor | None = None
        self._shifts: torch.Tensor | None = None

    # ----------------------------------------------------------- neighbours
    def needs_rebuild(self, graph: AtomicGraph) -> bool:
        """Whether a pair may have entered the cutoff since the last rebuild."""
        v = self.verlet
        if v is None or v.ref_positions.shape != graph.positions.shape or self.skin == 0:
            return True
        cell = graph.cell.detach()
        if torch.equal(cell, v.ref_cell):
            disp = (graph.positions.detach() - v.ref_positions).norm(dim=1)
            sigma_min = torch.ones(graph.num_systems, dtype=disp.dtype, device=disp.device)
        else:
            F = v.ref_cell_inv @ cell
            affine = torch.einsum("ni,nij->nj", v.ref_positions, F[graph.system_index])
            disp = (graph.positions.detach() - affine).norm(dim=1)
            sigma_min = torch.linalg.svdvals(F)[:, -1]
        max_disp = torch.zeros(graph.num_systems, dtype=disp.dtype, device=disp.device)
        max_disp = max_disp.scatter_reduce(0, graph.system_index, disp, "amax")
        margin = sigma_min * (self.cutoff + self.skin) - 2 * max_disp
        return bool((margin < self.cutoff).any())

    def _cartesian_shifts(self, graph: AtomicGraph) -> torch.Tensor:
        """``[E, 3]`` shifts S·cell of the candidate pairs for the current cell (cached)."""
        v = self.verlet
        cell = graph.cell.detach()
        if self._shift_cell is None or not torch.equal(cell, self._shift_cell):
            edge_cell = cell[graph.system_index[v.edge_index[0]]]
            self._shifts = torch.einsum("ei,eij->ej", v.cell_shifts, edge_cell)
            self._shift_cell = cell.clone()
        return self._shifts

    def _set_verlet(self, verlet: VerletList) -> None:
        self.verlet, self._shift_cell, self._shifts = verlet, None, None

    def edges(self, graph: AtomicGraph) -> AtomicGraph:
        """``graph`` with its pair list: the candidates (rebuilt when needed), pruned to
        the cutoff when ``prune`` is set."""
        if self.needs_rebuild(graph):
            self._set_verlet(build_verlet_list(graph, self.cutoff + self.skin))
            self.rebuilds += 1
        edge_index, shifts = self.verlet.edge_index, self._cartesian_shifts(graph)
        if self.prune:
            pos = graph.positions.detach()
            i, j = edge_index
            vec = pos.index_select(0, j) - pos.index_select(0, i) + shifts
            keep = ((vec * vec).sum(1) < self.cutoff**2).nonzero().squeeze(1)
            edge_index, shifts = edge_index.index_select(1, keep), shifts.index_select(0, keep)
        return graph.replace(edge_index=edge_index, shifts=shifts)

    def min_distance(self, graph: AtomicGraph) -> float | None:
        """Shortest pair distance in ``graph`` (from the candidate list), Å; None if no pairs."""
        g = self.edges(graph)
        i, j = g.edge_index
        if i.numel() == 0:
            return None
        vec = graph.positions[j] - graph.positions[i] + g.shifts
        return float(vec.norm(dim=1).min())

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
        g = self.edges(graph)
        try:
            return self.model(g, compute_forces=True, compute_stress=self.compute_stress)
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
        out = self(state.graph)
        dtype = state.momenta.dtype
        return state.replace(
            energy=out.energy.detach().to(dtype), forces=out.forces.detach().to(dtype),
            stress=None if out.stress is None else out.stress.detach().to(dtype))
