"""The integrator interface and the Velocity-Verlet building blocks shared by all ensembles.

Integrators are stateless: an integrator object holds only its parameters (time
step, targets, time constants). ``init(state)`` extends a plain
:class:`~mlpot.md.MDState` with the ensemble's dynamic variables (thermostat chain,
reservoir energies, barostat work), and ``step(state, forces_fn)`` maps that state to
the next one. Everything a restart or a rollback needs is therefore in the state.

``forces_fn(graph, compute_stress)`` maps an :class:`~mlpot.graph.AtomicGraph` to a
:class:`~mlpot.models.PotentialOutput` (normally a :class:`mlpot.md.ForceField`).
The state entering ``step`` carries the forces at its positions; the state returned
carries the forces at the new positions (and the stress when asked for, or when the
ensemble needs it).

Splitting notation (Leimkuhler–Matthews): B is a momentum kick
p ← p + (Δt/MVV2E)·F, A a position drift r ← r + Δt·p/m, O a stochastic or
deterministic momentum update from a thermostat.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch

from mlpot.graph import AtomicGraph
from mlpot.md.state import MDState, S
from mlpot.md.units import MVV2E
from mlpot.models.base import PotentialOutput


class ForcesFn(Protocol):
    """Energy, forces (and, when asked, stress) of a batch of systems."""

    def __call__(self, graph: AtomicGraph, compute_stress: bool = False) -> PotentialOutput: ...


def kick(state: S, dt: float) -> S:
    """B: p ← p + Δt·F / MVV2E (F in eV/Å, Δt in fs)."""
    return state.replace(momenta=torch.add(state.momenta, state.forces, alpha=dt / MVV2E))


def drift(state: S, dt: float) -> S:
    """A: r ← r + Δt·p/m."""
    return state.with_positions(torch.addcmul(state.positions, state.momenta,
                                              (1.0 / state.masses)[:, None], value=dt))


def update_forces(state: S, forces_fn: ForcesFn, compute_stress: bool = False) -> S:
    """Evaluate ``forces_fn`` at the state's positions and store energy/forces/stress."""
    out = forces_fn(state.graph, compute_stress)
    if out.forces is None:
        raise ValueError("the forces function returned no forces")
    dtype = state.momenta.dtype
    return state.replace(energy=_plain(out.energy, dtype), forces=_plain(out.forces, dtype),
                         stress=None if out.stress is None else _plain(out.stress, dtype))


def _plain(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` detached and in ``dtype`` (no new tensor when it already is)."""
    if t.requires_grad:
        t = t.detach()
    return t if t.dtype == dtype else t.to(dtype)


def advance_clock(state: S, dt: float) -> S:
    """Count one step of length ``dt`` fs."""
    return state.replace(step=state.step + 1, time=state.time + dt)


def per_system(value: float | torch.Tensor, state: MDState) -> torch.Tensor:
    """A scalar or ``[B]`` parameter as a ``[B]`` tensor of the state's dtype/device."""
    t = torch.as_tensor(value, dtype=state.momenta.dtype, device=state.momenta.device)
    return t.expand(state.num_systems).clone()


def zeros_per_system(state: MDState, *shape: int) -> torch.Tensor:
    """``[B, *shape]`` zeros of the state's dtype and device."""
    return torch.zeros((state.num_systems, *shape), dtype=state.momenta.dtype,
                       device=state.momenta.device)


def require_positive(params: object, **units: str) -> None:
    """Raise ValueError unless each named field of ``params`` is > 0 (NaN fails too).

    Args:
        params: the object holding the fields (an integrator's parameters).
        units: field name → its unit, for the message, in the order to check them,
            e.g. ``require_positive(self, dt="fs", tau="fs")``.
    """
    for name, unit in units.items():
        value = getattr(params, name)
        if not value > 0:
            raise ValueError(f"{type(params).__name__}: {name} must be positive, "
                             f"got {value} {unit}")


class Integrator(ABC):
    """Advances an :class:`MDState` by one time step ``dt`` (fs); holds parameters only.

    Attributes:
        dt: time step, fs.
        state_type: the state class this ensemble runs on.
    """

    dt: float
    state_type: type[MDState] = MDState

    def init(self, state: MDState) -> MDState:
        """``state`` with this ensemble's variables (zero-initialised; a state of the
        right type is returned unchanged)."""
        return state

    @abstractmethod
    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = False
             ) -> MDState:
        """One step: the new state with forces (and, if asked, stress) at the new positions."""

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        """``[B]`` energy the thermostat/barostat holds or has taken out, eV (0 for NVE)."""
        return torch.zeros_like(state.energy)

    def conserved_energy(self, state: MDState) -> torch.Tensor:
        """``[B]`` quantity the exact dynamics conserves, eV: E_pot + E_kin + the
        reservoir term."""
        return state.energy + state.kinetic_energy() + self.reservoir_energy(state)
