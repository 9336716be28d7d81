"""`ForceField`: a Potential behind a Verlet-skin neighbour list, as the MD force function.

The pair list is :class:`mlpot.neighbors.VerletList`: each call replaces it by
``update(list, graph)`` (a new list, rebuilt only when a pair could have entered the
cutoff) and hands the model the pairs closer than the cutoff, so forces are the same
as with a fresh list.
"""

from __future__ import annotations

import torch

from mlpot.graph import AtomicGraph
from mlpot.md.errors import ResourceExhaustedError, is_out_of_memory
from mlpot.md.integrators.base import update_forces
from mlpot.md.state import MDState
from mlpot.models.base import Potential, PotentialOutput
from mlpot.neighbors import VerletList, closest_pair, update, verlet_list


class ForceField:
    """Energy, forces (and stress) of a batch through ``model``, with a Verlet-skin list.

    Args:
        model: any :class:`~mlpot.models.Potential` (must vanish for r >= cutoff).
        skin: extra radius of the candidate list, Å (0 rebuilds every call).
        compute_stress: always compute the stress (NPT, cell relaxation); otherwise it
            is computed when a call asks for it.

    Attributes:
        verlet: the pair list of the last call (None before the first).
    """

    def __init__(self, model: Potential, skin: float = 1.0, compute_stress: bool = False
                 ) -> None:
        if skin < 0:
            raise ValueError(f"neighbour-list skin must be >= 0 Å, got {skin}")
        self.model = model
        self.cutoff = float(model.cutoff)
        self.skin = float(skin)
        self.compute_stress = compute_stress
        self.verlet: VerletList | None = None

    @property
    def rebuilds(self) -> int:
        """How many times the candidate list was built."""
        return 0 if self.verlet is None else self.verlet.rebuilds

    def edges(self, graph: AtomicGraph) -> AtomicGraph:
        """``graph`` with the pairs closer than the cutoff (the list brought up to date)."""
        if self.verlet is None:
            self.verlet = verlet_list(graph, self.cutoff, self.skin)
        else:
            self.verlet = update(self.verlet, graph)
        return graph.with_edges(self.verlet.edge_index, self.verlet.shifts)

    def min_distance(self, graph: AtomicGraph) -> float | None:
        """Shortest pair distance (Å) closer than the cutoff, or None when there is none."""
        self.edges(graph)
        assert self.verlet is not None  # edges() built it
        return closest_pair(self.verlet, graph)

    def rebuild_from(self, ref_positions: torch.Tensor, ref_cell: torch.Tensor,
                     graph: AtomicGraph) -> None:
        """Rebuild the candidate list at a saved reference (restarts resume bit-for-bit)."""
        ref = graph.replace(positions=ref_positions.to(graph.positions),
                            cell=ref_cell.to(graph.cell))
        self.verlet = verlet_list(ref, self.cutoff, self.skin)

    def __call__(self, graph: AtomicGraph, compute_stress: bool = False) -> PotentialOutput:
        """Energy ``[B]``, forces ``[N, 3]`` (and stress ``[B, 3, 3]``) at ``graph``.

        Raises:
            ResourceExhaustedError: the model ran out of memory (nothing was advanced).
        """
        g = self.edges(graph)
        try:
            return self.model(g, compute_forces=True,
                              compute_stress=compute_stress or self.compute_stress)
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if g.device.type == "cuda":
                torch.cuda.empty_cache()
            raise ResourceExhaustedError(
                f"out of memory evaluating {type(self.model).__name__} on "
                f"{graph.num_systems} system(s) / {graph.num_atoms} atoms: "
                f"{str(err).splitlines()[0][:200]}") from None

    def evaluate(self, state: MDState, compute_stress: bool = False) -> MDState:
        """``state`` with energy, forces (and stress) recomputed at its positions."""
        return update_forces(state, self, compute_stress)
