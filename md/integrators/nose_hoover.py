"""Nosé–Hoover chain thermostat (NVT), time-reversible Trotter integration."""

from __future__ import annotations

import torch

from mlpot.md.integrators.base import (
    ForcesFn,
    Integrator,
    advance_clock,
    drift,
    kick,
    per_system,
    update_forces,
)
from mlpot.md.state import MDState
from mlpot.md.units import KB


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

    stochastic = False

    def __init__(self, dt: float, temperature: float | torch.Tensor, tau: float = 100.0,
                 chain_length: int = 3) -> None:
        if not dt > 0:
            raise ValueError(f"time step must be positive, got {dt} fs")
        if not tau > 0 or chain_length < 1:
            raise ValueError(f"need tau > 0 and chain_length >= 1, got {tau}, {chain_length}")
        self.dt, self.temperature, self.tau = float(dt), temperature, float(tau)
        self.chain_length = int(chain_length)
        self.xi: torch.Tensor | None = None   # [B, M] dimensionless
        self.v_xi: torch.Tensor | None = None  # [B, M] 1/fs

    def _setup(self, state: MDState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kT = KB * per_system(self.temperature, state)
        nf = state.degrees_of_freedom()
        Q = (kT * self.tau**2)[:, None].repeat(1, self.chain_length)
        Q[:, 0] = Q[:, 0] * nf
        if self.xi is None:
            self.xi = torch.zeros_like(Q)
            self.v_xi = torch.zeros_like(Q)
        return kT, nf, Q

    def _force(self, j: int, K: torch.Tensor, kT: torch.Tensor, nf: torch.Tensor,
               Q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if j == 0:
            return (2 * K - nf * kT) / Q[:, 0]
        return (Q[:, j - 1] * v[:, j - 1] ** 2 - kT) / Q[:, j]

    def chain(self, state: MDState, dt: float) -> MDState:
        """C(dt): propagate the chain for ``dt`` and scale the momenta."""
        kT, nf, Q = self._setup(state)
        M, v = self.chain_length, self.v_xi.clone()
        K = state.kinetic_energy()
        h2, h4 = dt / 2, dt / 4
        v[:, M - 1] += self._force(M - 1, K, kT, nf, Q, v) * h2
        for j in range(M - 2, -1, -1):
            s = torch.exp(-v[:, j + 1] * h4)
            v[:, j] = (v[:, j] * s + self._force(j, K, kT, nf, Q, v) * h2) * s
        scale = torch.exp(-v[:, 0] * dt)
        state = state.replace(momenta=state.momenta * scale[state.system_index, None])
        K = K * scale * scale
        self.xi = self.xi + v * dt
        for j in range(M - 1):
            s = torch.exp(-v[:, j + 1] * h4)
            v[:, j] = (v[:, j] * s + self._force(j, K, kT, nf, Q, v) * h2) * s
        v[:, M - 1] += self._force(M - 1, K, kT, nf, Q, v) * h2
        self.v_xi = v
        return state

    def step(self, state: MDState, forces_fn: ForcesFn) -> MDState:
        half = 0.5 * self.dt
        state = drift(kick(self.chain(state, half), half), self.dt)
        state = kick(update_forces(state, forces_fn), half)
        return advance_clock(self.chain(state, half), self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor | float:
        kT, nf, Q = self._setup(state)
        return (0.5 * Q * self.v_xi**2).sum(1) + nf * kT * self.xi[:, 0] \
            + kT * self.xi[:, 1:].sum(1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.xi is None else {"xi": self.xi, "v_xi": self.v_xi}

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:
        self.xi, self.v_xi = values.get("xi"), values.get("v_xi")
