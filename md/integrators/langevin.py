"""Langevin dynamics with the BAOAB splitting (NVT)."""

from __future__ import annotations

import math

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
from mlpot.md.state import MDState, remove_total_momentum
from mlpot.md.units import KB, MVV2E


class Langevin(Integrator):
    """BAOAB Langevin integrator (Leimkuhler & Matthews, Appl. Math. Res. Express 2013, 34;
    J. Chem. Phys. 138, 174102 (2013)).

    dp = F dt − γ p dt + sqrt(2 γ m k_B T) dW, split as
    B(Δt/2) A(Δt/2) O(Δt) A(Δt/2) B(Δt/2) with the exact Ornstein–Uhlenbeck step
    O: p ← c₁ p + sqrt((1 − c₁²) m k_B T) ξ, c₁ = exp(−γΔt).
    The noise of each system is projected onto zero total momentum
    (ξ_i → ξ_i − m_i Σξ/Σm in momentum units), which samples the canonical
    distribution restricted to P = 0, so the kinetic degrees of freedom are 3N − 3
    as for the other integrators.

    Args:
        dt: time step, fs.
        temperature: target, K (scalar or one per system).
        friction: γ, 1/fs (default 0.01, i.e. 100 fs).
    """

    def __init__(self, dt: float, temperature: float | torch.Tensor,
                 friction: float = 0.01) -> None:
        if not dt > 0:
            raise ValueError(f"time step must be positive, got {dt} fs")
        if not friction > 0:
            raise ValueError(f"friction must be positive, got {friction} 1/fs")
        self.dt = float(dt)
        self.temperature = temperature
        self.friction = float(friction)
        self.heat = None  # [B] energy removed by the O steps, eV

    def _o_step(self, state: MDState) -> MDState:
        c1 = math.exp(-self.friction * self.dt)
        T = per_system(self.temperature, state)[state.system_index]
        sigma = torch.sqrt((1 - c1 * c1) * state.masses * KB * T / MVV2E)
        noise = remove_total_momentum(state, sigma[:, None] * state.normal_per_atom())
        before = state.kinetic_energy()
        new = state.replace(momenta=c1 * state.momenta + noise)
        heat = before - new.kinetic_energy()
        self.heat = heat if self.heat is None else self.heat + heat
        return new

    def step(self, state: MDState, forces_fn: ForcesFn) -> MDState:
        half = 0.5 * self.dt
        state = drift(kick(state, half), half)
        state = drift(self._o_step(state), half)
        state = kick(update_forces(state, forces_fn), half)
        return advance_clock(state, self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor | float:
        return 0.0 if self.heat is None else self.heat

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.heat is None else {"heat": self.heat}

    def load_state_dict(self, values: dict[str, torch.Tensor]) -> None:
        self.heat = values.get("heat")
