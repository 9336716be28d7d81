"""`Potential`: the base class of every mlpot model.

A subclass maps an :class:`~mlpot.graph.AtomicGraph` to per-atom energies
(:meth:`Potential.atomic_energies`). The base class adds per-element reference
energies E0 and a scale/shift, and derives total energy, forces and stress in
one autograd pass (:func:`energy_forces_stress`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from ase.data import atomic_numbers as _symbol_to_z
from ase.data import chemical_symbols

from mlpot.graph import AtomicGraph, system_sum
from mlpot.models.references import SystemReferences
from mlpot.models.repulsion import ZBLRepulsion
from mlpot.neighbors import with_neighbors


@dataclass(frozen=True)
class PotentialOutput:
    """What a potential predicts for a batch.

    Attributes:
        energy: ``[B]`` total energy per system, eV.
        energies: ``[N]`` per-atom energies (E0 included), eV.
        forces: ``[N, 3]`` eV/Å, or None when not requested.
        stress: ``[B, 3, 3]`` σ = (1/V) ∂E/∂ε, ASE sign, eV/Å³, or None when not
            requested; NaN for systems without a 3-D cell (zero volume).
    """

    energy: torch.Tensor
    energies: torch.Tensor
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None


def species_to_numbers(species: Sequence[int | str]) -> list[int]:
    """Element symbols or atomic numbers → sorted unique atomic numbers."""
    out = set()
    for s in species:
        if isinstance(s, str):
            if s not in _symbol_to_z:
                raise ValueError(f"unknown element symbol {s!r}")
            out.add(_symbol_to_z[s])
        else:
            z = int(s)
            if not 1 <= z < len(chemical_symbols):
                raise ValueError(f"invalid atomic number {z}")
            out.add(z)
    if not out:
        raise ValueError("a potential needs at least one species")
    return sorted(out)


class Potential(torch.nn.Module):
    """Base class: per-atom energies in, energy/forces/stress out.

    Subclasses set ``self.config`` (a dataclass with a ``species`` and a
    ``cutoff`` field, saved in checkpoints) and implement
    :meth:`atomic_energies`.

    Buffers:
        species_numbers: ``[S]`` atomic numbers the model knows, sorted.
        species_lookup: ``[119]`` map atomic number → species index (-1 = unknown).
        e0: ``[S]`` per-element reference energies, eV.
        scale, shift: scalars applied to the learned per-atom energy, eV.

    Attributes:
        repulsion: a fixed short-range prior added to the per-atom energies after
            scale/shift (:class:`~mlpot.models.repulsion.ZBLRepulsion`), or None;
            subclasses set it from a ``pair_repulsion`` option.
        system_references: per-system energies of the total charge and spin
            multiplicity (:class:`~mlpot.models.references.SystemReferences`), or None;
            subclasses whose inputs include charge and spin set it from a
            ``system_references`` option, and check the range in ``atomic_energies``
            (:func:`~mlpot.models.references.check_charge_spin`; the module trusts it).
    """

    config: Any  # a dataclass (saved in checkpoints); subclasses name its type
    #: Constructor arguments added after checkpoints of the class were first written,
    #: each with the value that rebuilds such an older checkpoint unchanged;
    #: :func:`~mlpot.checkpoint.load_model` uses it where a saved config lacks the key.
    legacy_config: ClassVar[dict[str, Any]] = {}
    species_numbers: torch.Tensor
    species_lookup: torch.Tensor
    e0: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, species: Sequence[int | str], cutoff: float) -> None:
        super().__init__()
        numbers = species_to_numbers(species)
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.cutoff = float(cutoff)
        lookup = torch.full((len(chemical_symbols),), -1, dtype=torch.int64)
        lookup[torch.tensor(numbers)] = torch.arange(len(numbers))
        self.register_buffer("species_numbers", torch.tensor(numbers, dtype=torch.int64))
        self.register_buffer("species_lookup", lookup)
        self.register_buffer("e0", torch.zeros(len(numbers)))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))
        self.repulsion: ZBLRepulsion | None = None
        self.system_references: SystemReferences | None = None

    @property
    def species(self) -> list[str]:
        """Element symbols of the model, sorted by atomic number."""
        return [chemical_symbols[int(z)] for z in self.species_numbers]

    @property
    def dtype(self) -> torch.dtype:
        return self.e0.dtype

    def set_reference_energies(self, e0: dict[str, float] | torch.Tensor) -> None:
        """Set E0 (eV) from ``{symbol: energy}`` or a ``[S]`` tensor in species order."""
        if isinstance(e0, dict):
            missing = set(self.species) - set(e0)
            if missing:
                raise ValueError(f"reference energies missing for {sorted(missing)}")
            e0 = torch.tensor([e0[s] for s in self.species], dtype=torch.float64)
        self.e0.copy_(torch.as_tensor(e0, dtype=self.e0.dtype))

    def species_index(self, graph: AtomicGraph) -> torch.Tensor:
        """``[N]`` species index of every atom; unknown elements raise ``ValueError``."""
        z = graph.atomic_numbers
        idx = self.species_lookup[z.clamp(0, len(chemical_symbols) - 1)]
        bad = (idx < 0) | (z >= len(chemical_symbols))
        if bool(bad.any()):
            n = int(bad.nonzero()[0, 0])
            zn = int(z[n])
            name = chemical_symbols[zn] if zn < len(chemical_symbols) else f"Z={zn}"
            raise ValueError(
                f"element {name} (atom {n}, system {int(graph.system_index[n])}) is not "
                f"supported by this model; it knows {self.species}")
        return idx

    def atomic_energies(
        self, graph: AtomicGraph, edge_vectors: torch.Tensor, species: torch.Tensor
    ) -> torch.Tensor:
        """Learned per-atom energies ``[N]``, eV, before scale/shift and E0.

        Args:
            graph: batch with ``edge_index``; its positions and shifts are the
                (possibly strained) differentiable ones.
            edge_vectors: ``[E, 3]`` ``r_j - r_i + shift``, Å.
            species: ``[N]`` species indices.
        """
        raise NotImplementedError

    def forward(
        self,
        graph: AtomicGraph,
        compute_forces: bool = True,
        compute_stress: bool = False,
        training: bool = False,
    ) -> PotentialOutput:
        """Energy, forces (−∂E/∂r) and stress ((1/V) ∂E/∂ε) of a batch."""
        return energy_forces_stress(self, graph, compute_forces, compute_stress, training)


def energy_forces_stress(
    model: Potential,
    graph: AtomicGraph,
    compute_forces: bool = True,
    compute_stress: bool = False,
    training: bool = False,
) -> PotentialOutput:
    """The single autograd routine behind every potential.

    Positions, shifts and cell are deformed by a symmetric strain ε (zero-valued
    but differentiable): r' = r (1 + ε). Then F = −∂E/∂r and σ = (1/V) ∂E/∂ε at
    ε = 0. ``training`` keeps the graph (``create_graph``) for force/stress losses.
    """
    if graph.dtype != model.dtype or graph.device != model.e0.device:
        graph = graph.to(model.e0.device, model.dtype)
    if graph.edge_index is None:
        graph = with_neighbors(graph, model.cutoff)
    species = model.species_index(graph)
    positions = graph.positions.detach().requires_grad_(compute_forces)
    strain = torch.zeros(graph.num_systems, 3, 3, dtype=graph.dtype, device=graph.device,
                         requires_grad=compute_stress)
    sym = 0.5 * (strain + strain.transpose(1, 2))
    edge_index, shifts = graph.require_edges()
    cell = graph.cell
    if compute_stress:
        positions_s = positions + torch.einsum("ni,nij->nj", positions, sym[graph.system_index])
        edge_sys = graph.system_index[edge_index[0]]
        shifts = shifts + torch.einsum("ei,eij->ej", shifts, sym[edge_sys])
        cell = cell + cell @ sym
    else:
        positions_s = positions
    g = graph.replace(positions=positions_s, shifts=shifts, cell=cell)
    i, j = g.require_edges()[0]
    # index_select: the same values as positions_s[j], about 20 % faster for a cheap model
    edge_vectors = positions_s.index_select(0, j) - positions_s.index_select(0, i) + shifts
    learned = model.atomic_energies(g, edge_vectors, species)
    energies = learned * model.scale + model.shift + model.e0[species]
    if model.repulsion is not None:
        energies = energies + model.repulsion(edge_vectors, edge_index, species)
    energy = system_sum(energies, graph.system_index, graph.num_systems)
    if model.system_references is not None:
        # a constant per system; shared by its atoms so the per-atom energies add up
        per_system = model.system_references(graph.charge, graph.spin).to(energy.dtype)
        energy = energy + per_system
        share = per_system / graph.atoms_per_system.clamp_min(1).to(energy.dtype)
        energies = energies + share[graph.system_index]
    inputs = [t for t, need in ((positions, compute_forces), (strain, compute_stress)) if need]
    forces = stress = None
    if inputs:
        grads = torch.autograd.grad(energy.sum(), inputs, create_graph=training,
                                    allow_unused=True)
        grads = tuple(torch.zeros_like(x) if gr is None else gr for x, gr in zip(inputs, grads,
                                                                          strict=True))
        if compute_forces:
            forces = -grads[0]
        if compute_stress:
            volume = graph.volume()
            safe = torch.where(volume > 0, volume, torch.ones_like(volume))
            stress = grads[-1] / safe[:, None, None]
            stress = torch.where((volume > 0)[:, None, None], stress,
                                 torch.full_like(stress, float("nan")))
    if not training:
        energy, energies = energy.detach(), energies.detach()
    return PotentialOutput(energy=energy, energies=energies, forces=forces, stress=stress)
