"""`MDState`: many independent systems advanced together as one batched AtomicGraph.

Momenta are stored (amu·Å/fs), velocities derived. Positions are kept *unwrapped*
(atoms are never folded back into the cell), so neighbour lists, MSD and restarts
see continuous trajectories. Every system owns its random-number generator, so a
system gives the same trajectory whether it runs alone or inside a batch.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import ase
import numpy as np
import torch

from mlpot.graph import AtomicGraph
from mlpot.kernels.kinetic import kinetic_energy
from mlpot.md.units import KB, MVV2E


def system_sum(values: torch.Tensor, system_index: torch.Tensor, num_systems: int
               ) -> torch.Tensor:
    """Sum per-atom ``values [N, ...]`` into per-system ``[B, ...]``."""
    out = torch.zeros((num_systems, *values.shape[1:]), dtype=values.dtype,
                      device=values.device)
    return out.index_add(0, system_index, values)


@dataclass
class MDState:
    """Batched MD state.

    Attributes:
        graph: the systems (unwrapped ``positions [N, 3]`` Å, ``cell [B, 3, 3]`` Å,
            species, ``system_index``, pbc, charge, spin); no edges.
        momenta: ``[N, 3]`` amu·Å/fs.
        masses: ``[N]`` amu.
        energy: ``[B]`` potential energy at ``positions``, eV.
        forces: ``[N, 3]`` eV/Å at ``positions``.
        stress: ``[B, 3, 3]`` eV/Å³ (ASE sign) or None when not computed.
        generators: one ``torch.Generator`` per system (on the state's device).
        step: number of steps taken.
        time: simulated time, fs.
    """

    graph: AtomicGraph
    momenta: torch.Tensor
    masses: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor | None
    generators: list[torch.Generator] = field(repr=False)
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

    def inverse_masses(self) -> torch.Tensor:
        """``[N, 3]`` 1/m per coordinate, amu⁻¹."""
        return self._derived("_inverse_masses", (self.masses,),
                             lambda: (1.0 / self.masses)[:, None].expand(-1, 3).contiguous())

    def _derived(self, name: str, sources: tuple[object, ...],
                 make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``make()``, computed once and carried along by :meth:`replace` (which copies
        the attribute dict) while every one of ``sources`` is the same object."""
        cached = self.__dict__.get(name)
        if cached is None or not all(map(operator.is_, cached[0], sources)):
            cached = (sources, make())
            self.__dict__[name] = cached
        return cached[1]

    def replace(self, **changes: object) -> MDState:
        """A shallow copy with some fields replaced (called several times per MD step,
        so it copies the attribute dict instead of going through ``dataclasses.replace``)."""
        if not _FIELD_NAMES.issuperset(changes):
            raise TypeError(f"MDState has no field(s) {sorted(changes.keys() - _FIELD_NAMES)}")
        new = object.__new__(MDState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def with_positions(self, positions: torch.Tensor, cell: torch.Tensor | None = None
                       ) -> MDState:
        """A copy with new positions (and optionally a new cell) of the same shapes."""
        return self.replace(graph=self.graph.with_positions(positions, cell))

    # ------------------------------------------------------- thermodynamics
    def sum_per_system(self, values: torch.Tensor) -> torch.Tensor:
        """Per-atom ``values [N, ...]`` summed per system, ``[B, ...]``."""
        return system_sum(values, self.system_index, self.num_systems)

    def degrees_of_freedom(self) -> torch.Tensor:
        """``[B]`` kinetic degrees of freedom, 3N − 3 (total momentum is conserved at 0)."""
        counts, dtype = self.graph.atoms_per_system, self.momenta.dtype

        def make() -> torch.Tensor:
            n = counts.to(dtype)
            return torch.where(n > 1, 3 * n - 3, 3 * n)

        return self._derived("_degrees_of_freedom", (counts, dtype), make)

    def kinetic_energy(self) -> torch.Tensor:
        """``[B]`` kinetic energy, eV (computed once per momenta tensor: the MD loop's
        check, the thermostat and the log of a step share it)."""
        return self._derived("_kinetic_energy", self._kinetic_sources(), lambda: (
            kinetic_energy(self.momenta, self.masses, self.system_index,
                           self.num_systems) * MVV2E))

    def _kinetic_sources(self) -> tuple[object, ...]:
        """What E_kin and T depend on (the keys of their caches)."""
        return self.momenta, self.masses, self.graph.system_index

    def volume(self) -> torch.Tensor:
        """``[B]`` cell volume, Å³ (0 without a cell; computed once per cell tensor)."""
        return self._derived("_volume", (self.cell,), self.graph.volume)

    def kinetic_tensor(self) -> torch.Tensor:
        """``[B, 3, 3]`` Σ p_a p_b / m per system, eV."""
        outer = self.momenta[:, :, None] * self.momenta[:, None, :] / self.masses[:, None, None]
        return self.sum_per_system(outer) * MVV2E

    def temperature(self) -> torch.Tensor:
        """``[B]`` instantaneous temperature 2K / (N_f k_B), K (cached like E_kin: the
        blow-up check and the log of a step share it)."""
        return self._derived("_temperature", self._kinetic_sources(), lambda: (
            2 * self.kinetic_energy() / (self.degrees_of_freedom() * KB)))

    def pressure_tensor(self) -> torch.Tensor:
        """``[B, 3, 3]`` instantaneous pressure (kinetic/V − stress), eV/Å³ (NaN without stress)."""
        if self.stress is None:
            return torch.full_like(self.cell, float("nan"))
        return self.kinetic_tensor() / self.volume()[:, None, None] - self.stress

    def pressure(self) -> torch.Tensor:
        """``[B]`` instantaneous pressure, eV/Å³ (NaN without stress)."""
        return torch.diagonal(self.pressure_tensor(), dim1=1, dim2=2).mean(1)

    # -------------------------------------------------------------- random
    def normal_per_atom(self) -> torch.Tensor:
        """``[N, 3]`` standard normals, each system drawn from its own generator."""
        counts = self.graph.atoms_per_system.tolist()
        return torch.cat([
            torch.randn(n, 3, generator=g, dtype=self.momenta.dtype, device=self.momenta.device)
            for n, g in zip(counts, self.generators, strict=True)])

    def normal_per_system(self, shape: Sequence[int] = ()) -> torch.Tensor:
        """``[B, *shape]`` standard normals, one draw per system generator."""
        return torch.stack([
            torch.randn(tuple(shape), generator=g, dtype=self.momenta.dtype,
                        device=self.momenta.device) for g in self.generators])

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
            generators=make_generators(seeds, device))

    def to_atoms(self) -> list[ase.Atoms]:
        """One :class:`ase.Atoms` per system, with velocities, energy, forces (and stress)."""
        graph = self.graph.replace(velocities=self.velocities, energy=self.energy,
                                   forces=self.forces, stress=self.stress)
        return graph.to_atoms()


_FIELD_NAMES = frozenset(f.name for f in fields(MDState))


def make_generators(seeds: Sequence[int], device: torch.device | str) -> list[torch.Generator]:
    """One seeded generator per system on ``device``."""
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def remove_total_momentum(state: MDState, momenta: torch.Tensor) -> torch.Tensor:
    """Subtract m_i·(Σp / Σm) per system so every system's total momentum is zero.

    Systems of one atom are left alone.
    """
    total_p = state.sum_per_system(momenta)
    total_m = state.sum_per_system(state.masses)
    single = (state.graph.atoms_per_system <= 1)[:, None]
    v_com = torch.where(single, torch.zeros_like(total_p), total_p / total_m[:, None])
    return momenta - state.masses[:, None] * v_com[state.system_index]


def maxwell_boltzmann(state: MDState, temperature: float | torch.Tensor,
                      exact: bool = True) -> MDState:
    """Momenta drawn from Maxwell–Boltzmann at ``temperature`` (K, scalar or ``[B]``).

    p_i = sqrt(m_i k_B T / MVV2E) ξ_i, ξ ~ N(0, 1) from each system's generator,
    then the total momentum is removed and (``exact``) momenta are rescaled so each
    system's instantaneous temperature equals T.
    """
    T = torch.as_tensor(temperature, dtype=state.momenta.dtype, device=state.momenta.device)
    T = T.expand(state.num_systems)
    if bool((T < 0).any()):
        raise ValueError(f"temperature must be >= 0 K, got {T.tolist()}")
    kT = (KB * T / MVV2E)[state.system_index]
    p = torch.sqrt(state.masses * kT)[:, None] * state.normal_per_atom()
    p = remove_total_momentum(state, p)
    new = state.replace(momenta=p)
    if exact:
        current = new.temperature()
        factor = torch.where(current > 0, torch.sqrt(T / current), torch.zeros_like(T))
        new = new.replace(momenta=p * factor[state.system_index, None])
    return new
