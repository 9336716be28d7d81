"""Nosé–Hoover chain thermostat (NVT), time-reversible Trotter integration."""

from __future__ import annotations

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
from mlpot.md.state import MDState, extend_state
from mlpot.md.units import KB


@dataclass(frozen=True, kw_only=True)
class NoseHooverState(MDState):
    """:class:`MDState` plus the thermostat chain.

    Attributes:
        xi: ``[B, M]`` chain positions ξ_j (dimensionless).
        v_xi: ``[B, M]`` chain velocities dξ_j/dt, 1/fs.
    """

    xi: torch.Tensor
    v_xi: torch.Tensor


@dataclass(frozen=True)
class NoseHooverChain(Integrator):
    """Nosé–Hoover chains (Martyna, Klein & Tuckerman, J. Chem. Phys. 97, 2635 (1992)),
    integrated as in Martyna, Tuckerman, Tobias & Klein, Mol. Phys. 87, 1117 (1996).

    Equations of motion with M thermostats (ξ_j positions, v_j = dξ_j/dt):
    ṗ = F − v₁ p,  Q₁ v̇₁ = 2K − N_f k_B T − Q₁ v₁ v₂,
    Q_j v̇_j = Q_{j−1} v_{j−1}² − k_B T − Q_j v_j v_{j+1},  Q_M v̇_M = Q_{M−1} v_{M−1}² − k_B T,
    with Q₁ = N_f k_B T τ², Q_j = k_B T τ². Splitting:
    C(Δt/2) B(Δt/2) A(Δt) B(Δt/2) C(Δt/2), where C propagates the chain from the
    end inwards, scales p by exp(−v₁Δt/2), and goes back out. The conserved energy is
    E_pot + K + Σ Q_j v_j²/2 + N_f k_B T ξ₁ + k_B T Σ_{j≥2} ξ_j.

    Args:
        dt: time step, fs.
        temperature: target, K (scalar or one per system).
        tau: thermostat period, fs (default 100).
        chain_length: M (default 3).
    """

    dt: float
    temperature: float | torch.Tensor
    tau: float = 100.0
    chain_length: int = 3
    state_type = NoseHooverState

    def __post_init__(self) -> None:
        require_positive(self, dt="fs", tau="fs")
        if self.chain_length < 1:
            raise ValueError(f"NoseHooverChain: chain_length must be >= 1, got {self.chain_length}")

    def init(self, state: MDState) -> NoseHooverState:
        if isinstance(state, NoseHooverState):
            return state
        zeros = zeros_per_system(state, self.chain_length)
        return extend_state(state, NoseHooverState, xi=zeros, v_xi=zeros)

    def _masses(self, state: MDState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(k_B T [B], N_f [B], Q [B, M])."""
        kT = KB * per_system(self.temperature, state)
        nf = state.degrees_of_freedom()
        Q = (kT * self.tau**2)[:, None].repeat(1, self.chain_length)
        Q[:, 0] = Q[:, 0] * nf
        return kT, nf, Q

    @staticmethod
    def _force(j: int, K: torch.Tensor, kT: torch.Tensor, nf: torch.Tensor,
               Q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if j == 0:
            return (2 * K - nf * kT) / Q[:, 0]
        return (Q[:, j - 1] * v[:, j - 1] ** 2 - kT) / Q[:, j]

    def chain(self, state: NoseHooverState, dt: float) -> NoseHooverState:
        """C(dt): propagate the chain for ``dt`` and scale the momenta."""
        kT, nf, Q = self._masses(state)
        M, v = self.chain_length, state.v_xi.clone()
        K = state.kinetic_energy()
        h2, h4 = dt / 2, dt / 4
        v[:, M - 1] += self._force(M - 1, K, kT, nf, Q, v) * h2
        for j in range(M - 2, -1, -1):
            s = torch.exp(-v[:, j + 1] * h4)
            v[:, j] = (v[:, j] * s + self._force(j, K, kT, nf, Q, v) * h2) * s
        scale = torch.exp(-v[:, 0] * dt)
        momenta = state.momenta * scale[state.system_index, None]
        K = K * scale * scale
        xi = state.xi + v * dt
        for j in range(M - 1):
            s = torch.exp(-v[:, j + 1] * h4)
            v[:, j] = (v[:, j] * s + self._force(j, K, kT, nf, Q, v) * h2) * s
        v[:, M - 1] += self._force(M - 1, K, kT, nf, Q, v) * h2
        return state.replace(momenta=momenta, xi=xi, v_xi=v)

    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = False
             ) -> NoseHooverState:
        state, half = self.init(state), 0.5 * self.dt
        state = drift(kick(self.chain(state, half), half), self.dt)
        state = kick(update_forces(state, forces_fn, compute_stress), half)
        return advance_clock(self.chain(state, half), self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        state = self.init(state)
        kT, nf, Q = self._masses(state)
        return ((0.5 * Q * state.v_xi**2).sum(1) + nf * kT * state.xi[:, 0]
                + kT * state.xi[:, 1:].sum(1))
