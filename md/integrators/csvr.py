"""Canonical sampling through velocity rescaling (CSVR, Bussi thermostat), NVT."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch

from mlpot.graph import system_sum
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
from mlpot.md.noise import normals
from mlpot.md.state import MDState, S, extend_state
from mlpot.md.units import KB


def csvr_kinetic_energy(K: torch.Tensor, kbar: torch.Tensor, nf: torch.Tensor, c: float,
                        seeds: torch.Tensor, step: int, stream: int) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
    """New kinetic energies K' [B] of the exact CSVR propagation, and the sign of α [B].

    With c = exp(−Δt/τ), K̄ = N_f k_B T / 2, R₁ ~ N(0,1) and S ~ χ²(N_f − 1):
    K' = c K + (1 − c) K̄ (R₁² + S)/N_f + 2 R₁ sqrt(c (1 − c) K K̄ / N_f)
    (Bussi, Donadio & Parrinello, J. Chem. Phys. 126, 014101 (2007), appendix); the
    sign of the scaling α = ±sqrt(K'/K) is that of R₁ + sqrt(c N_f K/((1−c) K̄)).
    R₁ and the N_f − 1 squared normals of S come from each system's stream, N_f of
    them per system in one call.

    Args:
        K, kbar, nf: ``[B]`` kinetic energy, its target N_f k_B T/2 (eV) and N_f.
        c: exp(−Δt/τ).
        seeds, step, stream: the random stream (see :mod:`mlpot.md.noise`).
    """
    counts = nf.round().to(torch.int64)
    z = normals(seeds, step, stream, counts, K.dtype)
    first = torch.cumsum(counts, 0) - counts
    system = torch.repeat_interleave(torch.arange(len(counts), device=K.device), counts,
                                     output_size=z.shape[0])
    is_first = torch.zeros_like(z, dtype=torch.bool).index_fill(0, first, True)
    r1 = z[first]  # N_f >= 3 for every system
    s = system_sum(torch.where(is_first, 0.0, z * z), system, len(counts))
    k_new = (c * K + (1 - c) * kbar * (r1 * r1 + s) / nf
             + 2 * r1 * torch.sqrt(c * (1 - c) * K * kbar / nf))
    sign = torch.sign(r1 + torch.sqrt(c * nf * K / ((1 - c) * kbar)))
    return torch.clamp(k_new, min=0), torch.where(sign == 0, 1.0, sign)


def csvr_rescale(state: S, temperature: torch.Tensor, tau: float, dt: float,
                 stream: int) -> tuple[S, torch.Tensor]:
    """T(dt): momenta scaled by α = ±sqrt(K'/K) (:func:`csvr_kinetic_energy`);
    returns (state, ΔK [B] eV). Systems with K = 0 or T = 0 are left alone."""
    K = state.kinetic_energy()
    nf = state.degrees_of_freedom()
    kbar = 0.5 * nf * KB * temperature
    k_new, sign = csvr_kinetic_energy(K, kbar, nf, math.exp(-dt / tau), state.seeds,
                                      state.step, stream)
    safe_K = torch.where(K > 0, K, torch.ones_like(K))
    alpha = torch.where((K > 0) & (kbar > 0), torch.sqrt(k_new / safe_K) * sign,
                        torch.ones_like(K))
    new = state.replace(momenta=state.momenta * alpha[state.system_index, None])
    return new, new.kinetic_energy() - K


@dataclass(frozen=True, kw_only=True)
class CSVRState(MDState):
    """:class:`MDState` plus the thermostat's bookkeeping.

    Attributes:
        thermostat_work: ``[B]`` energy the thermostat has added to the systems, eV.
    """

    thermostat_work: torch.Tensor


C = TypeVar("C", bound=CSVRState)


def csvr_thermostat(state: C, temperature: torch.Tensor, tau: float, dt: float,
                    stream: int) -> C:
    """:func:`csvr_rescale` over ``dt`` with the energy it adds booked in
    ``thermostat_work`` (every thermostatted state type derives from :class:`CSVRState`)."""
    new, dK = csvr_rescale(state, temperature, tau, dt, stream)
    return new.replace(thermostat_work=state.thermostat_work + dK)


@dataclass(frozen=True)
class CSVR(Integrator):
    """Velocity Verlet with the stochastic velocity-rescaling thermostat of
    Bussi, Donadio & Parrinello, J. Chem. Phys. 126, 014101 (2007).

    The kinetic energy obeys dK = (K̄ − K) dt/τ + 2 sqrt(K K̄/(N_f τ)) dW, which
    leaves the canonical distribution invariant. Splitting:
    T(Δt/2) B(Δt/2) A(Δt) B(Δt/2) T(Δt/2), T being the exact rescaling of
    :func:`csvr_rescale`. The conserved quantity is E_pot + E_kin minus the
    energy the thermostat added.

    Args:
        dt: time step, fs.
        temperature: target, K (scalar or one per system).
        tau: thermostat time constant, fs (default 100).
    """

    dt: float
    temperature: float | torch.Tensor
    tau: float = 100.0
    state_type = CSVRState

    def __post_init__(self) -> None:
        require_positive(self, dt="fs", tau="fs")

    def init(self, state: MDState) -> CSVRState:
        if isinstance(state, CSVRState):
            return state
        return extend_state(state, CSVRState, thermostat_work=zeros_per_system(state))

    def thermostat(self, state: CSVRState, stream: int) -> CSVRState:
        """T(Δt/2) with its energy booked."""
        return csvr_thermostat(state, per_system(self.temperature, state), self.tau,
                               0.5 * self.dt, stream)

    def step(self, state: MDState, forces_fn: ForcesFn, compute_stress: bool = False
             ) -> CSVRState:
        state, half = self.init(state), 0.5 * self.dt
        state = drift(kick(self.thermostat(state, stream=1), half), self.dt)
        state = kick(update_forces(state, forces_fn, compute_stress), half)
        return advance_clock(self.thermostat(state, stream=2), self.dt)

    def reservoir_energy(self, state: MDState) -> torch.Tensor:
        return -self.init(state).thermostat_work
