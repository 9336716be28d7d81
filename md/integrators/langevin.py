"""Langevin dynamics (NVT), BAOAB splitting."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mlpot.md.integrators.base import (
    ForcesFn,
    Integrator,
    advance_clock,
    drift,
    kick,
    per_system,
    require_positive,
    update_forces,
    zeros_per_system,
)
from mlpot.md.noise import normals_per_atom
from mlpot.md.state import MDState, extend_state, remove_total_momentum
from mlpot.md.units import KB, MVV2E

#: stream id of the O step's noise (see :mod:`mlpot.md.noise`).
O_STREAM = 1


@dataclass(frozen=True, kw_only=True)
class LangevinState(MDState):
    """:class:`MDState` plus the thermostat's bookkeeping.

    Attributes:
        heat: ``[B]`` energy removed from the systems by the O steps so far, eV.
    """

    heat: torch.Tensor


@dataclass(frozen=True)
class Langevin(Integrator):
    """BAOAB Langevin integrator (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34;
    J. Chem. Phys. 138, 174102 (2013)).

    dp = F dt − γ p dt + sqrt(2 γ m k_B T) dW, split as
    B(Δt/2) A(Δt/2) O(Δt) A(Δt/2) B(Δt/2) with the exact Ornstein–Uhlenbeck step
    O: p ← c₁ p + sqrt((1 − c₁²) m k_B T) ξ, c₁ = exp(−γΔt).
    The noise of each system is projected onto zero total momentum
    (ξ_i → ξ_i − m_i Σξ/Σm in momentum units), which samples the canonical
    distribution restricted to P = 0, so the kinetic degrees of freedom are 3N − 3
    as for the other integrators. The conserved quantity is E_pot + E_kin + heat.

    Args:
        dt: time step, fs.
        temperature: target, K (scalar or one per system).
        friction: γ, 1/fs (default 0.01, i.e. 100 fs).
    """

    dt: float
    temperature: float | torch.Tensor
    friction: float = 0.01
    state_type = LangevinState

    def __post_init__(self) -> None:
        require_positive(self, dt="fs", friction="1/fs")

    def init(self, state: MDState) -> LangevinState:
        if isinstance(state, LangevinState):
            return state
        return extend_state(state, LangevinState, heat=zeros_per_system(state))

    def o_step(self, state: LangevinState) -> LangevinState:
        """O(Δt): exact Ornstein–Uhlenbeck update of the momenta, heat booked."""
        c1 = math.exp(-self.friction * self.dt)
        T = per_system(self.temperature, state).index_select(0, state.system_index)
        sigma = torch.sqrt((1 - c1 * c1) * state.masses * KB * T / MVV2E)
        xi = normals_per_atom(state.seeds, state.step, O_STREAM, state.graph.atoms_per_system,
                              state.momenta.dtype)
        noise = remove_total_momentum(state, sigma[:, None] * xi)
        new = state.replace(momenta=c1 * state.momenta + noise)
        return new.replace(heat=state.heat + state.kinetic_energy() - new.kinetic_energy())

    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = False
             ) -> LangevinState:
        state, half = self.init(state), 0.5 * self.dt
        state = drift(kick(state, half), half)
        state = drift(self.o_step(state), half)
        state = kick(update_forces(state, forces_fn, compute_stress), half)
        return advance_clock(state, self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        return self.init(state).heat
