"""Lennard-Jones pair potential with a smooth multiplicative cutoff."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mlpot.graph import AtomicGraph
from mlpot.models.base import Potential, species_to_numbers


@dataclass(frozen=True)
class LennardJonesConfig:
    """Hyper-parameters of :class:`LennardJones` (saved in checkpoints).

    Attributes:
        species: atomic numbers the potential accepts.
        epsilon: well depth, eV.
        sigma: zero-crossing distance, Å.
        cutoff: r_c, Å; energy and force vanish smoothly at r_c.
        onset: r_o, Å, where the switching starts (default 0.66 r_c).
    """

    species: tuple[int, ...]
    epsilon: float = 0.0104
    sigma: float = 3.40
    cutoff: float = 8.5
    onset: float | None = None


class LennardJones(Potential):
    """u(r) = 4ε[(σ/r)¹² − (σ/r)⁶] · c(r), summed over pairs.

    The switch, in squared distances s = r², is
    c = (s_c − s)² (s_c + 2s − 3s_o) / (s_c − s_o)³ for r_o ≤ r < r_c,
    1 below r_o and 0 beyond r_c (the JAX-MD multiplicative cutoff, also used
    by ASE's ``LennardJones(smooth=True)``); u is C¹ at r_c. Defaults are argon
    (ε = 0.0104 eV, σ = 3.40 Å, r_c = 2.5σ).
    """

    config: LennardJonesConfig

    def __init__(
        self,
        species: Sequence[int | str],
        epsilon: float = 0.0104,
        sigma: float = 3.40,
        cutoff: float = 8.5,
        onset: float | None = None,
    ) -> None:
        super().__init__(species, cutoff)
        onset = 0.66 * cutoff if onset is None else float(onset)
        if not 0 < onset < cutoff:
            raise ValueError(f"onset must lie in (0, cutoff={cutoff}), got {onset}")
        if epsilon < 0 or sigma <= 0:
            raise ValueError(f"need epsilon >= 0 and sigma > 0, got {epsilon}, {sigma}")
        self.config = LennardJonesConfig(
            species=tuple(species_to_numbers(species)), epsilon=float(epsilon),
            sigma=float(sigma), cutoff=float(cutoff), onset=onset)

    def pair_energy(self, r2: torch.Tensor) -> torch.Tensor:
        """Switched pair energy, eV, from squared distances ``r2`` (Å²)."""
        c = self.config
        assert c.onset is not None  # the constructor always sets it
        sc, so = c.cutoff**2, c.onset**2
        inside = r2 < sc
        r2_safe = torch.where(inside, r2, torch.full_like(r2, sc))
        c6 = (c.sigma**2 / r2_safe) ** 3
        lj = 4.0 * c.epsilon * (c6 * c6 - c6)
        switch = (sc - r2_safe) ** 2 * (sc + 2.0 * r2_safe - 3.0 * so) / (sc - so) ** 3
        switch = torch.where(r2_safe < so, torch.ones_like(switch), switch)
        return torch.where(inside, lj * switch, torch.zeros_like(lj))

    def atomic_energies(
        self, graph: AtomicGraph, edge_vectors: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        r2 = (edge_vectors * edge_vectors).sum(-1)
        pair = self.pair_energy(r2)
        out = torch.zeros(graph.num_atoms, dtype=edge_vectors.dtype, device=edge_vectors.device)
        return out.index_add(0, graph.require_edges()[0][0], 0.5 * pair)
