"""The integrator interface and the Velocity-Verlet building blocks shared by all ensembles.

Every integrator is a small object with ``step(state, forces_fn) -> state``.
``forces_fn`` maps an :class:`~mlpot.graph.AtomicGraph` to a
:class:`~mlpot.models.PotentialOutput` (normally a :class:`mlpot.md.ForceField`).
The state entering ``step`` carries the forces at its positions; the state
returned carries the forces at the new positions. Per-system thermostat and
barostat variables live in the integrator and are saved with
``state_dict()`` / restored with ``load_state_dict()`` for restarts.

Splitting notation (Leimkuhler–Matthews): B is a momentum kick
p ← p + (Δt/MVV2E)·F, A a position drift r ← r + Δt·p/m, O a stochastic or
deterministic momentum update from a thermostat.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from mlpot.graph import AtomicGraph
from mlpot.md.state import MDState
from mlpot.md.units import MVV2E
from mlpot.models.base import PotentialOutput

ForcesFn = Callable[[AtomicGraph], PotentialOutput]


def kick(state: MDState, dt: float) -> MDState:
    """B: p ← p + Δt·F / MVV2E (F in eV/Å, Δt in fs)."""
    return state.replace(momenta=torch.add(state.momenta, state.forces, alpha=dt / MVV2E))


def drift(state: MDState, dt: float) -> MDState:
    """A: r ← r + Δt·p/m."""
    return state.with_positions(torch.addcmul(state.positions, state.momenta,
                                              state.inverse_masses(), value=dt))


def update_forces(state: MDState, forces_fn: ForcesFn) -> MDState:
    """Evaluate ``forces_fn`` at the state's positions and store energy/forces/stress."""
    out = forces_fn(state.graph)
    dtype = state.momenta.dtype
    return state.replace(energy=_plain(out.energy, dtype), forces=_plain(out.forces, dtype),
                         stress=None if out.stress is None else _plain(out.stress, dtype))


def _plain(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` detached and in ``dtype`` (no new tensor when it already is)."""
    if t.requires_grad:
        t = t.detach()
    return t if t.dtype == dtype else t.to(dtype)


def advance_clock(state: MDState, dt: float) -> MDState:
    """Count one step of length ``dt`` fs."""
    return state.replace(step=state.step + 1, time=state.time + dt)


def per_system(value: float | torch.Tensor, state: MDState) -> torch.Tensor:
    """A scalar or ``[B]`` parameter as a ``[B]`` tensor of the state's dtype/device."""
    t = torch.as_tensor(value, dtype=state.momenta.dtype, device=state.momenta.device)
    return t.expand(state.num_systems).clone()


class Integrator(ABC):
    """Advances an :class:`MDState` by one time step ``dt`` (fs).

    Attributes:
        dt: time step, fs.
        stochastic: whether ``step`` draws from the state's generators (the MD loop
            then saves their states before each step, to roll back an interrupted one).
    """

    dt: float
    stochastic: bool = True

    @abstractmethod
    def step(self, state: MDState, forces_fn: ForcesFn) -> MDState:
        """One step: returns the new state with forces at the new positions."""

    def conserved_energy(self, state: MDState) -> torch.Tensor:
        """``[B]`` quantity the exact dynamics conserves, eV: E_pot + E_kin + the
        reservoir term."""
        return state.energy + state.kinetic_energy() + self.reservoir_energy(state)

    def reservoir_energy(self, state: MDState) -> torch.Tensor | float:
        """``[B]`` energy a thermostat/barostat holds or has taken out, eV (0 for NVE)."""
        return 0.0

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Per-system internal variables (thermostat/barostat) for restart files."""
        return {}

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Restore what :meth:`state_dict` returned (nothing to restore by default)."""
