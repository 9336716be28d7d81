"""`MDState`: many independent systems advanced together as one batched AtomicGraph.

Momenta are stored (amu·Å/fs), velocities derived. Positions are kept *unwrapped*
(atoms are never folded back into the cell), so neighbour lists, MSD and restarts
see continuous trajectories. A state is never modified in place: every step makes
new tensors, so keeping the previous state is a complete rollback. Each ensemble
extends the state with its own dynamic variables (see :mod:`mlpot.md.integrators`).
Random numbers are a pure function of (``seeds[b]``, step, stream) (see
:mod:`mlpot.md.noise`), so a system gives the same trajectory alone or in a batch.
Derived quantities (kinetic energy, temperature, volume) are computed on each call;
nothing is cached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import ase
import numpy as np
import torch

from mlpot.graph import AtomicGraph, system_sum
from mlpot.kernels.kinetic import kinetic_energy
from mlpot.md.noise import normals_per_atom
from mlpot.md.units import KB, MVV2E

S = TypeVar("S", bound="MDState")


@dataclass(frozen=True)
class MDState:
    """Batched MD state (immutable: :meth:`replace` makes a new one).

    Attributes:
        graph: the systems (unwrapped ``positions [N, 3]`` Å, ``cell [B, 3, 3]`` Å,
            species, ``system_index``, pbc, charge, spin); no edges.
        momenta: ``[N, 3]`` amu·Å/fs.
        masses: ``[N]`` amu.
        energy: ``[B]`` potential energy at ``positions``, eV.
        forces: ``[N, 3]`` eV/Å at ``positions``.
        stress: ``[B, 3, 3]`` eV/Å³ (ASE sign) or None when not computed.
        seeds: ``[B]`` int64, each system's random stream (with ``step``).
        step: number of steps taken.
        time: simulated time, fs.
    """

    graph: AtomicGraph
    momenta: torch.Tensor
    masses: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor | None
    seeds: torch.Tensor
    step: int = 0
    time: float = 0.0

    # ------------------------------------------------------------ accessors
    @property
    def positions(self) -> torch.Tensor:
        """``[N, 3]`` unwrapped positions, Å."""
        return self.graph.positions

    @property
    def cell(self) -> torch.Tensor:
        """``[B, 3, 3]`` lattice vectors as rows, Å."""
        return self.graph.cell

    @property
    def system_index(self) -> torch.Tensor:
        """``[N]`` system of each atom."""
        return self.graph.system_index

    @property
    def num_systems(self) -> int:
        return self.graph.num_systems

    @property
    def num_atoms(self) -> int:
        return self.graph.num_atoms

    @property
    def velocities(self) -> torch.Tensor:
        """``[N, 3]`` Å/fs."""
        return self.momenta / self.masses[:, None]

    def replace(self: S, **changes: Any) -> S:
        """A copy with some fields replaced (the tensors themselves are shared)."""
        return dataclasses.replace(self, **changes)

    def with_positions(self: S, positions: torch.Tensor, cell: torch.Tensor | None = None
                       ) -> S:
        """A copy with new positions (and optionally a new cell) of the same shapes."""
        return self.replace(graph=self.graph.with_positions(positions, cell))

    # ------------------------------------------------------- thermodynamics
    def sum_per_system(self, values: torch.Tensor) -> torch.Tensor:
        """Per-atom ``values [N, ...]`` summed per system, ``[B, ...]``."""
        return system_sum(values, self.system_index, self.num_systems)

    def degrees_of_freedom(self) -> torch.Tensor:
        """``[B]`` kinetic degrees of freedom, 3N − 3 (total momentum is conserved at 0)."""
        n = self.graph.atoms_per_system.to(self.momenta.dtype)
        return torch.where(n > 1, 3 * n - 3, 3 * n)

    def kinetic_energy(self) -> torch.Tensor:
        """``[B]`` kinetic energy, eV."""
        return kinetic_energy(self.momenta, self.masses, self.system_index,
                              self.num_systems) * MVV2E

    def volume(self) -> torch.Tensor:
        """``[B]`` cell volume, Å³ (0 without a cell)."""
        return self.graph.volume()

    def kinetic_tensor(self) -> torch.Tensor:
        """``[B, 3, 3]`` Σ p_a p_b / m per system, eV."""
        outer = self.momenta[:, :, None] * self.momenta[:, None, :] / self.masses[:, None, None]
        return self.sum_per_system(outer) * MVV2E

    def temperature(self) -> torch.Tensor:
        """``[B]`` instantaneous temperature 2K / (N_f k_B), K."""
        return 2 * self.kinetic_energy() / (self.degrees_of_freedom() * KB)

    def pressure_tensor(self) -> torch.Tensor:
        """``[B, 3, 3]`` instantaneous pressure (kinetic/V − stress), eV/Å³ (NaN without stress)."""
        if self.stress is None:
            return torch.full_like(self.cell, float("nan"))
        return self.kinetic_tensor() / self.volume()[:, None, None] - self.stress

    def pressure(self) -> torch.Tensor:
        """``[B]`` instantaneous pressure, eV/Å³ (NaN without stress)."""
        return torch.diagonal(self.pressure_tensor(), dim1=1, dim2=2).mean(1)

    # --------------------------------------------------------- construction
    @classmethod
    def from_atoms(
        cls,
        atoms: ase.Atoms | Sequence[ase.Atoms],
        seed: int | Sequence[int] = 0,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> MDState:
        """State from structures; masses from ASE, momenta from their velocities (or 0).

        Forces are zero until a force function fills them (see
        :meth:`mlpot.md.ForceField.evaluate`). ``seed`` is one int (system ``b`` gets
        ``seed + b``) or one seed per system.
        """
        atoms_list = [atoms] if isinstance(atoms, ase.Atoms) else list(atoms)
        graph = AtomicGraph.from_atoms(atoms_list, dtype=dtype, device=device,
                                       read_labels=False)
        masses = torch.as_tensor(np.concatenate([a.get_masses() for a in atoms_list]),
                                 dtype=dtype, device=device)
        if bool((masses <= 0).any()):
            raise ValueError("all atoms need a positive mass")
        velocities = graph.velocities if graph.velocities is not None else torch.zeros_like(
            graph.positions)
        seeds = ([int(seed) + b for b in range(len(atoms_list))] if isinstance(seed, int)
                 else [int(s) for s in seed])
        if len(seeds) != len(atoms_list):
            raise ValueError(f"got {len(seeds)} seeds for {len(atoms_list)} systems")
        return cls(
            graph=graph.replace(velocities=None), momenta=velocities * masses[:, None],
            masses=masses, energy=torch.zeros(len(atoms_list), dtype=dtype, device=device),
            forces=torch.zeros_like(graph.positions), stress=None,
            seeds=torch.tensor(seeds, dtype=torch.int64, device=device))

    def to_atoms(self) -> list[ase.Atoms]:
        """One :class:`ase.Atoms` per system, with velocities, energy, forces (and stress)."""
        graph = self.graph.replace(velocities=self.velocities, energy=self.energy,
                                   forces=self.forces, stress=self.stress)
        return graph.to_atoms()


def extend_state(state: MDState, cls: type[S], **variables: torch.Tensor) -> S:
    """``state`` as an ensemble state ``cls`` with its extra ``variables``."""
    values: dict[str, Any] = {f.name: getattr(state, f.name) for f in fields(MDState)}
    values.update(variables)
    return cls(**values)


def remove_total_momentum(state: MDState, momenta: torch.Tensor) -> torch.Tensor:
    """Subtract m_i·(Σp / Σm) per system so every system's total momentum is zero.

    Systems of one atom are left alone.
    """
    total_p = state.sum_per_system(momenta)
    total_m = state.sum_per_system(state.masses)
    single = (state.graph.atoms_per_system <= 1)[:, None]
    v_com = torch.where(single, torch.zeros_like(total_p), total_p / total_m[:, None])
    return momenta - state.masses[:, None] * v_com.index_select(0, state.system_index)


#: stream id of the initial velocities (integrators use small ids of their own).
MAXWELL_BOLTZMANN_STREAM = 99


def maxwell_boltzmann(state: S, temperature: float | torch.Tensor, exact: bool = True) -> S:
    """Momenta drawn from Maxwell–Boltzmann at ``temperature`` (K, scalar or ``[B]``).

    p_i = sqrt(m_i k_B T / MVV2E) ξ_i, ξ ~ N(0, 1) from each system's stream,
    then the total momentum is removed and (``exact``) momenta are rescaled so each
    system's instantaneous temperature equals T.
    """
    T = torch.as_tensor(temperature, dtype=state.momenta.dtype, device=state.momenta.device)
    T = T.expand(state.num_systems)
    if bool((T < 0).any()):
        raise ValueError(f"temperature must be >= 0 K, got {T.tolist()}")
    kT = (KB * T / MVV2E)[state.system_index]
    xi = normals_per_atom(state.seeds, state.step, MAXWELL_BOLTZMANN_STREAM,
                          state.graph.atoms_per_system, state.momenta.dtype)
    p = remove_total_momentum(state, torch.sqrt(state.masses * kT)[:, None] * xi)
    new = state.replace(momenta=p)
    if exact:
        current = new.temperature()
        factor = torch.where(current > 0, torch.sqrt(T / current), torch.zeros_like(T))
        new = new.replace(momenta=p * factor[state.system_index, None])
    return new
